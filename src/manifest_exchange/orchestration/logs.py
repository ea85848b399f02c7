"""Terminal log lines named by the stage they come from, as the Prefect UI names them."""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext

LINE_FORMAT = "%(levelname)s %(stage)s: %(message)s"


class StageFormatter(logging.Formatter):
    """Prefixes each line with its task's name (``discover-and-claim``, ``check-batch``), or
    its flow's inside a flow, or else its logger's: the package's own lines inside a task
    carry no run details of their own, so the run context supplies them.

    Prefect's INFO lines keep their first line: the temporary server's start adds a
    paragraph of advice.
    """

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.stage = stage_of(record)
        line = super().format(record)
        if record.levelno == logging.INFO and record.name.startswith("prefect"):
            return line.split("\n", 1)[0]
        return line


def stage_of(record: logging.LogRecord) -> str:
    named: str | None = getattr(record, "task_name", None)
    if named:
        return named
    task_run = TaskRunContext.get()
    if task_run is not None:
        return task_run.task.name
    flow_run = FlowRunContext.get()
    if flow_run is not None and flow_run.flow is not None:
        return flow_run.flow.name
    return getattr(record, "flow_name", None) or record.name


def name_lines_by_stage(logger: logging.Logger | None = None) -> None:
    """Give the handlers of ``logger`` (default: the root) the stage formatter."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.setFormatter(StageFormatter())
