"""prefect-dask's task runner, with every task carrying the Prefect API its flow reports to.

prefect-dask sends each task with the flow's Prefect settings, but only those the flow's
process set: a flow on a temporary server (no ``PREFECT_API_URL``) sends no API URL, and each
worker then started a temporary server of its own and reported there (decision 0022).
Imported only for runner ``dask``, as it imports ``distributed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect import Task
from prefect.client.schemas.objects import RunInput
from prefect.context import FlowRunContext
from prefect.settings import temporary_settings
from prefect_dask.task_runners import DaskTaskRunner, PrefectDaskFuture


def settings_for_workers() -> dict[str, Any]:
    """Prefect settings to send with every task, over the flow's own.

    The API the flow's client talks to, whether configured or temporary, and no temporary
    server of the worker's own should that API ever be missing.
    """
    updates: dict[str, Any] = {"server.ephemeral.enabled": False}
    flow_run = FlowRunContext.get()
    if flow_run is not None:
        updates["api.url"] = str(flow_run.client.api_url).rstrip("/")
    return updates


class DaskTaskRunnerReportingHome(DaskTaskRunner):
    """A ``DaskTaskRunner`` whose tasks carry :func:`settings_for_workers`."""

    # DaskTaskRunner.submit's own signature (Dask futures in and out), which mypy finds
    # incompatible with TaskRunner's: prefect-dask subclasses it without its future type.
    def submit(  # type: ignore[override]
        self,
        task: Task[Any, Any],
        parameters: dict[str, Any],
        wait_for: Iterable[PrefectDaskFuture[Any]] | None = None,
        dependencies: dict[str, set[RunInput]] | None = None,
    ) -> PrefectDaskFuture[Any]:
        # prefect-dask serialises the settings current at submission into the task.
        with temporary_settings(updates=settings_for_workers()):
            return super().submit(task, parameters, wait_for, dependencies)
