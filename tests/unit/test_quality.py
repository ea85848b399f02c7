from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from manifest_exchange.quality import SuiteError, Validator, load_suite


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Validator:
    return Validator(tmp_path_factory.mktemp("gx"))


def _travellers(**overrides: list[object]) -> pa.Table:
    rows = {
        "person_id": [1, 2, 3],
        "has_surname": [True, True, True],
        "sex": ["M", "F", "X"],
        "age_years": [30.0, 5.0, 70.0],
        "nationality": ["TWN", "DEU", "XXA"],
        "doc_type": ["P", "P", "P"],
        "doc_number_shape": ["A99999999", "999999999", "AA9999999"],
        "doc_issuing_state": ["TWN", "DEU", "TWN"],
        "doc_valid_days_after_departure": [900, 400, 365],
        "list_key": ["f1", "f1", "f1"],
        "doc_ordinal": [1, 2, 3],
        "has_non_unoa_chars": [False, False, False],
    }
    rows.update(overrides)
    return pa.table(rows)


def test_clean_travellers_raise_no_issue(validator: Validator) -> None:
    result = validator.validate(load_suite("paxlst_travellers"), _travellers())
    assert result.issues.num_rows == 0
    assert result.failed_checks == []
    assert (validator.data_docs_dir / "index.html").is_file()


@pytest.mark.parametrize(
    ("overrides", "check", "severity"),
    [
        ({"sex": ["M", "Q", "X"]}, "sex_code", "error"),
        ({"age_years": [30.0, None, 70.0]}, "date_of_birth_valid", "error"),
        ({"age_years": [30.0, -0.5, 70.0]}, "date_of_birth_plausible", "error"),
        ({"nationality": ["TWN", "ZZQ", "XXA"]}, "nationality_code", "error"),
        (
            {"doc_number_shape": ["A99999999", "99-9", "AA9999999"]},
            "document_number_format",
            "error",
        ),
        ({"doc_valid_days_after_departure": [900, -1, 365]}, "document_expired", "error"),
        ({"doc_ordinal": [1, 1, 3]}, "document_unique_on_flight", "error"),
        ({"doc_valid_days_after_departure": [900, 12, 365]}, "doc_expires_within_30d", "warning"),
        ({"has_non_unoa_chars": [False, True, False]}, "non_unoa_chars", "warning"),
    ],
)
def test_each_check_names_the_failing_row(
    validator: Validator, overrides: dict[str, list[object]], check: str, severity: str
) -> None:
    result = validator.validate(load_suite("paxlst_travellers"), _travellers(**overrides))
    failing = [r for r in result.issues.to_pylist() if r["check_name"] == check]
    assert {r["row_id"] for r in failing} >= {"2"}
    assert {r["severity"] for r in failing} == {severity}


def test_a_suite_without_severity_is_refused(tmp_path: Path) -> None:
    suite = {
        "name": "broken",
        "meta": {"row_id": "id"},
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
        ],
    }
    (tmp_path / "broken.json").write_text(json.dumps(suite))
    with pytest.raises(SuiteError, match="severity"):
        load_suite("broken", tmp_path)
