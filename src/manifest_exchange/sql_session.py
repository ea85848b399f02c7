"""Short DuckDB statements over Arrow tables, each in an in-memory database of its own.

The transform steps and the quality derivation each run one statement over tables they are
handed. Opening a database costs about 9 ms here, yet each statement still gets its own and
closes it: a database kept for the process (one cursor per statement) ran a batch about a tenth
faster, but DuckDB's allocator kept what the statements had freed, and peak RSS on the 1M bench
went from 1.6 to 3.5 GB. Memory that is bounded by the batch matters more.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import duckdb
import pyarrow as pa

from manifest_exchange.paths import read_sql


@contextmanager
def arrow_session(
    tables: Mapping[str, pa.Table], macros: tuple[str, ...] = ()
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A new in-memory database with ``tables`` registered and ``sql/<macros>.sql`` loaded,
    closed (and its memory freed) when the block ends.

    One DuckDB thread: a run checks two batches at once beside the thread that publishes, so
    the cores are busy already, and a second thread per query cost more CPU than it saved
    (exchange_travellers on 61,000 travellers: 0.70 CPU seconds on two, 0.51 on one).
    """
    with duckdb.connect(config={"threads": 1}) as connection:
        for name in macros:
            connection.execute(read_sql(name))
        for name, table in tables.items():
            connection.register(name, table)
        yield connection
