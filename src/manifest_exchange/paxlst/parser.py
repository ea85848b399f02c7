"""PAXLST parser: objects' bytes -> Arrow tables of objects, messages, persons and errors.

Per object, Python only canonicalises the text (:mod:`.syntax`, whole-string operations); Arrow
splits and numbers the segments of a whole batch (:mod:`.segments`); every field is then read by
DuckDB SQL from ``sql/``, over all objects of the batch at once:

``stg_paxlst_segments`` -> ``stg_paxlst_interchanges`` / ``stg_paxlst_messages`` /
``stg_paxlst_legs`` -> ``paxlst_messages`` -> ``stg_paxlst_persons`` -> ``paxlst_persons``,
and ``paxlst_errors``.

A message that cannot be read (no UNT, not PAXLST) is reported in ``errors`` with its segment
position; the other messages of the same object are still read. An object that is not EDIFACT
at all (empty, binary) is reported as one error with no message.
"""

from __future__ import annotations

import math
import os
import queue
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from manifest_exchange.digests import sha256_hex
from manifest_exchange.paths import read_sql, read_sql_with_parameters
from manifest_exchange.paxlst.segments import SplitBatch, split_batch
from manifest_exchange.paxlst.syntax import UnreadableObjectError, canonicalise, split_at_messages
from manifest_exchange.reference.codes import airports_arrow, countries_arrow
from manifest_exchange.tables import sorted_by

MACROS = (
    "macro_edifact_element",
    "macro_edifact_component",
    "macro_edifact_timestamp",
    "macro_edifact_date",
)
# In dependency order, per batch; each becomes a temporary table named after its file.
RELATIONS = (
    "stg_paxlst_segments",
    "stg_paxlst_persons",
    "stg_paxlst_interchanges",
    "stg_paxlst_messages",
    "stg_paxlst_legs",
    "paxlst_messages",
    "paxlst_persons",
    "paxlst_errors",
)
# Relations read by several later ones are computed once; the rest stay views (no copy).
MATERIALISED = frozenset({"stg_paxlst_segments", "paxlst_messages"})
# Persons in the order they were sent (sql/staging/paxlst_persons.sql leaves the sorting to Arrow).
PERSON_ORDER = ("object_id", "segment_position")
# Objects above this size are refused, not parsed: parsing holds an object's text in memory
# several times over. A full A380 manifest is about 300 KB, so 64 MiB is ~200 flights in one
# interchange; anything larger is a loader fault or an attack, and is quarantined whole.
MAX_OBJECT_BYTES = 64 * 1024 * 1024
# A batch's SQL and Arrow work peaks at a few times its text; batches of about this size keep
# a worker's peak near 100-200 MB.
BATCH_BYTES = 8 * 1024 * 1024

OBJECTS_SCHEMA = pa.schema(
    [
        ("object_id", pa.int32()),
        ("object_key", pa.string()),
        ("bytes", pa.int64()),
        ("source_sha256", pa.string()),
        ("encoding", pa.string()),
        ("has_non_ascii", pa.bool_()),
        ("error_code", pa.string()),
    ]
)
ERRORS_SCHEMA = pa.schema(
    [
        ("object_id", pa.int32()),
        ("object_key", pa.string()),
        ("message_seq", pa.int64()),
        ("segment_position", pa.int64()),
        ("error_code", pa.string()),
        ("reason", pa.string()),
    ]
)


@dataclass(frozen=True)
class SourceObject:
    """One object to parse: its key (for lineage and error messages) and its bytes.

    ``unfetched_size`` is set instead of ``data`` for an object the reader did not download
    because the store listed it above the size limit; it is refused with that size.
    """

    key: str
    data: bytes
    unfetched_size: int | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.unfetched_size is None else self.unfetched_size


@dataclass(frozen=True)
class ParseResult:
    """What a batch of objects parsed into. ``object_id`` links the tables."""

    objects: pa.Table
    messages: pa.Table
    persons: pa.Table
    errors: pa.Table


