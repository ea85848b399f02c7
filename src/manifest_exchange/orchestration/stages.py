"""What an exchange run keeps while its batches go by: seconds per stage, the UI's progress
artifact and the totals for the report and its artifacts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from manifest_exchange.orchestration.artifacts import StageProgress
from manifest_exchange.runs.batches import CheckedBatch
from manifest_exchange.runs.report import QualitySummary, RunTotals
from manifest_exchange.runs.settle import BatchDecision


class StageClock:
    """Seconds per stage (summed over batches) and the UI's progress artifact."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.progress = StageProgress(["recover", "discover", "report"])

    def plan(self, batch_count: int) -> None:
        """Count each batch as a step of the progress artifact."""
        batch_steps = [f"batch {number}" for number in range(batch_count)]
        self.progress.stages = ["recover", "discover", *batch_steps, "report"]

    def batch_done(self, number: int) -> None:
        self.progress.finished(f"batch {number}")

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.add(name, time.perf_counter() - started)
        if name in self.progress.stages:
            self.progress.finished(name)


class RunRecorder:
    """The run's clock and totals, fed one batch at a time."""

    def __init__(self) -> None:
        self.clock = StageClock()
        self.totals = RunTotals()

    def checked(self, batch: CheckedBatch) -> dict[str, Any]:
        """Take a checked batch's timings and results; returns its validation summary (for
        its drop's manifest)."""
        for stage, seconds in batch.timings.items():
            self.clock.add(stage, seconds)
        summary = QualitySummary()
        for result in batch.results.values():
            summary.add(result)
            self.totals.quality.add(result)
        return summary.as_dict()

    def settled(
        self, batch: CheckedBatch, decision: BatchDecision, drop: tuple[str, int] | None
    ) -> None:
        """Add a settled batch; ``drop`` is its drop's id and row count, if it had one."""
        self.totals.add_batch(
            batch.parsed,
            batch.messages,
            batch.message_issues,
            decision.outcomes,
            decision.accounting,
            quarantine=decision.quarantine.counts,
            drop=drop,
            settled_elsewhere=decision.settled_elsewhere,
        )
        self.clock.batch_done(batch.number)
