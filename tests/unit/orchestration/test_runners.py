"""Choosing where a run's batches are checked."""

from __future__ import annotations

import gc
import weakref

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from manifest_exchange.orchestration.dask_runner import DaskTaskRunnerReportingHome
from manifest_exchange.orchestration.runners import (
    RunnerError,
    batch_task_runner,
    batches_in_flight,
    free_published_batch,
)


class _Batch:
    """Stands in for a checked batch (weakly referable, unlike its Arrow tables)."""


def test_threads_is_the_default_and_keeps_two_batches_in_flight() -> None:
    runner = batch_task_runner()

    assert isinstance(runner, ThreadPoolTaskRunner)
    assert batches_in_flight(runner) == 2


def test_dask_runner_uses_a_loopback_local_cluster_or_the_given_scheduler() -> None:
    local = batch_task_runner("dask", workers=3)
    remote = batch_task_runner("dask", "tcp://10.0.0.5:8786")

    assert local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["host"] == "127.0.0.1"
    assert local.cluster_kwargs["dashboard_address"] is None
    # Dask's other HTTP endpoints on a free loopback port, not the fixed 8787.
    assert local.cluster_kwargs["scheduler_kwargs"] == {"dashboard_address": "127.0.0.1:0"}
    assert remote.address == "tcp://10.0.0.5:8786"


def test_every_dask_runner_is_the_one_that_reports_home() -> None:
    """Also the copies Prefect makes of a runner (``duplicate``)."""
    runners = [batch_task_runner("dask"), batch_task_runner("dask", "tcp://10.0.0.5:8786")]

    for runner in [*runners, *(runner.duplicate() for runner in runners)]:
        assert isinstance(runner, DaskTaskRunnerReportingHome)


@pytest.mark.parametrize(
    ("runner", "address", "message"),
    [
        ("spark", None, "unknown runner 'spark'"),
        ("threads", "tcp://10.0.0.5:8786", "dask_address needs runner='dask'"),
    ],
)
def test_bad_runner_options_are_refused(runner: str, address: str | None, message: str) -> None:
    with pytest.raises(RunnerError, match=message):
        batch_task_runner(runner, address)


def test_a_published_batch_in_a_reference_cycle_is_freed_at_once() -> None:
    """As a thread future and the future it wraps hold each other, and with them the result."""
    gc.disable()  # the collector must not run by chance between the two looks
    try:
        wrapper: dict[str, object] = {"result": _Batch()}
        wrapped: dict[str, object] = {"done_callback": wrapper}
        wrapper["wrapped"] = wrapped
        published = weakref.ref(wrapper["result"])
        del wrapper, wrapped
        alive_before = published() is not None
        free_published_batch()
    finally:
        gc.enable()
    assert alive_before
    assert published() is None
    assert gc.get_freeze_count() > 0  # what survived the first collection is not walked again
