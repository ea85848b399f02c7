"""Exchange v1 in DuckDB: scope, resends, revisions, record ids and outcomes (SQL in ``sql/``).

Each step runs one SQL file over Arrow tables (registered on a cursor of the thread's DuckDB
database for that statement only, :mod:`manifest_exchange.sql_session`) and returns an Arrow
table, so the steps hand each other data, not connections, and the flow can put validation
between them. The wide steps return only the columns they add; Arrow puts them beside the rows
they were given (:func:`manifest_exchange.tables.with_columns_of`, decision 0010):

``exchange_messages`` -> (message suite) -> ``exchange_travellers`` -> ``exchange_lists`` ->
(traveller and list suites) -> ``exchange_outcomes`` -> ``exchange_records`` and
``exchange_accounting``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.config import HmacKey
from manifest_exchange.paths import read_sql_with_parameters
from manifest_exchange.reference.codes import airports_arrow, country_alpha3_by_code
from manifest_exchange.sql_session import arrow_session
from manifest_exchange.tables import sorted_by, with_columns_of
from manifest_exchange.transform import limits
from manifest_exchange.transform.schemas import RECORD_INDEX_SCHEMA, RECORD_ORDER, empty_issues


def run_sql(
    name: str,
    tables: Mapping[str, pa.Table],
    parameters: Mapping[str, object] | None = None,
    *,
    order_by: Sequence[str] = (),
) -> pa.Table:
    """Run ``sql/<name>.sql`` over ``tables`` (registered under their keys) into Arrow.

    Only the parameters the statement names are bound, so callers can pass a shared set.
    ``order_by`` sorts the result in Arrow (see :func:`manifest_exchange.tables.sorted_by`);
    the statements whose wide results are sorted this way say so in their header.
    """
    sql, wanted = read_sql_with_parameters(name, parameters or {})
    with arrow_session(tables) as connection:
        result = connection.execute(sql, wanted or None).to_arrow_table()
    return sorted_by(result, order_by)


def exchange_messages(messages: pa.Table, objects: pa.Table, agreement: Agreement) -> pa.Table:
    """Messages with flight keys, scope, resends and the columns the message suite checks."""
    return run_sql(
        "exchange_messages",
        {"parsed_messages": messages, "parsed_objects": objects, "airports": airports_arrow()},
        {
            "origin_country": agreement.origin_country,
            "destination_country": agreement.destination_country,
            **limits.sql_parameters(),
        },
    )


def exchange_travellers(
    persons: pa.Table, messages: pa.Table, message_issues: pa.Table, agreement: Agreement
) -> pa.Table:
    """Travellers with v1 values, record ids, first outcomes and the suite's columns."""
    added = run_sql(
        "exchange_travellers",
        {
            "parsed_persons": persons,
            "exchange_messages": messages,
            "message_issues": message_issues,
        },
        {
            "traveller_types": list(agreement.traveller_types),
            "excluded_nationalities": list(agreement.excluded_nationalities),
            **limits.sql_parameters(),
        },
        order_by=["person_id"],
    )
    travellers = with_columns_of(persons, added, "person_id")
    # Where the SQL's own derived columns for the suite stand.
    position = travellers.schema.get_field_index("doc_valid_days_after_departure")
    shapes = document_shapes(travellers.column("doc_number"))
    travellers = travellers.add_column(position, "doc_number_shape", shapes)
    for code, flag in (
        ("nationality", "has_unknown_nationality"),
        ("doc_issuing_state", "has_unknown_issuing_state"),
    ):
        travellers = travellers.append_column(flag, unknown_country_codes(travellers[code]))
    return travellers


def unknown_country_codes(codes: pa.ChunkedArray) -> pa.ChunkedArray:
    """Whether each code is given but is no country's alpha-3 or ICAO 9303 code.

    Never null: a missing code is not an unknown one (GX passes nulls), and the suite reads a
    plain boolean column instead of a set of every country (decision 0020); computed in Arrow,
    which costs less than joins in the SQL.
    """
    known = pa.array(sorted(set(country_alpha3_by_code().values())), codes.type)
    return pc.and_(pc.is_valid(codes), pc.invert(pc.is_in(codes, value_set=known)))


# Each byte of a document number to its shape: letters A, digits 9, the rest as they are.
_SHAPE_OF_BYTE = np.arange(256, dtype=np.uint8)


_SHAPE_OF_BYTE[ord("A") : ord("Z") + 1] = ord("A")


_SHAPE_OF_BYTE[ord("0") : ord("9") + 1] = ord("9")


