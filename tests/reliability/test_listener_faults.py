"""The landing listener under faults: killed and restarted, the store restarted under it, a
burst of 500 manifests in 10 s, the Prefect server restarted. Each ends with the exactly-once
audit against the generator's ground truth."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from exchange_support import FLIGHT_DATE, Exchange, make_corpus
from fault_support import TAKEOVER_S, assert_exactly_once, settle
from listener_support import ListenerProcess
from manifest_exchange.local.generate.paxlst import GeneratorOptions, generate_day
from manifest_exchange.local.prefect_server import LocalPrefect, free_port
from manifest_exchange.local.stack import EmbeddedStack
from manifest_exchange.paths import PROJECT_ROOT
from manifest_exchange.storage.s3 import put_bytes

pytestmark = pytest.mark.integration

QUICK = {"MX_CLAIM_TIMEOUT_S": str(TAKEOVER_S), "MX_LOCK_TIMEOUT_S": str(TAKEOVER_S)}


def _wait_settled_by_listener(exchange: Exchange, objects: int, timeout_s: float) -> float:
    """Seconds until the ledger holds an outcome for ``objects`` objects."""
    started = time.monotonic()
    while exchange.outcome_count() < objects:
        assert time.monotonic() - started < timeout_s, (
            f"{exchange.outcome_count()} of {objects} objects settled in {timeout_s:.0f} s"
        )
        time.sleep(0.5)
    return time.monotonic() - started


def test_the_listener_killed_and_restarted_misses_and_repeats_nothing(
    quick_takeover: Exchange, prefect_api: str, tmp_path: Path
) -> None:
    exchange = quick_takeover
    first = ListenerProcess(exchange, prefect_api, 120, tmp_path / "first.log", **QUICK)
    first.wait_listening()
    before, during = make_corpus(flights=3, seed=61), make_corpus(flights=3, seed=62)
    exchange.upload(before)
    _wait_settled_by_listener(exchange, len(before.objects), 60)
    # Killed with new work landing: some of it may be mid-run, the rest lands while it is down.
    uploading = threading.Thread(target=exchange.upload, args=(during,))
    uploading.start()
    time.sleep(0.3)
    first.kill()
    uploading.join()
    second = ListenerProcess(exchange, prefect_api, 120, tmp_path / "second.log", **QUICK)
    deadline = time.monotonic() + 90
    while second.landings_run() == 0:  # the replay from the checkpoint reaches a run
        assert time.monotonic() < deadline, second.log.read_text()[-3000:]
        time.sleep(0.5)
    second.stop()
    runs = settle(exchange)  # the every-minute sweep: takes over what the killed run held
    assert_exactly_once(exchange, [before, during], "listener SIGKILLed, restarted", 2 + len(runs))


def test_the_store_restarted_under_the_listener(
    quick_takeover: Exchange, embedded_stack: EmbeddedStack, prefect_api: str, tmp_path: Path
) -> None:
    exchange = quick_takeover
    listener = ListenerProcess(exchange, prefect_api, 90, tmp_path / "listener.log", **QUICK)
    listener.wait_listening()
    before, after = make_corpus(flights=2, seed=63), make_corpus(flights=2, seed=64)
    exchange.upload(before)
    _wait_settled_by_listener(exchange, len(before.objects), 60)
    state = embedded_stack.running_state()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    time.sleep(1)
    embedded_stack.up()
    exchange.upload(after)
    # The listener follows the change log again from its checkpoint, without a restart.
    _wait_settled_by_listener(exchange, len(before.objects) + len(after.objects), 75)
    listener.stop()
    assert "listening again from the checkpoint" in listener.log.read_text()
    assert_exactly_once(exchange, [before, after], "store SIGKILLed under the listener", 1)


def test_a_burst_of_500_manifests_in_10_seconds(
    quick_takeover: Exchange, prefect_api: str, tmp_path: Path
) -> None:
    exchange = quick_takeover
    # 195 flights come as 508 objects: every part of every list, so ground truth holds.
    burst = generate_day(
        GeneratorOptions(FLIGHT_DATE, flights=195, seed=65, defect_rate=0.0, resend_rate=0.0)
    )
    assert len(burst.objects) >= 500
    listener = ListenerProcess(exchange, prefect_api, 150, tmp_path / "listener.log", **QUICK)
    listener.wait_listening()
    started = time.monotonic()
    spacing_s = 10.0 / len(burst.objects)
    loader = exchange.stack.client("loader")
    for number, obj in enumerate(burst.objects):
        put_bytes(loader, exchange.source.bucket, exchange.source.key(obj.key), obj.data)
        time.sleep(max(started + (number + 1) * spacing_s - time.monotonic(), 0))
    landed_s = time.monotonic() - started
    assert landed_s <= 12
    took_s = _wait_settled_by_listener(exchange, len(burst.objects), 120)
    listener.stop()
    runs = len(re.findall(r" landings under ", listener.log.read_text()))
    print(
        f"\nLISTENER | burst of {len(burst.objects)} landed in {landed_s:.1f} s, settled "
        f"{took_s:.1f} s after the last landed, in {runs} runs"
    )
    assert listener.landings_run() == len(burst.objects)
    assert_exactly_once(exchange, burst, "burst of 500 manifests in 10 s", runs)


def test_the_prefect_server_restarted_under_the_listener(
    quick_takeover: Exchange, embedded_stack: EmbeddedStack, tmp_path: Path
) -> None:
    exchange = quick_takeover
    local = LocalPrefect(tmp_path / "home", PROJECT_ROOT, port=free_port(), serve_ui=False)
    processes = local.start_server()
    try:
        listener = ListenerProcess(exchange, local.api_url, 120, tmp_path / "listener.log", **QUICK)
        listener.wait_listening()
        before, after = make_corpus(flights=2, seed=66), make_corpus(flights=2, seed=67)
        exchange.upload(before)
        _wait_settled_by_listener(exchange, len(before.objects), 60)
        local.down()
        exchange.upload(after)  # lands while the API is away: its run cannot start
        time.sleep(3)
        processes = local.start_server()
        _wait_settled_by_listener(exchange, len(before.objects) + len(after.objects), 90)
        listener.stop()
    finally:
        local.down()
    assert_exactly_once(exchange, [before, after], "Prefect server restarted under the listener", 2)
    assert processes.server_pid
