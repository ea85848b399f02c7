from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from manifest_exchange.sql_session import arrow_session


def test_tables_and_macros_are_there_for_the_block_only() -> None:
    table = pa.table({"n": [1, 2, 3]})
    with arrow_session({"numbers": table}, macros=("macro_expectations",)) as connection:
        assert connection.execute("select sum(n) from numbers").fetchone() == (6,)
        assert connection.execute(
            "select expect_column_values_to_be_in_set('X', ['A', 'B'])"
        ).fetchone() == (True,)
    with arrow_session({}) as connection, pytest.raises(duckdb.CatalogException):
        connection.execute("select * from numbers")


def test_the_database_is_closed_after_the_block_even_when_a_statement_fails() -> None:
    with (
        pytest.raises(duckdb.BinderException),
        arrow_session({"numbers": pa.table({"n": [1]})}) as c,
    ):
        c.execute("select no_such_column from numbers")
    with pytest.raises(duckdb.ConnectionException):
        c.execute("select 1")
