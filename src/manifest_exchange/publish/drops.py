"""A drop in memory: Hive-partitioned zstd Parquet files and the manifest that lists them.

Format versions 1 and 2 keep the partition columns inside the files as well and name the
manifest ``manifest.json``. From version 3 the folder names alone carry them and every
metadata file starts with ``_``, so stock readers take a drop's folder as it is (decision 0024).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifest_exchange.publish.sequence import ChainLink
from manifest_exchange.storage.s3 import S3Location

PARTITION_COLUMNS = ("arr_airport", "flight_date")


SUCCESS_MARKER = "_SUCCESS"


MANIFEST = "manifest.json"


# From format version 3, readers skip it as they skip every name starting with "_".
HIDDEN_MANIFEST = "_manifest.json"


# The first format version whose drops readers take with no set-up (decision 0024).
READER_LAYOUT_VERSION = 3


MAX_ROWS_PER_FILE = 500_000


@dataclass(frozen=True)
class DropLayout:
    """How a format version lays a drop out.

    Attributes:
        manifest: the manifest's file name in the drop folder.
        partitions_in_files: whether the partition columns are inside the files too.
    """

    manifest: str
    partitions_in_files: bool


def drop_layout(schema_version: str) -> DropLayout:
    if int(schema_version) >= READER_LAYOUT_VERSION:
        return DropLayout(manifest=HIDDEN_MANIFEST, partitions_in_files=False)
    return DropLayout(manifest=MANIFEST, partitions_in_files=True)


def manifest_name(schema_version: str) -> str:
    return drop_layout(schema_version).manifest


@dataclass(frozen=True)
class DropFile:
    """One Parquet file of a drop; ``key`` is relative to the drop folder."""

    key: str
    rows: int
    data: bytes
    sha256: str
    partition: dict[str, str]


@dataclass
class Drop:
    """A drop ready to publish: files, manifest and the rows for the record index."""

    drop_id: str
    files: list[DropFile]
    manifest: dict[str, Any]
    index: pa.Table

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)


def drops_root(partner: S3Location, schema_version: str = "1") -> S3Location:
    return S3Location(partner.bucket, partner.key(f"v{schema_version}", "drops"))


def new_drop_id(now: dt.datetime, run_id: str, batch: int = 0) -> str:
    """Sortable by time, unique per run and batch: ``20261201T013000Z-<run id prefix>-0000``."""
    run = run_id.replace("-", "")[:12]
    return f"{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{run}-{batch:04d}"


def build_drop(
    records: pa.Table,
    index: pa.Table,
    *,
    drop_id: str,
    agreement: str,
    schema_version: str,
    validation: dict[str, Any],
    published_at: dt.datetime,
    link: ChainLink,
) -> Drop:
    """Write ``records`` as Parquet per (arr_airport, flight_date) and describe them."""
    files: list[DropFile] = []
    in_files = drop_layout(schema_version).partitions_in_files
    partitions = (
        records.group_by(list(PARTITION_COLUMNS), use_threads=False)
        .aggregate([])
        .sort_by([(c, "ascending") for c in PARTITION_COLUMNS])
        .to_pylist()
    )
    for partition in partitions:
        mask = pc.and_(
            pc.equal(records["arr_airport"], partition["arr_airport"]),
            pc.equal(records["flight_date"], partition["flight_date"]),
        )
        rows = records.filter(mask)
        if not in_files:
            rows = rows.drop_columns(list(PARTITION_COLUMNS))
        values = {
            "arr_airport": str(partition["arr_airport"]),
            "flight_date": partition["flight_date"].isoformat(),
        }
        folder = f"arr_airport={values['arr_airport']}/flight_date={values['flight_date']}"
        for number, start in enumerate(range(0, rows.num_rows, MAX_ROWS_PER_FILE)):
            data = parquet_bytes(rows.slice(start, MAX_ROWS_PER_FILE))
            files.append(
                DropFile(
                    key=f"{folder}/part-{number:05d}.parquet",
                    rows=min(MAX_ROWS_PER_FILE, rows.num_rows - start),
                    data=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    partition=values,
                )
            )
    flights = (
        records.group_by("flight_key").aggregate([("record_id", "count")]).sort_by("flight_key")
    )
    manifest = {
        "drop_id": drop_id,
        "schema_version": schema_version,
        "agreement": agreement,
        "published_at": published_at.astimezone(dt.UTC).isoformat(),
        **link.as_manifest_fields(),
        "row_total": records.num_rows,
        "file_total": len(files),
        "byte_total": sum(len(f.data) for f in files),
        "files": [
            {
                "key": f.key,
                "rows": f.rows,
                "bytes": len(f.data),
                "sha256": f.sha256,
                **f.partition,
            }
            for f in files
        ],
        "flights": [
            {"flight_key": key, "rows": count}
            for key, count in zip(
                flights["flight_key"].to_pylist(),
                flights["record_id_count"].to_pylist(),
                strict=True,
            )
        ],
        "validation": validation,
    }
    index = index.set_column(
        index.schema.get_field_index("drop_id"),
        "drop_id",
        pa.array([drop_id] * index.num_rows, pa.string()),
    )
    return Drop(drop_id=drop_id, files=files, manifest=manifest, index=index)


def parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as one zstd Parquet file in memory."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", use_dictionary=True)
    return sink.getvalue()
