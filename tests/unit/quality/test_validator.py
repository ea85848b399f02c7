from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from manifest_exchange.quality.suites import SuiteError, load_suite
from manifest_exchange.quality.validator import Validator


@pytest.fixture(scope="module")
def validator() -> Validator:
    return Validator()


def _travellers(**overrides: list[object]) -> pa.Table:
    rows = {
        "person_id": [1, 2, 3],
        "has_surname": [True, True, True],
        "sex": ["M", "F", "X"],
        "age_years": [30.0, 5.0, 70.0],
        "has_unknown_nationality": [False, False, False],
        "doc_type": ["P", "P", "P"],
        "doc_number_shape": ["A99999999", "999999999", "AA9999999"],
        "has_unknown_issuing_state": [False, False, False],
        "doc_valid_days_after_departure": [900, 400, 365],
        "list_ordinal": [1, 1, 1],
        "doc_ordinal": [1, 2, 3],
        "has_non_unoa_chars": [False, False, False],
        "is_doc_expiry_plausible": [True, True, None],
        "oversized_field": [None, None, None],
    }
    rows.update(overrides)
    return pa.table(rows)


def test_clean_travellers_raise_no_issue(validator: Validator) -> None:
    result = validator.validate(load_suite("paxlst_travellers"), _travellers())
    assert result.issues.num_rows == 0
    assert result.failed_checks == []


@pytest.mark.parametrize(
    ("overrides", "check", "severity"),
    [
        ({"sex": ["M", "Q", "X"]}, "sex_code", "error"),
        ({"age_years": [30.0, None, 70.0]}, "date_of_birth_valid", "error"),
        ({"age_years": [30.0, -0.5, 70.0]}, "date_of_birth_plausible", "error"),
        ({"has_unknown_nationality": [False, True, False]}, "nationality_code", "error"),
        ({"has_unknown_issuing_state": [False, True, False]}, "issuing_state_code", "error"),
        (
            {"doc_number_shape": ["A99999999", "99-9", "AA9999999"]},
            "document_number_format",
            "error",
        ),
        ({"doc_valid_days_after_departure": [900, -1, 365]}, "document_expired", "error"),
        ({"doc_ordinal": [1, 1, 3]}, "document_unique_on_flight", "error"),
        ({"doc_valid_days_after_departure": [900, 12, 365]}, "doc_expires_within_30d", "warning"),
        ({"has_non_unoa_chars": [False, True, False]}, "non_unoa_chars", "warning"),
        ({"age_years": [30.0, 120.5, 70.0]}, "date_of_birth_plausible", "error"),
        ({"is_doc_expiry_plausible": [True, False, None]}, "document_expiry_plausible", "error"),
        ({"oversized_field": [None, "given_names", None]}, "field_too_long", "error"),
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


def _messages(**overrides: list[object]) -> pa.Table:
    rows: dict[str, list[object]] = {
        "message_id": ["m1", "m2", "m3"],
        "bgm_code": ["745", "745", "745"],
        "bgm_function": [None, "CP", None],
        "carrier_code": ["CI", "BR", "JX"],
        "flight_number": ["0100", "0198", "0800"],
        "dep_country": ["TWN", "TWN", "TWN"],
        "arr_country": ["JPN", "JPN", "JPN"],
        "flight_minutes": [180, 200, 190],
        "is_flight_date_plausible": [True, True, None],
        "oversized_field": [None, None, None],
        "unt_count_difference": [0, 0, None],
        "has_matching_unt_ref": [True, True, None],
        "has_unz": [True, True, None],
        "unz_count_difference": [0, 0, None],
        "has_matching_unz_ref": [True, True, None],
    }
    rows.update(overrides)
    return pa.table(rows)


def test_clean_messages_raise_no_issue(validator: Validator) -> None:
    result = validator.validate(load_suite("paxlst_messages"), _messages())
    assert result.failed_checks == []


@pytest.mark.parametrize(
    ("overrides", "check"),
    [
        ({"is_flight_date_plausible": [True, False, None]}, "flight_date_plausible"),
        ({"oversized_field": [None, "carrier_code", None]}, "field_too_long"),
    ],
)
def test_each_message_check_names_the_failing_message(
    validator: Validator, overrides: dict[str, list[object]], check: str
) -> None:
    result = validator.validate(load_suite("paxlst_messages"), _messages(**overrides))
    failing = [r for r in result.issues.to_pylist() if r["check_name"] == check]
    assert [(r["row_id"], r["severity"]) for r in failing] == [("m2", "error")]
