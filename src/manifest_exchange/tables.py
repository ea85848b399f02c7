"""Arrow table helpers shared by the parser and the transform."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def sorted_by(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    """``table`` in ascending order of ``keys``, nulls last (as DuckDB's ``ORDER BY``).

    The SQL that makes the wide tables leaves their order to this: an ``ORDER BY`` would carry
    every column through DuckDB's sort (decision 0010). A table already in order (integer keys
    checked in one pass) is returned as it is.
    """
    if table.num_rows < 2 or _in_order(table, keys):
        return table
    order = pc.sort_indices(table, sort_keys=[(key, "ascending", "at_end") for key in keys])
    return table.take(order)


def _in_order(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether integer ``keys`` without nulls are ascending; False when that is not known."""
    ties: np.ndarray | None = None
    for key in keys:
        column = table.column(key)
        if column.null_count or not pa.types.is_integer(column.type):
            return False
        step = np.diff(column.to_numpy().astype(np.int64))
        falling = step < 0 if ties is None else (step < 0) & ties
        if falling.any():
            return False
        ties = step == 0 if ties is None else ties & (step == 0)
        if not ties.any():
            return True
    return True


def with_columns_of(base: pa.Table, added: pa.Table, key: str) -> pa.Table:
    """``base``'s row for each row of ``added`` (matched on the unique ``key``), with
    ``added``'s columns: a column ``base`` has already is replaced where it stands, the others
    are appended in ``added``'s order.

    The transform's wide steps return only the columns they add from SQL, and this puts them
    beside the rows the step was given, so those rows are not copied through DuckDB and back
    (decision 0010). Rows of ``base`` that
    ``added`` lacks are left out, as an inner join would; a key of ``added`` missing in
    ``base`` is an error.
    """
    positions = pc.index_in(added.column(key), value_set=base.column(key))
    if positions.null_count:
        raise ValueError(f"{positions.null_count} rows have a {key} the base table lacks")
    if not _is_identity(positions, base.num_rows):
        base = base.take(positions)
    for name in added.column_names:
        column = added.column(name)
        index = base.schema.get_field_index(name)
        if index >= 0:
            base = base.set_column(index, added.schema.field(name), column)
        else:
            base = base.append_column(added.schema.field(name), column)
    return base


def _is_identity(positions: pa.ChunkedArray | pa.Array, rows: int) -> bool:
    """Whether ``positions`` are ``0 .. rows - 1`` in order."""
    if len(positions) != rows:
        return False
    if isinstance(positions, pa.ChunkedArray):
        positions = positions.combine_chunks()
    values = positions.to_numpy()
    return bool(np.array_equal(values, np.arange(rows, dtype=values.dtype)))
