"""Run one relation of ``sql/`` in DuckDB over tiny inline tables, as the package runs it.

The package runs each file over Arrow tables registered under the names it reads, with the
EDIFACT macros loaded and only the ``$name`` parameters it binds
(:func:`manifest_exchange.paths.read_sql_with_parameters`); so does :func:`run_relation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from manifest_exchange.paths import read_sql, read_sql_with_parameters

MACROS = (
    "macro_edifact_element",
    "macro_edifact_component",
    "macro_edifact_timestamp",
    "macro_edifact_date",
)


def run_relation(
    name: str,
    tables: Mapping[str, pa.Table],
    parameters: Mapping[str, object] | None = None,
    *,
    columns: Sequence[str] = (),
    order_by: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Rows of ``sql/<layer>/<name>.sql`` run over ``tables``, as dicts.

    Args:
        name: the file's stem.
        tables: the relations it reads, by name.
        parameters: values for its ``$name`` parameters (a missing one is a KeyError).
        columns: keep only these columns, in this order (all when empty).
        order_by: sort the rows by these columns (for relations that leave the order open).
    """
    sql, wanted = read_sql_with_parameters(name, parameters or {})
    with duckdb.connect(config={"threads": 1}) as connection:
        for macro in MACROS:
            connection.execute(read_sql(macro))
        for table_name, table in tables.items():
            connection.register(table_name, table)
        result = connection.execute(sql, wanted or None).to_arrow_table()
    if order_by:
        result = result.sort_by([(column, "ascending") for column in order_by])
    if columns:
        result = result.select(list(columns))
    rows: list[dict[str, Any]] = result.to_pylist()
    return rows


def table(rows: Sequence[Mapping[str, object]], schema: pa.Schema) -> pa.Table:
    """An Arrow table of ``rows`` (dicts; a missing key is null) with ``schema``'s types."""
    return pa.Table.from_pylist([dict(row) for row in rows], schema=schema)
