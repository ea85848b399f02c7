"""Where a run's batches are checked: threads in the flow's process, or a Dask cluster.

``threads`` checks the next batch while the flow publishes the current one. ``dask`` sends
batches to a Dask cluster through prefect-dask's ``DaskTaskRunner``: a
``distributed.LocalCluster`` of worker processes on loopback by default, or an existing
scheduler by address (``tcp://scheduler:8786``), whose workers need this package installed and
must reach the store and the flow's Prefect API. Task runs on Dask workers report to that API,
and no worker starts a Prefect server of its own (``dask_runner``, decision 0022).
"""

from __future__ import annotations

import gc
import os
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.config import S3Settings
from manifest_exchange.ingest.manifests import ObjectToRead
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.runs import batches
from manifest_exchange.runs.batches import RUNNERS, CheckedBatch


# Defined here, not in flows/, so Dask workers import it from the installed package.
# No timeout: the task always runs in a worker thread (threads or Dask), where Prefect cannot
# interrupt it and warns on every batch instead; the store clients' own timeouts bound it.
@task(
    name="check-batch",
    cache_policy=NO_CACHE,
    persist_result=False,
    **STORE_RETRIES,
)
def check_batch_task(
    s3: S3Settings, agreement: Agreement, objects: list[ObjectToRead], number: int
) -> CheckedBatch:
    """Fetch, parse, transform and validate one batch, wherever the task runner puts it."""
    batch = batches.check_batch(s3, agreement, objects, number)
    get_run_logger().info(
        "batch %d: %d objects, %d messages, %d travellers",
        number,
        len(objects),
        batch.messages.num_rows,
        batch.parsed.traveller_count,
    )
    return batch


class RunnerError(ValueError):
    """An unknown runner, or runner options that do not go together."""


def batch_task_runner(
    runner: str = "threads", dask_address: str | None = None, workers: int | None = None
) -> TaskRunner[Any]:
    """A started-on-enter task runner for the run's batches.

    Args:
        runner: ``threads`` or ``dask``.
        dask_address: an existing Dask scheduler (``dask`` only); default: a local cluster.
        workers: local cluster worker processes (default: one per core).
    """
    if runner not in RUNNERS:
        raise RunnerError(f"unknown runner {runner!r}: expected one of {', '.join(RUNNERS)}")
    if runner == "threads":
        if dask_address:
            raise RunnerError("dask_address needs runner='dask'")
        return ThreadPoolTaskRunner(max_workers=2)
    # Imports distributed: only when asked for.
    from manifest_exchange.orchestration.dask_runner import DaskTaskRunnerReportingHome

    if dask_address:
        return DaskTaskRunnerReportingHome(address=dask_address)
    return DaskTaskRunnerReportingHome(
        cluster_kwargs={
            "n_workers": workers or os.cpu_count() or 2,
            "threads_per_worker": 1,
            "processes": True,
            # Loopback only, and no dashboard. The scheduler serves its other HTTP endpoints
            # (health, metrics, info pages) even so, on the fixed port 8787 unless told another.
            "host": "127.0.0.1",
            "dashboard_address": None,
            "scheduler_kwargs": {"dashboard_address": "127.0.0.1:0"},
        }
    )


def batches_in_flight(task_runner: TaskRunner[Any]) -> int:
    """How many batches to have submitted at once: every worker busy, plus one queued.

    Finished batches wait in memory until the flow publishes them in order, so this also
    bounds memory: at most this many checked batches exist at a time.
    """
    client = getattr(task_runner, "client", None)
    if client is None:  # threads
        return 2
    return int(sum(client.nthreads().values())) + 1


def free_published_batch() -> None:
    """Free the batch the flow has just published, now rather than at the collector's leisure.

    A thread runner's future and the future it wraps refer to each other, so only the cyclic
    collector frees a published batch; the first collection freezes the long-lived libraries,
    so later ones walk only what the run made since (decision 0013).
    """
    gc.collect()
    if not gc.get_freeze_count():
        gc.freeze()
