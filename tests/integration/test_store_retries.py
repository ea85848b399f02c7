"""The store retry policy on real Prefect task runs: hiccups are retried, bad data is not."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from prefect import flow, task

from manifest_exchange.orchestration.retry import STORE_RETRIES

pytestmark = pytest.mark.integration

# The policy as deployed, without the waiting between attempts.
FAST_RETRIES: dict[str, Any] = {**STORE_RETRIES, "retry_delay_seconds": 0}


def _run(error: BaseException, failures: int) -> tuple[str, int]:
    attempts = 0

    @task(**FAST_RETRIES)
    def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= failures:
            raise error
        return "done"

    @flow
    def wrapper() -> str:
        return flaky()

    state = wrapper(return_state=True)
    return state.type.value, attempts


def test_a_throttled_store_is_retried_until_it_answers(prefect_api: str) -> None:
    slow_down = botocore.exceptions.ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"
    )

    assert _run(slow_down, failures=2) == ("COMPLETED", 3)


def test_retries_give_up_after_three(prefect_api: str) -> None:
    refused = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    assert _run(refused, failures=10) == ("FAILED", 1 + STORE_RETRIES["retries"])


def test_a_data_error_is_not_retried(prefect_api: str) -> None:
    assert _run(ValueError("unreadable manifest"), failures=10) == ("FAILED", 1)
