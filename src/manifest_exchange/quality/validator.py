"""Data-quality checks: the Great Expectations suites in ``expectations/`` over Arrow tables.

Each suite is a GX 1.x suite JSON with two additions in ``meta``: the suite names its row id
column, and each expectation names its ``check`` and ``severity`` (``error`` quarantines,
``warning`` becomes a ``dq_flag``). GX validates pandas frames that hold only the row id and
the columns the suite references, which the SQL derives without personal values, so results
never contain a name, document number or date of birth. The run shows them as Prefect
artifacts (:mod:`manifest_exchange.orchestration.artifacts`), not as GX Data Docs
(decision 0023).

GX runs every expectation in its ``BASIC`` result format (pass or fail, and how many rows
failed). Which rows failed is derived in DuckDB from the same expectations
(:mod:`manifest_exchange.quality.failures`), and a batch whose counts differ from GX's is
refused: GX's ``COMPLETE`` format names the rows itself but costs more (decision 0008).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from manifest_exchange.quality.failures import (
    Failures,
    check_counts,
    find_failures,
)
from manifest_exchange.quality.suites import Suite, columns_of
from manifest_exchange.transform import limits
from manifest_exchange.transform.schemas import ISSUES_SCHEMA

log = logging.getLogger(__name__)


# Counts without row values; rows come from the DuckDB derivation.
RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 0}


@dataclass
class SuiteResult:
    """What one suite found: issues per row and a summary per check (no row values)."""

    suite: str
    rows: int
    issues: pa.Table
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed_checks(self) -> list[str]:
        return [c["check"] for c in self.checks if not c["success"]]


class Validator:
    """Runs suites in an in-memory GX context: nothing is written to disk or sent anywhere.

    Threads may share a validator. GX calls of every validator in a process are serialised:
    GX's set-up and stores are not safe from two threads at once.
    """

    _lock = threading.RLock()

    def __init__(self) -> None:
        with self._lock:
            import great_expectations as gx  # slow to import: only when validation runs
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            self._gx = gx
            # No Data Docs site: results become Prefect artifacts (decision 0023).
            in_memory = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
            self.context = gx.get_context(
                project_config=DataContextConfig(store_backend_defaults=in_memory),
                mode="ephemeral",
            )
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
            # Nothing about a border agency's checks is sent anywhere (the package also sets
            # GX_ANALYTICS_ENABLED=False, which GX reads before a context exists).
            self.context.variables.analytics_enabled = False
            self.datasource = self.context.data_sources.add_or_update_pandas("exchange")
            self._registered: dict[str, tuple[Any, Any]] = {}
        self.parameters: dict[str, Any] = {
            **limits.suite_parameters(),
        }

    def validate(self, suite: Suite, table: pa.Table) -> SuiteResult:
        """Validate ``table`` against ``suite``: GX's verdicts and counts, DuckDB's row ids.

        Raises:
            RuntimeError: an expectation could not run.
            CountMismatchError: GX and the derived rows disagree on a check's count.
        """
        if table.num_rows == 0:
            return SuiteResult(suite.name, 0, ISSUES_SCHEMA.empty_table())
        columns = table.select(suite.columns)
        frame = columns.to_pandas()
        with self._lock:
            batch_definition, expectation_suite = self._register(suite)
            # A batch validated directly, not through a checkpoint: a checkpoint would also
            # check its definitions for changes and keep the result.
            batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
            validation = batch.validate(
                expectation_suite,
                result_format=RESULT_FORMAT,
                expectation_parameters=self.parameters,
            )
        failures = find_failures(
            suite.definition["expectations"], suite.row_id, columns, self.parameters
        )
        return _collect(suite, table.num_rows, validation.results, failures)

    def _register(self, suite: Suite) -> tuple[Any, Any]:
        """The suite in the GX context and a dataframe batch definition for its rows (once)."""
        if suite.name not in self._registered:
            gx = self._gx
            asset = self.datasource.add_dataframe_asset(f"{suite.name}_rows")
            expectation_suite = self.context.suites.add(
                gx.ExpectationSuite(
                    name=suite.name,
                    expectations=suite.definition["expectations"],
                    meta=suite.definition.get("meta", {}),
                )
            )
            self._registered[suite.name] = (
                asset.add_batch_definition_whole_dataframe("run"),
                expectation_suite,
            )
        return self._registered[suite.name]


def _collect(suite: Suite, rows: int, results: list[Any], failures: Failures) -> SuiteResult:
    """Issues per failing row (from ``failures``) and a summary per check (from GX)."""
    row_ids: list[str] = []
    checks: list[str] = []
    severities: list[str] = []
    summary = []
    for outcome in results:
        meta = outcome.expectation_config.meta
        detail = outcome.result or {}
        if outcome.exception_info and outcome.exception_info.get("raised_exception"):
            # A check that could not run must not pass silently.
            raise RuntimeError(
                f"{suite.name}/{meta['check']} raised: "
                f"{outcome.exception_info.get('exception_message')}"
            )
        summary.append(
            {
                "check": meta["check"],
                "severity": meta["severity"],
                "description": meta["description"],
                "expectation": outcome.expectation_config.type,
                "column": ", ".join(columns_of(outcome.expectation_config.kwargs)),
                "success": bool(outcome.success),
                "unexpected_count": int(detail.get("unexpected_count") or 0),
                "element_count": int(detail.get("element_count") or rows),
            }
        )
    check_counts(suite.name, {c["check"]: c["unexpected_count"] for c in summary}, failures)
    severity_of = {c["check"]: c["severity"] for c in summary}
    for check, failed_ids in failures.row_ids.items():
        row_ids.extend(failed_ids)
        checks.extend([check] * len(failed_ids))
        severities.extend([severity_of[check]] * len(failed_ids))
    issues = pa.table(
        {"row_id": row_ids, "check_name": checks, "severity": severities}, schema=ISSUES_SCHEMA
    )
    log.info(
        "suite %s: %d rows, %d failing checks (%s)",
        suite.name,
        rows,
        sum(not c["success"] for c in summary),
        ", ".join(c["check"] for c in summary if not c["success"]) or "none",
    )
    return SuiteResult(suite.name, rows, issues, summary)
