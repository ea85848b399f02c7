"""Airport departure-control exports (CSV): bytes -> the same Arrow tables as the PAXLST parser.

Airports export the facts an airline's PAXLST carries as CSV, one line per traveller with the
flight's columns on every line (layout: :data:`LAYOUT`; docs/architecture.md). DuckDB
reads them with an explicit schema; a line that does not fit is kept by ``store_rejects`` and
becomes an unreadable one-traveller message with its line number and reason, so it is
quarantined and counted, never dropped. Readable lines are grouped per export and flight into
lists shaped as the parser's messages and persons, so everything downstream (the exchange SQL,
the same validation suites, the drops) treats both sources alike.

SQL, in order: ``stg_airport_csv_rows`` (per header layout) -> ``stg_airport_csv_rejects`` ->
``stg_airport_csv_travellers`` -> ``airport_csv_unreadable_lines`` -> ``airport_csv_messages``
-> ``airport_csv_persons`` -> ``airport_csv_errors``.
"""

from __future__ import annotations

import codecs
import uuid
from collections import defaultdict
from collections.abc import Sequence

import duckdb
import fsspec
import pyarrow as pa

from manifest_exchange.digests import sha256_hex
from manifest_exchange.paths import read_sql
from manifest_exchange.paxlst.parser import ParseResult, SourceObject, with_keys
from manifest_exchange.reference.codes import countries_arrow

# The documented layout: column -> DuckDB type. A header may list the columns in any order and
# leave out the optional ones; a value that does not cast to its type rejects its line.
TRAVELLER_TYPE_ENUM = "airport_csv_traveller_type"
LAYOUT: dict[str, str] = {
    "carrier_code": "VARCHAR",
    "flight_number": "VARCHAR",
    "dep_airport": "VARCHAR",
    "arr_airport": "VARCHAR",
    "sched_departure_local": "TIMESTAMP",
    "sched_arrival_local": "TIMESTAMP",
    "traveller_type": TRAVELLER_TYPE_ENUM,
    "surname": "VARCHAR",
    "given_names": "VARCHAR",
    "sex": "VARCHAR",
    "date_of_birth": "DATE",
    "nationality": "VARCHAR",
    "residence_country": "VARCHAR",
    "embark_airport": "VARCHAR",
    "debark_airport": "VARCHAR",
    "doc_type": "VARCHAR",
    "doc_number": "VARCHAR",
    "doc_issuing_state": "VARCHAR",
    "doc_expiry_date": "DATE",
    "pnr_locator": "VARCHAR",
    "seat": "VARCHAR",
}
OPTIONAL_COLUMNS = frozenset(
    {"residence_country", "embark_airport", "debark_airport", "pnr_locator", "seat"}
)
REQUIRED_COLUMNS = tuple(name for name in LAYOUT if name not in OPTIONAL_COLUMNS)
TRAVELLER_TYPES = ("PASSENGER", "TRANSIT", "CREW")
# Detection by content: a first line naming at least these layout columns is an export.
_SIGNATURE = frozenset({"carrier_code", "flight_number", "surname"})
_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "DATE": pa.date32(),
    TRAVELLER_TYPE_ENUM: pa.string(),
}
# Reads the exports of one header layout (run once per layout).
ROWS_RELATION = "stg_airport_csv_rows"
# In dependency order, after the rows are read; each becomes a temporary table.
RELATIONS = (
    "stg_airport_csv_rejects",
    "stg_airport_csv_travellers",
    "airport_csv_unreadable_lines",
    "airport_csv_messages",
    "airport_csv_persons",
    "airport_csv_errors",
)


class CsvHeaderError(ValueError):
    """The first line is not a usable header of the documented layout."""


def header_columns(data: bytes) -> list[str]:
    """The column names of the first line (BOM, quotes, spaces and case ignored)."""
    first_line = data.removeprefix(codecs.BOM_UTF8).split(b"\n", 1)[0]
    text = first_line.decode("utf-8", errors="replace").strip()
    return [name.strip().strip('"').strip().lower() for name in text.split(",")]


def is_airport_csv(data: bytes) -> bool:
    """Whether an object's content is an airport export (its first line is our header)."""
    return _SIGNATURE.issubset(header_columns(data[:4096]))


def check_header(columns: Sequence[str]) -> None:
    """Raise :class:`CsvHeaderError` naming the missing, unknown or repeated columns."""
    problems = []
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    unknown = sorted(set(columns) - set(LAYOUT))
    if unknown:
        # Data minimisation: a column outside the layout is not read.
        problems.append(f"column(s) not in the layout: {', '.join(unknown)}")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        problems.append(f"column(s) named twice: {', '.join(repeated)}")
    if problems:
        raise CsvHeaderError(
            "the header does not follow the airport CSV layout: " + "; ".join(problems)
        )


