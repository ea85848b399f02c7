"""The records already published, which the next batch's outcomes are decided against."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    get_many,
    iter_objects,
    read_parquet,
)
from manifest_exchange.transform.schemas import RECORD_INDEX_SCHEMA


class RecordIndex:
    """Every record published so far (one row per publication), read incrementally.

    Index files are immutable (one per drop), so each refresh lists the index and reads only
    the files it has not read yet: a run of many batches does not read the index per batch.
    """

    def __init__(self, client: S3Client, root: S3Location) -> None:
        self.client = client
        self.root = root
        self._tables: dict[str, pa.Table] = {}

    def current(self) -> pa.Table:
        keys = [info.key for info in iter_objects(self.client, self.root)]
        new = [key for key in keys if key not in self._tables]
        for key, data in zip(new, get_many(self.client, self.root.bucket, new), strict=True):
            self._tables[key] = _as_index(read_parquet(data))
        tables = [self._tables[key] for key in keys]
        return pa.concat_tables(tables) if tables else RECORD_INDEX_SCHEMA.empty_table()

    def for_records(
        self,
        record_ids: pa.Array | pa.ChunkedArray,
        person_keys: pa.Array | pa.ChunkedArray | None = None,
    ) -> pa.Table:
        """The current index rows of ``record_ids`` (and of ``person_keys``, the same people
        under another record id) only: what one batch is compared with."""
        index = self.current()
        wanted = pc.is_in(index["record_id"], value_set=pc.unique(record_ids))
        if person_keys is not None:
            same_people = pc.is_in(index["person_key"], value_set=pc.unique(person_keys))
            wanted = pc.or_(wanted, pc.fill_null(same_people, False))
        return index.filter(wanted)


def _as_index(table: pa.Table) -> pa.Table:
    """An index file in the current schema; columns added since it was written are null."""
    for column in RECORD_INDEX_SCHEMA:
        if column.name not in table.column_names:
            table = table.append_column(column, pa.nulls(table.num_rows, column.type))
    return table.select(RECORD_INDEX_SCHEMA.names).cast(RECORD_INDEX_SCHEMA)
