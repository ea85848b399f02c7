"""The landing listener against the real store and Prefect API: landings become drops within
seconds, a restarted listener replays what landed while it was down, and nothing is settled
twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from exchange_support import Exchange, make_corpus
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.publish.partner import verify_drops
from manifest_exchange.storage.s3 import iter_objects

pytestmark = pytest.mark.integration

LISTEN = """
import json, sys
from manifest_exchange.cli import flow_from_file
listen = flow_from_file("listener", "listen_for_manifests")
print("RESULT " + json.dumps(listen(**json.loads(sys.argv[1]))))
"""


def _start_listener(
    exchange: Exchange, prefect_api: str, run_for_s: float, log: Path
) -> subprocess.Popen[str]:
    state = exchange.stack.read_state()
    assert state is not None
    parameters = {
        **exchange.locations,
        "filer": f"127.0.0.1:{state.ports.filer}",
        "linger_s": 0.5,
        "run_for_s": run_for_s,
    }
    env = {
        **os.environ,
        **exchange.environment(),
        "PREFECT_API_URL": prefect_api,
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [sys.executable, "-c", LISTEN, json.dumps(parameters)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
    )


def _result(process: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, log.read_text()[-3000:]
    (line,) = [x for x in out.splitlines() if x.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def _success_times(exchange: Exchange) -> dict[str, float]:
    root = drops_root(exchange.partner)
    return {
        info.key.split("/")[-2]: info.last_modified.timestamp()
        for info in iter_objects(exchange.pipeline, root)
        if info.key.endswith(f"/{SUCCESS_MARKER}")
    }


def _wait_listening(log: Path, seconds: float = 30) -> None:
    """Until the listener's flow has started following (its log line)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if "listening under" in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"the listener did not start: {log.read_text()[-2000:]}")


def test_landings_reach_the_partner_within_seconds_and_a_restart_misses_none(
    exchange: Exchange, prefect_api: str, tmp_path: Path
) -> None:
    log = tmp_path / "listener.log"
    listener = _start_listener(exchange, prefect_api, 25, log)
    _wait_listening(log)
    corpus = make_corpus(flights=3, seed=21)
    landed_at = time.time()
    exchange.upload(corpus)
    first = _result(listener, log)

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
    second_log = tmp_path / "second-listener.log"
    second = _result(_start_listener(exchange, prefect_api, 15, second_log), second_log)
    assert second["landings"] >= len(later.objects)
    assert sum(run["published"] for run in second["runs"]) > 0
    audit = exchange.audit()
    assert audit.ok, audit.as_dict()
    assert verify_drops(exchange.stack.client("partner"), exchange.partner).is_ok
    # Every object was claimed once: the replays found nothing new.
    assert exchange.outcome_count() == len(corpus.objects) + len(later.objects)
