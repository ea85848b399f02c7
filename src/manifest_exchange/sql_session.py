"""Short DuckDB statements over Arrow tables, on a database each thread reuses for a while.

The transform steps and the quality derivation each run one short statement over tables they
are handed. Opening a database per statement is slow, and one kept for the whole run holds what
its statements freed, so a thread's database serves :data:`STATEMENTS_PER_DATABASE` statements
and is then closed (decision 0006). Each statement gets a cursor of its own, closed after it: a
connection keeps its last result and, through it, the tables that statement read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from manifest_exchange.paths import read_sql

STATEMENTS_PER_DATABASE = 4

_local = threading.local()


@contextmanager
def arrow_session(
    tables: Mapping[str, pa.Table], macros: tuple[str, ...] = ()
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of this thread's database with ``tables`` registered on it and
    ``sql/<macros>.sql`` loaded; the tables are gone when the block ends.

    One DuckDB thread: batch threads and the publishing thread keep the cores busy already, and
    a second thread per query cost more CPU than it saved (decision 0007).
    """
    database: duckdb.DuckDBPyConnection | None = getattr(_local, "database", None)
    if database is None:
        database = duckdb.connect(config={"threads": 1})
        _local.database, _local.statements = database, 0
    cursor = database.cursor()
    try:
        for name in macros:
            # Loaded again each time (2 ms): the database then holds what sql/ says now.
            cursor.execute(read_sql(name))
        for name, table in tables.items():
            cursor.register(name, table)
        yield cursor
    finally:
        cursor.close()
        _local.statements += 1
        if _local.statements >= STATEMENTS_PER_DATABASE:
            database.close()
            _local.database = None
