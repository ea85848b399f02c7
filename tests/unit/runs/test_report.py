"""The run's validation totals, summed over its batches."""

from __future__ import annotations

from manifest_exchange.quality.validator import SuiteResult
from manifest_exchange.runs.report import QualitySummary, _inert_cell
from manifest_exchange.transform.schemas import ISSUES_SCHEMA


def _result(suite: str, rows: int, failed: dict[str, int]) -> SuiteResult:
    checks = [
        {"check": "sex_code", "severity": "error", "column": "sex"},
        {"check": "doc_expired", "severity": "warning", "column": "doc_valid_days"},
    ]
    for check in checks:
        name = str(check["check"])
        check |= {
            "success": name not in failed,
            "unexpected_count": failed.get(name, 0),
            "element_count": rows,
            "description": f"what {name} checks",
            "expectation": "expect_column_values_to_be_in_set",
        }
    return SuiteResult(suite, rows, ISSUES_SCHEMA.empty_table(), checks)


def test_quality_summary_adds_batches_up() -> None:
    summary = QualitySummary()
    summary.add(_result("paxlst_travellers", 10, {"sex_code": 2}))
    summary.add(_result("paxlst_travellers", 5, {"sex_code": 1, "doc_expired": 4}))
    summary.add(_result("paxlst_travellers", 7, {}))

    # What drop manifests and the report carry: failed checks only.
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
    # What the data-quality artifact shows: every check.
    assert summary.checks["paxlst_travellers"]["sex_code"] == {
        "severity": "error",
        "description": "what sex_code checks",
        "expectation": "expect_column_values_to_be_in_set",
        "column": "sex",
        "rows": 22,
        "failed": 3,
    }
    assert summary.checks["paxlst_travellers"]["doc_expired"]["failed"] == 4


def test_csv_cells_from_senders_never_run_as_spreadsheet_formulas() -> None:
    assert _inert_cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert _inert_cell("@SUM(A1)") == "'@SUM(A1)"
    assert _inert_cell(["sex_code", "document_expired"]) == "sex_code, document_expired"
    assert _inert_cell("paxlst/2026-12-01/CI/a.edi") == "paxlst/2026-12-01/CI/a.edi"
    assert _inert_cell(45) == 45