class PaxlstParser:
    """Parses batches of PAXLST objects with one DuckDB connection.

    Args:
        origin_country: alpha-3 country whose departure leg is the flight's departure
            (progressive flights with LOC 92 legs only).
        destination_country: alpha-3 country whose first arrival is the flight's arrival.
        workers: batches :meth:`parse_batches` parses at once (default: one per core).
        threads: DuckDB threads (default: one when several workers share the cores,
            otherwise DuckDB's choice, one per core).
        chunk_chars: large objects are cut at message starts into pieces of about this size.
        max_object_bytes: larger objects are refused as ``object_too_large`` (see
            :data:`MAX_OBJECT_BYTES`).
    """

    def __init__(
        self,
        origin_country: str = "TWN",
        destination_country: str = "JPN",
        *,
        workers: int | None = None,
        threads: int | None = None,
        chunk_chars: int = 32 * 1024 * 1024,
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        self.parameters = {
            "origin_country": origin_country,
            "destination_country": destination_country,
        }
        self.workers = max(1, workers if workers is not None else os.cpu_count() or 1)
        self.chunk_chars = chunk_chars
        self.max_object_bytes = max_object_bytes
        self.connection = duckdb.connect()
        # One batch's SQL barely uses a second DuckDB thread (its inputs are one Arrow chunk
        # and its plans are short), so parallelism comes from batches: with several workers,
        # each batch runs on one thread.
        if threads is None and self.workers > 1:
            threads = 1
        if threads is not None:
            self.connection.execute(f"set threads = {int(threads)}")
        self._idle_cursors: queue.SimpleQueue[duckdb.DuckDBPyConnection] = queue.SimpleQueue()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._with_views: set[duckdb.DuckDBPyConnection] = set()
        # Insertion order is what lets positions mean "n-th segment of the object".
        self.connection.execute("set preserve_insertion_order = true")
        # The SQL joins small lookups (messages, countries) on the right. DuckDB would swap
        # sides where its estimates are off and hash every person's wide row instead (a fifth
        # of the persons query here), so the sides stay as written.
        self.connection.execute("set disabled_optimizers = 'build_side_probe_side'")
        for macro in MACROS:
            self.connection.execute(read_sql(macro))
        self._register("airports", airports_arrow())
        self._register("countries", countries_arrow())

    def _register(self, name: str, table: pa.Table) -> None:
        self.connection.from_arrow(table).create(name)

    def _create(self, connection: duckdb.DuckDBPyConnection, relation: str) -> None:
        """Create ``sql/<relation>.sql`` as a table (if read again later) or a view."""
        sql, wanted = read_sql_with_parameters(relation, self.parameters)
        kind = "table" if relation in MATERIALISED else "view"
        if kind == "view":
            # Views cannot take parameters; none of the viewed relations needs one.
            assert not wanted, f"{relation} takes parameters, so it must be materialised"
        # The relation name is one of this module's constants; values go in as parameters.
        connection.execute(f"create or replace temp {kind} {relation} as {sql}", wanted or None)

    def close(self) -> None:
        for cursor in self._cursors:
            cursor.close()
        self.connection.close()

    def __enter__(self) -> PaxlstParser:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def parse(self, objects: Sequence[SourceObject]) -> ParseResult:
        """Parse one batch of objects (on a cursor of its own: threads may share a parser)."""
        return self._parse_on_idle_cursor(objects)

    def parse_batches(self, batches: Iterable[Sequence[SourceObject]]) -> Iterator[ParseResult]:
        """Parse batches, ``workers`` at a time, and yield the results in the batches' order.

        Each batch is prepared (Python and Arrow) and queried (DuckDB) by one worker on its own
        cursor of the parser's database (temporary relations are per cursor). Arrow and DuckDB
        release the GIL, so the workers run on separate cores. At most ``workers`` batches are
        in flight, so memory stays bounded whatever the number of batches.
        """
        with ThreadPoolExecutor(self.workers, thread_name_prefix="paxlst-batch") as pool:
            pending: deque[Future[ParseResult]] = deque()
            for batch in batches:
                if len(pending) == self.workers:
                    yield pending.popleft().result()
                pending.append(pool.submit(self._parse_on_idle_cursor, batch))
            while pending:
                yield pending.popleft().result()

    def _parse_on_idle_cursor(self, objects: Sequence[SourceObject]) -> ParseResult:
        prepared = prepare(objects, self.chunk_chars, self.max_object_bytes)
        try:
            cursor = self._idle_cursors.get_nowait()
        except queue.Empty:
            cursor = self.connection.cursor()
            self._cursors.append(cursor)
        try:
            return self._query(cursor, prepared)
        finally:
            self._idle_cursors.put(cursor)

    def _query(self, connection: duckdb.DuckDBPyConnection, prepared: PreparedBatch) -> ParseResult:
        messages, persons, message_errors = (
            with_keys(table, prepared.keys)
            for table in self._run_relations(connection, prepared.split)
        )
        errors = pa.concat_tables(
            [
                prepared.object_errors,
                message_errors.select(ERRORS_SCHEMA.names).cast(ERRORS_SCHEMA),
            ]
        )
        return ParseResult(
            objects=prepared.objects, messages=messages, persons=persons, errors=errors
        )

    def _run_relations(
        self, connection: duckdb.DuckDBPyConnection, split: SplitBatch
    ) -> tuple[pa.Table, pa.Table, pa.Table]:
        """Run the SQL over one split batch; return its messages, persons and errors."""
        inputs = {
            "raw_segments": split.segments,
            "raw_persons": split.persons,
            "raw_payloads": split.payloads,
        }
        for name, table in inputs.items():
            connection.register(name, table)
        try:
            # Views read whatever the inputs' names hold, so a cursor creates them once;
            # materialised relations are computed again for every batch.
            first_use = connection not in self._with_views
            for relation in RELATIONS:
                if first_use or relation in MATERIALISED:
                    self._create(connection, relation)
            self._with_views.add(connection)
            # Views read the inputs when fetched, so fetch before unregistering them.
            return (
                _fetch(connection, "paxlst_messages"),
                sorted_by(_fetch(connection, "paxlst_persons"), PERSON_ORDER),
                _fetch(connection, "paxlst_errors"),
            )
        finally:
            for name in inputs:
                connection.unregister(name)


def _fetch(connection: duckdb.DuckDBPyConnection, relation: str) -> pa.Table:
    """Read a relation whole. A query binds once; ``connection.table(...)`` binds twice, and
    binding the parser's views costs as much as running them on a small batch."""
    return connection.execute(f"select * from {relation}").to_arrow_table()  # noqa: S608


@dataclass(frozen=True)
class PreparedBatch:
    """A batch after the Python/Arrow steps, ready for the SQL."""

    keys: pa.Array
    objects: pa.Table
    object_errors: pa.Table
    split: SplitBatch


def prepare(
    objects: Sequence[SourceObject], chunk_chars: int, max_object_bytes: int = MAX_OBJECT_BYTES
) -> PreparedBatch:
    """Canonicalise every object and split the batch into segments, persons and payloads."""
    object_rows: dict[str, list[object]] = {name: [] for name in OBJECTS_SCHEMA.names}
    chunk_rows: dict[str, list[object]] = {"object_id": [], "segment_offset": [], "text": []}
    object_errors: list[dict[str, object]] = []
    for object_id, source in enumerate(objects):
        error_code, encoding, has_non_ascii = None, None, False
        try:
            _check_size(source, max_object_bytes)
            canonical = canonicalise(source.data)
        except UnreadableObjectError as failure:
            error_code = failure.code
            object_errors.append(
                {
                    "object_id": object_id,
                    "object_key": source.key,
                    "message_seq": None,
                    "segment_position": None,
                    "error_code": failure.code,
                    "reason": failure.reason,
                }
            )
        else:
            encoding, has_non_ascii = canonical.encoding, canonical.has_non_ascii
            for offset, piece in split_at_messages(canonical.text, chunk_chars):
                chunk_rows["object_id"].append(object_id)
                chunk_rows["segment_offset"].append(offset)
                chunk_rows["text"].append(piece)
        for name, value in zip(
            OBJECTS_SCHEMA.names,
            (
                object_id,
                source.key,
                source.size,
                _sha256(source),
                encoding,
                has_non_ascii,
                error_code,
            ),
            strict=True,
        ):
            object_rows[name].append(value)
    split = split_batch(
        pa.array(chunk_rows["object_id"], pa.int32()),
        pa.array(chunk_rows["segment_offset"], pa.int64()),
        pa.array(chunk_rows["text"], pa.large_string()),
    )
    return PreparedBatch(
        keys=pa.array([o.key for o in objects], pa.string()),
        objects=pa.table(object_rows, schema=OBJECTS_SCHEMA),
        object_errors=pa.Table.from_pylist(object_errors, ERRORS_SCHEMA),
        split=split,
    )


def _sha256(source: SourceObject) -> str | None:
    return None if source.unfetched_size is not None else sha256_hex(source.data)


def _check_size(source: SourceObject, max_object_bytes: int) -> None:
    if source.size > max_object_bytes:
        raise UnreadableObjectError(
            "object_too_large",
            f"the object is {source.size:,} bytes and the limit is {max_object_bytes:,}: "
            "split the interchange and land the parts again",
        )


def with_keys(table: pa.Table, keys: pa.Array) -> pa.Table:
    """Add ``object_key`` beside ``object_id`` (ids index the batch's key list)."""
    object_key = keys.take(table.column("object_id").cast(pa.int32()))
    return table.add_column(1, "object_key", object_key)


def batch_bytes_for(sizes: Sequence[int], workers: int, max_bytes: int = BATCH_BYTES) -> int:
    """A ``batches`` size for objects of these sizes that keeps ``workers`` busy to the end.

    The objects are cut into a multiple of ``workers`` batches of at most about ``max_bytes``,
    so the last round is not one worker parsing alone while the others wait: a run's 10 MB
    batch is parsed as two batches of 5 MB on two workers, not as 8 MB and then 2 MB. One
    object's size is added because ``batches`` closes a batch before the object that would
    overflow it; without it, a last sliver would make one batch more.
    """
    total = sum(sizes)
    if total == 0:
        return max_bytes
    count = math.ceil(total / (max_bytes * workers)) * workers
    return min(max_bytes, math.ceil(total / count) + max(sizes))


def batches(
    sources: Iterable[SourceObject], max_bytes: int = BATCH_BYTES
) -> Iterator[list[SourceObject]]:
    """Group objects into batches of about ``max_bytes`` so memory stays bounded."""
    batch: list[SourceObject] = []
    size = 0
    for source in sources:
        if batch and size + len(source.data) > max_bytes:
            yield batch
            batch, size = [], 0
        batch.append(source)
        size += len(source.data)
    if batch:
        yield batch
