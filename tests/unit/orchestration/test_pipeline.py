"""The check-ahead loop: batches publish in order, with a bounded number checked ahead."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from manifest_exchange.ingest.manifests import ObjectToRead
from manifest_exchange.orchestration.pipeline import check_ahead_and_publish
from manifest_exchange.orchestration.stages import StageClock

_lock = threading.Lock()
_state = {"running": 0, "most": 0, "started": 0}


@task(name="fake-check", persist_result=False)
def fake_check(objects: list[ObjectToRead], number: int, delay_s: float) -> Any:
    with _lock:
        _state["running"] += 1
        _state["started"] += 1
        _state["most"] = max(_state["most"], _state["running"])
    # Later batches finish first: publishing must still follow batch order.
    time.sleep(delay_s / (number + 1))
    with _lock:
        _state["running"] -= 1
    return {"number": number, "objects": len(objects)}


@pytest.fixture
def clock(prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> StageClock:
    """A clock without the UI's progress artifact; task runs go to the session's server."""
    monkeypatch.setattr(
        "manifest_exchange.orchestration.stages.StageProgress.__init__",
        lambda self, stages, key="": setattr(self, "stages", stages),
    )
    _state.update(running=0, most=0, started=0)
    return StageClock()


def test_batches_publish_in_order_with_at_most_two_checked_ahead(clock: StageClock) -> None:
    plan = [[ObjectToRead("b", f"k{n}", None, 1)] for n in range(6)]
    published: list[int] = []
    checked_when_published: list[int] = []

    def publish(batch: Any) -> None:
        published.append(batch["number"])
        checked_when_published.append(_state["started"])

    @flow(name="check-ahead")
    def run() -> None:
        check_ahead_and_publish(
            ThreadPoolTaskRunner(max_workers=4),
            plan,
            {"delay_s": 0.2},
            publish,
            clock,
            check=fake_check,
        )

    run()

    assert published == list(range(6))
    # Two in flight for threads: batch n is published once batch n+1 has been submitted.
    assert _state["most"] <= 2
    assert all(started <= number + 2 for number, started in enumerate(checked_when_published))
    assert clock.timings["free"] > 0


def test_a_plan_with_no_batches_publishes_nothing(clock: StageClock) -> None:
    published: list[Any] = []

    @flow(name="check-nothing")
    def run() -> None:
        check_ahead_and_publish(
            ThreadPoolTaskRunner(), [], {"delay_s": 0}, published.append, clock, check=fake_check
        )

    run()

    assert published == []
