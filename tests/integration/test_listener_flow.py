"""The landing listener against the real store and Prefect API: landings become drops within
seconds, a restarted listener replays what landed while it was down, and nothing is settled
twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from exchange_support import Exchange, make_corpus
from listener_support import ListenerProcess
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.publish.partner import verify_drops
from manifest_exchange.storage.s3 import iter_objects

pytestmark = pytest.mark.integration


def _success_times(exchange: Exchange) -> dict[str, float]:
    root = drops_root(exchange.partner)
    return {
        info.key.split("/")[-2]: info.last_modified.timestamp()
        for info in iter_objects(exchange.pipeline, root)
        if info.key.endswith(f"/{SUCCESS_MARKER}")
    }


def test_landings_reach_the_partner_within_seconds_and_a_restart_misses_none(
    exchange: Exchange, prefect_api: str, tmp_path: Path
) -> None:
    listener = ListenerProcess(exchange, prefect_api, 15, tmp_path / "listener.log")
    listener.wait_listening()
    corpus = make_corpus(flights=3, seed=21)
    landed_at = time.time()
    exchange.upload(corpus)
    first = listener.result()

    assert first["landings"] == len(corpus.objects)
    assert first["batches"] >= 1
    published = sum(run["published"] for run in first["runs"])
    assert published > 0
    drops = _success_times(exchange)
    assert set(drops) == {d for run in first["runs"] for d in run["drop_ids"]}
    assert max(drops.values()) - landed_at < 15

    # Landed while no listener ran: the next one replays it from its checkpoint.
    later = make_corpus(flights=2, seed=22)
    exchange.upload(later)
    drops_before = set(_success_times(exchange))
    second = ListenerProcess(exchange, prefect_api, 120, tmp_path / "second.log")
    # Settled, and the run that settled it has finished (its log line comes last).
    deadline = time.monotonic() + 90
    while exchange.outcome_count() < len(corpus.objects) + len(
        later.objects
    ) or second.landings_run() < len(later.objects):
        assert time.monotonic() < deadline, second.log.read_text()[-3000:]
        time.sleep(0.5)
    second.stop()
    assert set(_success_times(exchange)) > drops_before
    audit = exchange.audit()
    assert audit.ok, audit.as_dict()
    assert verify_drops(exchange.stack.client("partner"), exchange.partner).is_ok
    # Every object was claimed once: the replays found nothing new.
    assert exchange.outcome_count() == len(corpus.objects) + len(later.objects)
