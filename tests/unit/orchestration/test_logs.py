"""Terminal lines named by stage."""

from __future__ import annotations

import logging

from prefect import flow, task

from manifest_exchange.orchestration.logs import StageFormatter


def _record(name: str, message: str, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, None, None)
    record.__dict__.update(extra)
    return record


def test_lines_are_named_by_the_task_or_flow_they_come_from(prefect_api: str) -> None:
    formatter = StageFormatter()
    seen: list[str] = []

    @task(name="check-batch")
    def checking() -> None:
        seen.append(formatter.format(_record("manifest_exchange.quality", "x")))

    @flow(name="exchange_manifests")
    def exchanging() -> None:
        seen.append(formatter.format(_record("manifest_exchange", "y")))
        checking()

    exchanging()
    seen.append(formatter.format(_record("manifest_exchange", "z")))
    # Prefect's own task run logger names its task.
    seen.append(formatter.format(_record("prefect.task_runs", "w", task_name="publish-drop")))
    assert seen == [
        "INFO exchange_manifests: y",
        "INFO check-batch: x",
        "INFO manifest_exchange: z",
        "INFO publish-drop: w",
    ]


def test_prefect_info_lines_keep_their_first_line_only() -> None:
    formatter = StageFormatter()
    advice = _record("prefect", "Starting temporary server on x\nSee https://...")
    assert formatter.format(advice) == "INFO prefect: Starting temporary server on x"
    failed = logging.LogRecord("prefect", logging.ERROR, __file__, 1, "Crashed\nTrace", None, None)
    assert formatter.format(failed) == "ERROR prefect: Crashed\nTrace"
