from __future__ import annotations

import datetime as dt
import hashlib
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_exchange.publish.drops import Drop, build_drop, new_drop_id
from manifest_exchange.publish.record_index import _as_index
from manifest_exchange.publish.sequence import ChainLink
from manifest_exchange.transform.schemas import RECORD_INDEX_SCHEMA

PUBLISHED_AT = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


def _records() -> pa.Table:
    return pa.table(
        {
            "record_id": ["a", "b", "c"],
            "flight_key": ["CI0100-TPE-NRT-20261201"] * 2 + ["BR0198-TPE-KIX-20261201"],
            "arr_airport": ["NRT", "NRT", "KIX"],
            "flight_date": [dt.date(2026, 12, 1)] * 3,
        }
    )


def _index(rows: int) -> pa.Table:
    return pa.table(
        {
            name: pa.nulls(rows, field.type)
            for name, field in zip(RECORD_INDEX_SCHEMA.names, RECORD_INDEX_SCHEMA, strict=True)
        },
        schema=RECORD_INDEX_SCHEMA,
    )


FIRST_LINK = ChainLink(1, None, None)


def _drop(schema_version: str, link: ChainLink = FIRST_LINK) -> Drop:
    return build_drop(
        _records(),
        _index(3),
        drop_id="d1",
        agreement="tw-jp",
        schema_version=schema_version,
        validation={},
        published_at=PUBLISHED_AT,
        link=link,
    )


def test_drop_is_partitioned_and_described_by_its_manifest() -> None:
    drop = _drop("1")
    keys = [f.key for f in drop.files]
    assert keys == [
        "arr_airport=KIX/flight_date=2026-12-01/part-00000.parquet",
        "arr_airport=NRT/flight_date=2026-12-01/part-00000.parquet",
    ]
    manifest = drop.manifest
    assert manifest["row_total"] == 3
    assert [f["rows"] for f in manifest["files"]] == [1, 2]
    assert {f["flight_key"]: f["rows"] for f in manifest["flights"]} == {
        "BR0198-TPE-KIX-20261201": 1,
        "CI0100-TPE-NRT-20261201": 2,
    }
    for file, entry in zip(drop.files, manifest["files"], strict=True):
        assert hashlib.sha256(file.data).hexdigest() == entry["sha256"]
        table = pq.read_table(io.BytesIO(file.data))
        # Partition columns stay inside the files, so each file describes itself.
        assert set(table["arr_airport"].to_pylist()) == {entry["arr_airport"]}
        assert (
            pq.ParquetFile(io.BytesIO(file.data)).metadata.row_group(0).column(0).compression
            == "ZSTD"
        )
    assert set(drop.index["drop_id"].to_pylist()) == {"d1"}


@pytest.mark.parametrize("schema_version", ["3"])
def test_from_version_3_the_partition_columns_are_in_the_folder_names_only(
    schema_version: str,
) -> None:
    drop = _drop(schema_version)
    for file in drop.files:
        names = pq.read_schema(io.BytesIO(file.data)).names
        # A reader types them from the path; in the file too they would clash (decision 0024).
        assert "arr_airport" not in names
        assert "flight_date" not in names
        assert names == ["record_id", "flight_key"]
    assert sum(f.rows for f in drop.files) == 3


def test_the_manifest_carries_the_drops_link_in_the_sequence() -> None:
    link = ChainLink(7, "d0", "ab" * 32)
    manifest = _drop("3", link).manifest
    assert (manifest["sequence"], manifest["previous_drop_id"]) == (7, "d0")
    assert manifest["previous_manifest_sha256"] == "ab" * 32


def test_drop_ids_sort_by_time() -> None:
    earlier = new_drop_id(PUBLISHED_AT, "0f0e-aa")
    later = new_drop_id(PUBLISHED_AT + dt.timedelta(seconds=1), "00-bb")
    assert earlier < later
    assert earlier.startswith("20261201T010000Z-")


def test_index_files_written_before_a_column_existed_read_with_it_null() -> None:
    old = _index(2).drop_columns(["person_key"])
    current = _as_index(old)
    assert current.schema == RECORD_INDEX_SCHEMA
    assert current["person_key"].null_count == 2
