"""The DuckDB derivation of failing rows against GX's own row ids, on every suite."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from manifest_exchange import sql_session
from manifest_exchange.quality.failures import CountMismatchError, find_failures
from manifest_exchange.quality.suites import SUITES, Suite, SuiteError, load_suite
from manifest_exchange.quality.validator import Validator

ROWS = 600


def _candidates(suite: Suite, parameters: dict[str, Any]) -> dict[str, list[Any]]:
    """Per column, values on both sides of every rule the suite applies to it, and null."""
    values: dict[str, list[Any]] = {column: [None] for column in suite.columns}
    for expectation in suite.definition["expectations"]:
        kwargs = expectation["kwargs"]
        column = kwargs.get("column")
        if "value_set" in kwargs:
            allowed = kwargs["value_set"]
            if isinstance(allowed, dict):
                allowed = parameters[allowed["$PARAMETER"]][:5]
            if all(isinstance(v, bool) for v in allowed):
                values[column] += [True, False]
            else:
                values[column] += [*allowed, "ZZQ", "0"]
        if "min_value" in kwargs or "max_value" in kwargs:
            for bound in (kwargs.get("min_value"), kwargs.get("max_value")):
                if isinstance(bound, dict):
                    bound = parameters[bound["$PARAMETER"]]
                if bound is not None:
                    values[column] += [bound - 1, bound, bound + 1, bound + 0.5]
        if "regex" in kwargs:
            values[column] += ["A9999", "AAAA", "99-99", "A" * 21, "9" * 20, ""]
        for listed in kwargs.get("column_list", []):
            values[listed] += ["k1", "k2"] if listed == suite.row_id else [1, 2, 3]
    for pool in values.values():
        if pool == [None]:  # a column only checked for presence
            pool += ["X1", "X2"]
    return values


def _random_rows(suite: Suite, parameters: dict[str, Any], seed: int) -> pa.Table:
    pick = random.Random(seed)
    columns = {
        column: [pick.choice(pool) for _ in range(ROWS)]
        for column, pool in _candidates(suite, parameters).items()
    }
    columns[suite.row_id] = list(range(ROWS))
    return pa.table(columns)


def _gx_complete_row_ids(suite: Suite, table: pa.Table, parameters: dict[str, Any]) -> dict:
    """What GX itself names, in its COMPLETE format, as each check's failing rows."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("oracle")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": table.to_pandas()})
    )
    expectations = gx.ExpectationSuite(
        name=suite.name, expectations=suite.definition["expectations"]
    )
    complete = {"result_format": "COMPLETE", "unexpected_index_column_names": [suite.row_id]}
    result = batch.validate(expectations, result_format=complete, expectation_parameters=parameters)
    named = {}
    for outcome in result.results:
        indexes = outcome.result.get("unexpected_index_list") or []
        named[outcome.expectation_config.meta["check"]] = sorted(
            str(index[suite.row_id]) for index in indexes
        )
    return named


@pytest.fixture(scope="module")
def parameters() -> dict[str, Any]:
    return Validator().parameters


@pytest.mark.parametrize("suite_name", SUITES)
@pytest.mark.parametrize("seed", [1, 2])
def test_derived_rows_are_the_rows_gx_names(
    suite_name: str, seed: int, parameters: dict[str, Any]
) -> None:
    suite = load_suite(suite_name)
    table = _random_rows(suite, parameters, seed)
    expected = _gx_complete_row_ids(suite, table, parameters)
    found = find_failures(suite.definition["expectations"], suite.row_id, table, parameters)
    derived = {check: sorted(found.row_ids.get(check, [])) for check in expected}
    assert derived == expected
    # The rows are mixed enough that most checks fail somewhere and none fails everywhere.
    failing = [check for check, rows in expected.items() if rows]
    assert len(failing) >= len(expected) - 1
    assert all(len(rows) < ROWS for rows in expected.values())


def test_a_macro_that_drifts_from_gx_fails_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A between macro that forgets its upper bound counts fewer failures than GX."""
    original = sql_session.read_sql

    def drifted(name: str) -> str:
        return original(name).replace("value < min_value or value > max_value", "value < min_value")

    monkeypatch.setattr(sql_session, "read_sql", drifted)
    validator = Validator()
    travellers = load_suite("paxlst_travellers")
    table = _random_rows(travellers, validator.parameters, seed=3)
    with pytest.raises(CountMismatchError, match="date_of_birth_plausible"):
        validator.validate(travellers, table)


@pytest.mark.parametrize(
    ("expectation", "message"),
    [
        (
            {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a"}},
            "no macro",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a", "mostly": 0.9},
            },
            "mostly",
        ),
        (
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": ["a", "b"], "ignore_row_if": "never"},
            },
            "any_value_is_missing",
        ),
    ],
)
def test_an_expectation_the_derivation_cannot_follow_is_refused(
    tmp_path: Path, expectation: dict[str, Any], message: str
) -> None:
    expectation["meta"] = {"check": "a_check", "severity": "error", "description": "a is fine"}
    suite = {"name": "odd", "meta": {"row_id": "id"}, "expectations": [expectation]}
    (tmp_path / "odd.json").write_text(json.dumps(suite))
    with pytest.raises(SuiteError, match=message):
        load_suite("odd", tmp_path)


def test_check_names_are_unique_in_a_suite(tmp_path: Path) -> None:
    check = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "a"},
        "meta": {"check": "a_present", "severity": "error", "description": "a is present"},
    }
    suite = {"name": "twice", "meta": {"row_id": "id"}, "expectations": [check, check]}
    (tmp_path / "twice.json").write_text(json.dumps(suite))
    with pytest.raises(SuiteError, match="a_present"):
        load_suite("twice", tmp_path)


def test_every_check_says_what_it_checks(tmp_path: Path) -> None:
    """The run's data-quality artifact shows each check's description beside its count."""
    check = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "a"},
        "meta": {"check": "a_present", "severity": "error"},
    }
    suite = {"name": "terse", "meta": {"row_id": "id"}, "expectations": [check]}
    (tmp_path / "terse.json").write_text(json.dumps(suite))
    with pytest.raises(SuiteError, match=r"meta\.description"):
        load_suite("terse", tmp_path)
