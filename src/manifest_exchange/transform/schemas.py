"""The shapes the transform hands the other stages: issues, the record index, outcomes."""

from __future__ import annotations

import pyarrow as pa

ISSUES_SCHEMA = pa.schema(
    [("row_id", pa.string()), ("check_name", pa.string()), ("severity", pa.string())]
)


RECORD_INDEX_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("content_sha256", pa.string()),
        ("manifest_revision", pa.int32()),
        ("sent_revision", pa.int32()),
        ("flight_key", pa.string()),
        ("drop_id", pa.string()),
        # Index files written before it existed read as null (no person match for those).
        ("person_key", pa.string()),
    ]
)


OUTCOMES = ("published", "out_of_scope", "duplicate", "quarantined")


# Records go out grouped as the drop is partitioned: arrival airport, then flight date.
RECORD_ORDER = ("arr_airport", "flight_date", "flight_key", "record_id")


def empty_issues() -> pa.Table:
    return ISSUES_SCHEMA.empty_table()
