"""Which rows fail which expectation, derived in DuckDB from the suite's own expectations.

GX reports row ids only in its ``COMPLETE`` result format, which pulls every failing value
out of pandas one at a time: on a batch of 30,000 travellers that was most of validation.
Here each expectation of a suite becomes a call of the DuckDB macro of the same name
(``sql/macro_expectations.sql``) over the suite's columns, so the rules stay in one place,
the suite file. GX still runs every expectation (in its ``BASIC`` format, which counts) and
:func:`check_counts` refuses a batch where the two disagree on any expectation's count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from manifest_exchange.sql_session import arrow_session

# sql/<MACROS>.sql: one macro per supported expectation type.
MACROS = "macro_expectations"
# Each supported expectation type: the kwargs its macro takes, in order. A suite using another
# type, or another kwarg (``mostly``, strict bounds...), is refused when it is loaded.
MACRO_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "expect_column_values_to_not_be_null": ("column",),
    "expect_column_values_to_be_null": ("column",),
    "expect_column_values_to_be_in_set": ("column", "value_set"),
    "expect_column_values_to_not_be_in_set": ("column", "value_set"),
    "expect_column_values_to_be_between": ("column", "min_value", "max_value"),
    "expect_column_values_to_match_regex": ("column", "regex"),
    "expect_compound_columns_to_be_unique": ("column_list", "ignore_row_if"),
}
# Optional kwargs (a between may have one bound only).
_OPTIONAL = {"min_value", "max_value"}


class UnsupportedExpectationError(ValueError):
    """An expectation the DuckDB derivation cannot follow exactly."""


class CountMismatchError(RuntimeError):
    """GX and the DuckDB derivation counted different failures for one expectation."""


@dataclass(frozen=True)
class Failures:
    """Failing row ids per check (``meta.check``, unique in a suite), in row-id order."""

    row_ids: dict[str, list[str]]

    def count(self, check: str) -> int:
        return len(self.row_ids.get(check, []))


def check_supported(expectation: Mapping[str, Any]) -> None:
    """Refuse an expectation whose failing rows this module cannot derive exactly."""
    kind = expectation["type"]
    if kind not in MACRO_ARGUMENTS:
        raise UnsupportedExpectationError(f"{kind} has no macro in sql/macro_expectations.sql")
    allowed = set(MACRO_ARGUMENTS[kind])
    kwargs = expectation["kwargs"]
    extra = set(kwargs) - allowed
    missing = allowed - _OPTIONAL - set(kwargs)
    if extra or missing:
        raise UnsupportedExpectationError(
            f"{kind}: kwargs {sorted(extra)} not supported, {sorted(missing)} required"
        )
    if kind == "expect_compound_columns_to_be_unique" and (
        kwargs["ignore_row_if"] != "any_value_is_missing"
    ):
        raise UnsupportedExpectationError(f"{kind}: only ignore_row_if any_value_is_missing")


def find_failures(
    expectations: Sequence[Mapping[str, Any]],
    row_id: str,
    table: pa.Table,
    parameters: Mapping[str, Any],
) -> Failures:
    """Run every expectation's macro over ``table`` in one DuckDB query.

    Args:
        expectations: the suite's expectations, each already :func:`check_supported`.
        row_id: the column naming a row.
        table: the rows, with ``row_id`` and every column the expectations read.
        parameters: values for ``{"$PARAMETER": name}`` kwargs, as GX is given them.
    """
    flags: list[str] = []
    values: list[Any] = []
    for number, expectation in enumerate(expectations):
        call = _macro_call(expectation, parameters, values)
        flags.append(f"{call} as failed_{number}")
    # One pass computes every flag; unpivoting lists (expectation, row) for the flags set. Only
    # rows with a flag set are unpivoted: most rows pass every check, and unpivoting all of them
    # was most of this query.
    any_failed = " or ".join(f"failed_{number}" for number in range(len(expectations)))
    sql = f"""
        with flagged as (select {_quote(row_id)} as row_key, {", ".join(flags)} from suite_rows),
        failing as (select * from flagged where {any_failed or "false"})
        select cast(substr(expectation, 8) as integer) as expectation,
               cast(row_key as varchar) as row_id
        from (unpivot failing on columns('^failed_') into name expectation value failed)
        where failed
        order by expectation, row_key
    """  # noqa: S608 - identifiers are quoted, values are bound
    with arrow_session({"suite_rows": table}, macros=(MACROS,)) as connection:
        found = connection.execute(sql, values).to_arrow_table()
    checks = [expectation["meta"]["check"] for expectation in expectations]
    row_ids: dict[str, list[str]] = {}
    for expectation, failed_row in zip(
        found["expectation"].to_pylist(), found["row_id"].to_pylist(), strict=True
    ):
        row_ids.setdefault(checks[expectation], []).append(failed_row)
    return Failures(row_ids)


def check_counts(suite: str, counted: Mapping[str, int], found: Failures) -> None:
    """Refuse a batch where GX's count of failures differs from the derived rows for any check.

    Args:
        suite: the suite's name, for the message.
        counted: GX's ``unexpected_count`` per check.
        found: the derived failing rows.
    """
    for check, count in counted.items():
        if found.count(check) != count:
            raise CountMismatchError(
                f"{suite}/{check}: GX counted {count} failing rows, "
                f"sql/macro_expectations.sql found {found.count(check)}"
            )
    unknown = set(found.row_ids) - set(counted)
    if unknown:
        raise CountMismatchError(f"{suite}: rows failed checks GX did not run: {sorted(unknown)}")


def _macro_call(
    expectation: Mapping[str, Any], parameters: Mapping[str, Any], values: list[Any]
) -> str:
    """``macro(arguments)`` for one expectation; values go to ``values`` as bound parameters."""
    kind = expectation["type"]
    kwargs = expectation["kwargs"]
    arguments = []
    for name in MACRO_ARGUMENTS[kind]:
        if name == "column":
            arguments.append(_quote(kwargs[name]))
        elif name == "column_list":
            columns = [_quote(column) for column in kwargs[name]]
            arguments.append(f"row({', '.join(columns)})")
        elif name == "ignore_row_if":  # any_value_is_missing (check_supported)
            columns = [_quote(column) for column in kwargs["column_list"]]
            arguments.append("(" + " or ".join(f"{c} is null" for c in columns) + ")")
        else:
            values.append(_resolve(kwargs.get(name), parameters))
            arguments.append(f"${len(values)}")
    return f"{kind}({', '.join(arguments)})"


def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
