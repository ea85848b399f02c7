"""Short DuckDB statements over Arrow tables, on a database each thread reuses for a while.

The transform steps and the quality derivation each run one statement over tables they are
handed, about nine per batch. Opening a database costs about 9 ms here, and a database reused
keeps the memory its statements freed, so the next ones do not fault fresh pages in. Kept for
the whole run, one database per thread made the 1M run much faster but held about 2 GB more
(peak RSS 3.5 GB). So a thread's database serves :data:`STATEMENTS_PER_DATABASE` statements
and is then closed, which bounds what it can hold. Measured at 1M against a database per
statement (same round): 4 statements, 49.4 s against 57.1 s, peak 1,741 MB against 1,384 MB; 8
statements gained about as much (49.5 s against 53.1 s) but peaked at 1,985 MB, too near the
2 GB target. Each statement gets a cursor of its own, closed after it: a connection keeps its
last result and, through it, the tables that statement read.
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

    One DuckDB thread: a run checks two batches at once beside the thread that publishes, so
    the cores are busy already, and a second thread per query cost more CPU than it saved
    (exchange_travellers on 61,000 travellers: 0.70 CPU seconds on two, 0.51 on one).
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