def document_shapes(numbers: pa.ChunkedArray) -> pa.ChunkedArray:
    """Each document number with its ASCII capitals as ``A`` and digits as ``9``; other
    characters are kept, so the traveller suite can check the number's form without seeing it.

    As SQL's ``translate(doc_number, 'A..Z0..9', 'A..A9..9')``, in one lookup over the
    column's bytes instead (decision 0017). A multi-byte UTF-8 character has no ASCII byte, so
    it comes through unchanged, and the offsets and nulls stay as they are.
    """
    if not pa.types.is_string(numbers.type) and not pa.types.is_large_string(numbers.type):
        raise TypeError(f"document numbers must be strings, not {numbers.type}")
    chunks = []
    for chunk in numbers.chunks:
        validity, offsets, data = chunk.buffers()
        if data is not None:
            shaped = _SHAPE_OF_BYTE[np.frombuffer(data, np.uint8)]
            data = pa.py_buffer(shaped)
        chunks.append(
            pa.Array.from_buffers(
                chunk.type, len(chunk), [validity, offsets, data], offset=chunk.offset
            )
        )
    return pa.chunked_array(chunks, numbers.type)


def exchange_lists(messages: pa.Table, travellers: pa.Table) -> pa.Table:
    """Passenger lists still holding candidates, with part and CNT checks' columns."""
    return run_sql(
        "exchange_lists", {"exchange_messages": messages, "exchange_travellers": travellers}
    )


def exchange_outcomes(
    travellers: pa.Table,
    issues: Mapping[str, pa.Table],
    published_records: pa.Table,
) -> pa.Table:
    """Every traveller's outcome, reasons, dq_flags and manifest_revision.

    Args:
        travellers: from :func:`exchange_travellers`.
        issues: ``message_issues``, ``traveller_issues`` and ``list_issues`` tables.
        published_records: the record index (what the partner already has).
    """
    tables = {"exchange_travellers": travellers, "published_records": published_records}
    for name in ("message_issues", "traveller_issues", "list_issues"):
        tables[name] = issues.get(name, empty_issues())
    decided = run_sql("exchange_outcomes", tables, order_by=["person_id"])
    return with_columns_of(travellers, decided, "person_id")


def exchange_records(
    outcomes: pa.Table,
    agreement: Agreement,
    hmac_key: HmacKey,
    published_at: dt.datetime,
) -> tuple[pa.Table, pa.Table]:
    """The records to publish (the agreement's columns) and their rows for the record index.

    The index rows carry no drop id yet; the publisher adds it.
    """
    wide = run_sql(
        "exchange_records",
        {"exchange_outcomes": outcomes},
        {
            "schema_version": agreement.schema_version,
            "hmac_key_id": hmac_key.key_id,
            "published_at": published_at,
        },
        order_by=RECORD_ORDER,
    )
    hmacs = pa.array(
        doc_match_hmacs(hmac_key.secret, wide.column("doc_match_input").to_pylist()), pa.string()
    )
    position = wide.schema.get_field_index("doc_match_input")
    wide = wide.set_column(position, "doc_match_hmac", hmacs)
    records = wide.select(list(agreement.columns))
    index = pa.table(
        {
            "record_id": wide.column("record_id"),
            "content_sha256": wide.column("content_sha256"),
            "manifest_revision": wide.column("manifest_revision").cast(pa.int32()),
            "sent_revision": wide.column("sent_revision").cast(pa.int32()),
            "flight_key": wide.column("flight_key"),
            "drop_id": pa.nulls(wide.num_rows, pa.string()),
            "person_key": wide.column("person_key"),
        },
        schema=RECORD_INDEX_SCHEMA,
    )
    return records, index


def doc_match_hmacs(key: bytes, doc_match_inputs: list[str | None]) -> list[str | None]:
    """HMAC-SHA256, in hex, of each ``TYPE|ISSUER|NUMBER`` (already normalised; None stays None).

    Keyed once and copied per input, rather than keying each input again.
    """
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    digests: list[str | None] = []
    for doc_match_input in doc_match_inputs:
        if doc_match_input is None:
            digests.append(None)
            continue
        one = keyed.copy()
        one.update(doc_match_input.encode("utf-8"))
        digests.append(one.hexdigest())
    return digests


def exchange_accounting(outcomes: pa.Table, messages: pa.Table) -> pa.Table:
    """Travellers per flight and outcome, unreadable messages included."""
    return run_sql(
        "exchange_accounting", {"exchange_outcomes": outcomes, "exchange_messages": messages}
    )
