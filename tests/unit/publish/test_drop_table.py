"""What a drop becomes in its Iceberg table, before anything is written: files, partitions,
the snapshot's summary, and no column statistics (the store-side commit is in
``tests/integration/test_partner_table.py``)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from manifest_exchange.publish.drop_table import (
    DROP_ID,
    DROP_MANIFEST_SHA256,
    DROP_SEQUENCE,
    TableDrop,
    files_schema,
    table_location,
)
from manifest_exchange.publish.drops import build_drop, parquet_bytes
from manifest_exchange.publish.sequence import ChainLink
from manifest_exchange.storage.s3 import S3Location

PARTNER = S3Location("partner-drops", "tw-jp")
DROP = "20261201T013000Z-0a1b2c3d4e5f-0000"
FOLDER = S3Location("partner-drops", f"tw-jp/v3/drops/{DROP}")


def _v3_drop() -> tuple[dict[str, object], list[bytes]]:
    records = pa.table(
        {
            "record_id": ["a", "b", "c"],
            "flight_key": ["CI0100-TPE-NRT-20261201"] * 2 + ["BR0198-TPE-KIX-20261202"],
            "surname": ["CHEN", "LIN", "WANG"],
            "arr_airport": ["NRT", "NRT", "KIX"],
            "flight_date": [dt.date(2026, 12, 1)] * 2 + [dt.date(2026, 12, 2)],
        }
    )
    index = pa.table({"drop_id": pa.array([None] * 3, pa.string())})
    drop = build_drop(
        records,
        index,
        drop_id=DROP,
        agreement="tw-jp-v3",
        schema_version="3",
        validation={},
        published_at=dt.datetime(2026, 12, 1, 1, 30, tzinfo=dt.UTC),
        link=ChainLink(7, "20261201T012900Z-0a1b2c3d4e5f-0000", "ab" * 32),
    )
    return drop.manifest, [f.data for f in drop.files]


def test_the_table_sits_beside_the_drops_of_its_version() -> None:
    assert str(table_location(PARTNER, "3")) == "s3://partner-drops/tw-jp/v3/table"


def test_a_drop_is_its_files_with_their_partitions_and_a_summary_naming_it() -> None:
    manifest, files = _v3_drop()

    drop = TableDrop.from_manifest(manifest, "cd" * 32, files_schema(files), FOLDER)

    prefix = f"s3://partner-drops/tw-jp/v3/drops/{DROP}/"
    assert [
        (f.url.removeprefix(prefix), f.arr_airport, f.flight_date, f.rows) for f in drop.files
    ] == [
        (
            "arr_airport=KIX/flight_date=2026-12-02/part-00000.parquet",
            "KIX",
            dt.date(2026, 12, 2),
            1,
        ),
        (
            "arr_airport=NRT/flight_date=2026-12-01/part-00000.parquet",
            "NRT",
            dt.date(2026, 12, 1),
            2,
        ),
    ]
    assert [f.size for f in drop.files] == [len(data) for data in files]
    assert drop.previous_drop_id == "20261201T012900Z-0a1b2c3d4e5f-0000"
    assert drop.summary() == {
        DROP_ID: DROP,
        DROP_SEQUENCE: "7",
        DROP_MANIFEST_SHA256: "cd" * 32,
    }
    # Format v3 files hold no partition columns: the table takes them from the manifests.
    assert drop.schema.names == ["record_id", "flight_key", "surname"]


def test_a_data_file_carries_its_partition_count_and_size_but_no_column_statistics() -> None:
    manifest, files = _v3_drop()
    nrt = TableDrop.from_manifest(manifest, "cd" * 32, files_schema(files), FOLDER).files[1]

    data_file = nrt.data_file()

    assert data_file.file_path == nrt.url
    assert (data_file.partition[0], data_file.partition[1]) == ("NRT", 20788)  # days since 1970
    assert (data_file.record_count, data_file.file_size_in_bytes) == (2, nrt.size)
    # Bounds would be surnames and document numbers in the partner's metadata.
    for statistic in ("lower_bounds", "upper_bounds", "value_counts", "null_value_counts"):
        assert getattr(data_file, statistic) is None, statistic


def test_a_drop_whose_files_disagree_on_a_column_type_is_refused() -> None:
    with pytest.raises(pa.ArrowTypeError):
        files_schema(
            [
                parquet_bytes(pa.table({"seat": ["12A"]})),
                parquet_bytes(pa.table({"seat": [12]})),
            ]
        )