def read_exports(sources: Sequence[SourceObject], like: ParseResult) -> ParseResult:
    """Read airport exports into the PAXLST parser's tables.

    Args:
        sources: the exports (key and bytes); ``object_id`` is the position in this list.
        like: any result of the PAXLST parser (``PaxlstParser().parse([])`` will do): the
            result has exactly its schemas, so the two sources concatenate.
    """
    keys = pa.array([source.key for source in sources], pa.string())
    payloads = [source.data for source in sources]
    header_errors: dict[int, str] = {}
    by_layout: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for object_id, data in enumerate(payloads):
        columns = header_columns(data)
        try:
            check_header(columns)
        except CsvHeaderError as failure:
            header_errors[object_id] = str(failure)
        else:
            by_layout[tuple(columns)].append(object_id)
    tables = _read_layouts(payloads, by_layout)
    objects = pa.table(
        {
            "object_id": pa.array(range(len(payloads)), pa.int32()),
            "object_key": keys,
            "bytes": pa.array([len(d) for d in payloads], pa.int64()),
            "source_sha256": pa.array([sha256_hex(d) for d in payloads]),
            "encoding": pa.array(["utf-8"] * len(payloads), pa.string()),
            "has_non_ascii": pa.array([not d.isascii() for d in payloads], pa.bool_()),
            "error_code": pa.array(
                ["csv_bad_header" if i in header_errors else None for i in range(len(payloads))],
                pa.string(),
            ),
        }
    )
    header_rows = pa.table(
        {
            "object_id": pa.array(list(header_errors), pa.int32()),
            "message_seq": pa.nulls(len(header_errors), pa.int64()),
            "segment_position": pa.array([1] * len(header_errors), pa.int64()),
            "error_code": pa.array(["csv_bad_header"] * len(header_errors), pa.string()),
            "reason": pa.array(list(header_errors.values()), pa.string()),
        }
    )

    def shaped(table: pa.Table, parsed: pa.Table) -> pa.Table:
        """``table`` with the parser's columns, ``object_key`` taken from ``object_id``."""
        schema = parsed.schema.remove(parsed.schema.get_field_index("object_key"))
        return with_keys(conform(table, schema), keys).select(parsed.schema.names)

    return ParseResult(
        objects=conform(objects, like.objects.schema),
        messages=shaped(tables["messages"], like.messages),
        persons=shaped(tables["persons"], like.persons),
        errors=shaped(
            pa.concat_tables([header_rows, tables["errors"]], promote_options="permissive"),
            like.errors,
        ),
    )


def _read_layouts(
    payloads: Sequence[bytes], by_layout: dict[tuple[str, ...], list[int]]
) -> dict[str, pa.Table]:
    """Run the SQL over the exports with a usable header, one ``read_csv`` per header layout.

    The bytes are handed to DuckDB through an in-memory file system, so personal data is not
    written to local disk; each call uses its own folder there and removes it.
    """
    memory = fsspec.filesystem("memory")
    folder = f"/airport-csv-{uuid.uuid4().hex}"
    with duckdb.connect() as connection:
        connection.register_filesystem(memory)
        connection.execute("set preserve_insertion_order = true")
        connection.execute(
            f"create type {TRAVELLER_TYPE_ENUM} as enum "
            f"({', '.join(repr(t) for t in TRAVELLER_TYPES)})"
        )
        connection.from_arrow(countries_arrow()).create("countries")
        try:
            rows = []
            for columns, object_ids in by_layout.items():
                files = []
                for object_id in object_ids:
                    path = f"{folder}/{object_id:08d}.csv"
                    memory.pipe_file(path, payloads[object_id])
                    files.append(f"memory://{path}")
                read = connection.execute(
                    read_sql(ROWS_RELATION),
                    {"files": files, "columns": {name: LAYOUT[name] for name in columns}},
                ).to_arrow_table()
                rows.append(_with_layout_columns(read))
            all_rows = pa.concat_tables(rows) if rows else _with_layout_columns(None)
            all_rows = all_rows.append_column(
                "row_seq", pa.array(range(all_rows.num_rows), pa.int64())
            )
            connection.register("airport_csv_rows", all_rows)
            if not rows:
                # No scan ran, so DuckDB made no reject tables; the SQL still reads them.
                connection.execute(
                    "create temp table reject_errors (scan_id ubigint, file_id ubigint, "
                    "line ubigint, column_name varchar, error_type varchar)"
                )
                connection.execute(
                    "create temp table reject_scans (scan_id ubigint, file_id ubigint, "
                    "file_path varchar)"
                )
            for relation in RELATIONS:
                connection.execute(
                    f"create or replace temp table {relation} as {read_sql(relation)}"
                )
            return {
                "messages": connection.table("airport_csv_messages").to_arrow_table(),
                "persons": connection.table("airport_csv_persons").to_arrow_table(),
                "errors": connection.table("airport_csv_errors").to_arrow_table(),
            }
        finally:
            if memory.exists(folder):
                memory.rm(folder, recursive=True)


def _with_layout_columns(table: pa.Table | None) -> pa.Table:
    """Every layout column (absent optional ones as nulls) plus ``filename``, in one order."""
    fields = [pa.field(name, _ARROW_TYPES[kind]) for name, kind in LAYOUT.items()]
    schema = pa.schema([*fields, pa.field("filename", pa.string())])
    if table is None:
        return schema.empty_table()
    return conform(table, schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns: cast where present, nulls where absent."""
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)
