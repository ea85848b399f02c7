"""The bounded check-ahead loop: batches are checked on the task runner a few ahead of the one
being published, and published strictly in batch order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from prefect import Task
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from manifest_exchange.ingest.manifests import ObjectToRead
from manifest_exchange.orchestration.runners import (
    batches_in_flight,
    check_batch_task,
    free_published_batch,
)
from manifest_exchange.orchestration.stages import StageClock
from manifest_exchange.runs.batches import CheckedBatch


def check_ahead_and_publish(
    task_runner: TaskRunner[Any],
    plan: list[list[ObjectToRead]],
    check_arguments: Mapping[str, Any],
    publish: Callable[[CheckedBatch], None],
    clock: StageClock,
    check: Task[..., CheckedBatch] = check_batch_task,
) -> None:
    """Check every planned batch on ``task_runner`` and ``publish`` each, in order.

    At most :func:`batches_in_flight` batches are submitted and not yet published at a time,
    which keeps every worker busy and bounds the run's memory. ``check_arguments`` go to
    every ``check`` (store settings, agreement) beside the batch's objects and number;
    ``clock`` times freeing each published batch.
    """
    with task_runner:
        in_flight = batches_in_flight(task_runner)
        pending: deque[PrefectFuture[CheckedBatch]] = deque()

        def publish_oldest() -> None:
            publish(pending.popleft().result())
            # Freed now, not at the cyclic collector's leisure (decision 0013).
            with clock.stage("free"):
                free_published_batch()

        for number, objects in enumerate(plan):
            # Not quoted: a quoted value pickled for a Dask worker arrives there wrapped in a
            # tuple.
            arguments = {**check_arguments, "objects": objects, "number": number}
            pending.append(task_runner.submit(check, arguments))
            if len(pending) >= in_flight:
                publish_oldest()
        while pending:
            publish_oldest()
