from __future__ import annotations

import threading

import duckdb
import pyarrow as pa
import pytest

from manifest_exchange import sql_session
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


def test_the_cursor_is_closed_after_the_block_even_when_a_statement_fails() -> None:
    with (
        pytest.raises(duckdb.BinderException),
        arrow_session({"numbers": pa.table({"n": [1]})}) as c,
    ):
        c.execute("select no_such_column from numbers")
    with pytest.raises(duckdb.ConnectionException):
        c.execute("select 1")


def test_a_threads_database_serves_a_few_statements_then_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reused for STATEMENTS_PER_DATABASE statements (what it keeps is bounded by them)."""
    # Start from a new database, whatever earlier tests ran on this thread.
    monkeypatch.setattr(sql_session, "_local", threading.local())
    with arrow_session({}) as connection:
        connection.execute("create table session_marker as select 1 as n")
    seen = []
    for _ in range(sql_session.STATEMENTS_PER_DATABASE):
        with arrow_session({}) as connection:
            found = connection.execute(
                "select count(*) from information_schema.tables where table_name = 'session_marker'"
            ).fetchone()
            seen.append(found == (1,))
    # The marker lives as long as its database: the statements after it in the same one see
    # it, the first statement of the next database does not.
    reused = sql_session.STATEMENTS_PER_DATABASE - 1
    assert seen == [True] * reused + [False]
