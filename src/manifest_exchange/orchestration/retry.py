"""Retry policy for tasks that talk to the store: back off on hiccups, never on bad data."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from prefect.tasks import exponential_backoff

from manifest_exchange.storage.s3 import is_transient_error


def retry_on_transient_errors(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry only when the failure came from the network or an overloaded store."""
    try:
        state.result(raise_on_failure=True)
    except BaseException as error:  # the failure's own exception, re-raised by result()
        return is_transient_error(error)
    return False


# 3 retries after 2, 4 and 8 s, each stretched by up to 50 % at random so runs that failed
# together do not come back together.
STORE_RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=2),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on_transient_errors,
}
