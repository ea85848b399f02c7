"""Cutting a run into batches, and adding up what the batches report."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from manifest_exchange.ingest import ObjectToRead
from manifest_exchange.quality import SuiteResult
from manifest_exchange.runs import AccountingError, QualitySummary, check_accounting
from manifest_exchange.runs.batches import plan_batches
from manifest_exchange.transform import ISSUES_SCHEMA

RECEIVED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _objects(*sizes: int | None) -> list[ObjectToRead]:
    return [ObjectToRead("src", f"k{n:02d}", RECEIVED, size) for n, size in enumerate(sizes)]


def test_batches_keep_receive_order_and_respect_the_listed_size() -> None:
    objects = _objects(40, 40, 40, 10, 90, 5)

    batches = plan_batches(objects, batch_bytes=100, batch_objects=10)

    assert [[o.key for o in batch] for batch in batches] == [
        ["k00", "k01"],
        ["k02", "k03"],
        ["k04", "k05"],
    ]
    assert [o for batch in batches for o in batch] == objects


def test_batches_respect_the_object_count_and_never_split_or_drop_an_object() -> None:
    # An object larger than a batch is a batch of its own; one without a listed size counts 0.
    objects = _objects(500, None, 1, 1, 1)

    batches = plan_batches(objects, batch_bytes=100, batch_objects=2)

    assert [len(batch) for batch in batches] == [1, 2, 2]
    assert sum(len(batch) for batch in batches) == len(objects)


def test_batch_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_batches(_objects(1), batch_bytes=0)


def _result(suite: str, rows: int, failed: dict[str, int]) -> SuiteResult:
    checks = [
        {"check": "sex_code", "severity": "error", "success": "sex_code" not in failed},
        {"check": "doc_expired", "severity": "warning", "success": "doc_expired" not in failed},
    ]
    for check in checks:
        check["unexpected_count"] = failed.get(str(check["check"]), 0)
    return SuiteResult(suite, rows, ISSUES_SCHEMA.empty_table(), checks)


def test_quality_summary_adds_batches_up() -> None:
    summary = QualitySummary()
    summary.add(_result("paxlst_travellers", 10, {"sex_code": 2}))
    summary.add(_result("paxlst_travellers", 5, {"sex_code": 1, "doc_expired": 4}))
    summary.add(_result("paxlst_travellers", 7, {}))

    assert summary.as_dict() == {
        "paxlst_travellers": {
            "rows": 22,
            "checks": 2,
            "failed": {
                "doc_expired": {"severity": "warning", "rows": 4},
                "sex_code": {"severity": "error", "rows": 3},
            },
        }
    }


def test_accounting_that_does_not_add_up_is_refused() -> None:
    accounting = pa.table(
        {
            "flight_key": ["CI0100-TPE-NRT-20261201"] * 2,
            "outcome": ["published", "quarantined"],
            "travellers": [7, 2],
        }
    )

    assert check_accounting(9, accounting, "batch 0")["published"] == 7
    with pytest.raises(AccountingError, match="batch 3: 10 travellers received but 9"):
        check_accounting(10, accounting, "batch 3")
