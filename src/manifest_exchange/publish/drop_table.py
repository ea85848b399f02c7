"""The complete drops of one agreement and format version as one Apache Iceberg table.

Every complete drop becomes one snapshot of ``<partner>/v<version>/table/``, over the drop's
own Parquet files (nothing is copied): a reader of the table sees complete drops only, can go
back to the table as any drop left it, and sees a change of columns as schema evolution.

- The table's metadata sits beside the drops in the partner location, so the partner's
  read-only rights are enough to read it; ``metadata/version-hint.text`` names the current
  metadata file, the convention ``pyiceberg`` (``StaticTable.from_metadata``) and DuckDB
  (``iceberg_scan``) both follow when given the table's folder.
- The partition columns ``arr_airport`` and ``flight_date`` are identity partitions: the files
  do not hold them (format v3 keeps them in the folder names), the manifests do.
- The manifests hold each file's row count, size and partition only. Iceberg normally adds
  every column's lower and upper bound, which here would be names, document numbers and
  birth dates in metadata: the table's metadata holds no personal data.
- Our files carry no Iceberg field ids, so the table maps columns by name
  (``schema.name-mapping.default``).
- A snapshot's summary carries the drop's id, sequence and manifest SHA-256
  (:data:`DROP_ID`, :data:`DROP_SEQUENCE`, :data:`DROP_MANIFEST_SHA256`).

Commits happen under the publish lock, after the drop's ``_SUCCESS``; there is no catalog
server. A commit reads the metadata file the hint names, writes the drop's manifest, a manifest
list and a new metadata file with pyiceberg's own writers (through :class:`.StoreFileIO`), then
moves the hint. It does not go through a pyiceberg ``Transaction``: that copies the whole table
metadata some twenty times per commit, a millisecond per snapshot already there (decision
0025). Committing a drop the table already has changes nothing, and a commit first adds any
earlier complete drop the table lacks, following the drops' chain back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.catalog.noop import NoopCatalog
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestEntry,
    ManifestEntryStatus,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import StaticTable, TableProperties
from pyiceberg.table.metadata import TableMetadata, new_table_metadata
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.snapshots import (
    Operation,
    Snapshot,
    SnapshotSummaryCollector,
    Summary,
    update_snapshot_summaries,
)
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER
from pyiceberg.table.update import (
    AddSchemaUpdate,
    AddSnapshotUpdate,
    SetCurrentSchemaUpdate,
    SetPropertiesUpdate,
    SetSnapshotRefUpdate,
    TableUpdate,
    update_table_metadata,
)
from pyiceberg.transforms import IdentityTransform
from pyiceberg.typedef import Record
from pyiceberg.types import DateType, NestedField, StringType
from pyiceberg.utils.datetime import date_to_days

from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root, manifest_name
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    exists,
    get_bytes,
    get_bytes_if_present,
    put_bytes,
)
from manifest_exchange.storage.table_io import StoreFileIO

log = logging.getLogger(__name__)

TABLE_FOLDER = "table"
VERSION_HINT = "version-hint.text"
METADATA_SUFFIX = ".metadata.json"

# Snapshot summary properties a reader finds a drop by.
DROP_ID = "drop-id"
DROP_SEQUENCE = "drop-sequence"
DROP_MANIFEST_SHA256 = "drop-manifest-sha256"

# The table starts with its two partition columns; a drop's commit adds the columns of its
# files by name, so the first drop and a later new column take the same path.
_PARTITION_SCHEMA = Schema(
    NestedField(1, "arr_airport", StringType(), required=False),
    NestedField(2, "flight_date", DateType(), required=False),
)
_PARTITION_SPEC = PartitionSpec(
    PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="arr_airport"),
    PartitionField(source_id=2, field_id=1001, transform=IdentityTransform(), name="flight_date"),
)
# pyiceberg's default for manifests and manifest lists ("gzip" in its table properties).
_AVRO_COMPRESSION: AvroCompressionCodec = "deflate"


def table_location(partner: S3Location, schema_version: str) -> S3Location:
    """The table's folder: ``<partner>/v<version>/table`` (metadata in ``metadata/``)."""
    return S3Location(partner.bucket, partner.key(f"v{schema_version}", TABLE_FOLDER))


@dataclass(frozen=True)
class TableFile:
    """One data file of a drop as the table lists it."""

    url: str
    rows: int
    size: int
    arr_airport: str
    flight_date: dt.date

    def data_file(self) -> DataFile:
        """The manifest's entry: row count, size and partition, no column statistics."""
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=self.url,
            file_format=FileFormat.PARQUET,
            partition=Record(self.arr_airport, date_to_days(self.flight_date)),
            record_count=self.rows,
            file_size_in_bytes=self.size,
        )


@dataclass(frozen=True)
class TableDrop:
    """What a snapshot needs of a complete drop: its place in the chain, files and columns.

    Attributes:
        schema: the columns of the drop's files (without the partition columns).
    """

    drop_id: str
    sequence: int
    previous_drop_id: str | None
    manifest_sha256: str
    files: tuple[TableFile, ...]
    schema: pa.Schema

    @classmethod
    def from_manifest(
        cls,
        manifest: dict[str, Any],
        manifest_sha256: str,
        schema: pa.Schema,
        folder: S3Location,
    ) -> TableDrop:
        """From the drop's manifest as published, in the drop folder ``folder``."""
        files = tuple(
            TableFile(
                url=f"s3://{folder.bucket}/{folder.key(entry['key'])}",
                rows=int(entry["rows"]),
                size=int(entry["bytes"]),
                arr_airport=str(entry["arr_airport"]),
                flight_date=dt.date.fromisoformat(entry["flight_date"]),
            )
            for entry in manifest["files"]
        )
        return cls(
            drop_id=str(manifest["drop_id"]),
            sequence=int(manifest["sequence"]),
            previous_drop_id=manifest.get("previous_drop_id"),
            manifest_sha256=manifest_sha256,
            files=files,
            schema=schema,
        )

    def summary(self) -> dict[str, str]:
        return {
            DROP_ID: self.drop_id,
            DROP_SEQUENCE: str(self.sequence),
            DROP_MANIFEST_SHA256: self.manifest_sha256,
        }


def files_schema(files: list[bytes]) -> pa.Schema:
    """The columns of a drop's Parquet files, read from their footers."""
    return pa.unify_schemas([pq.read_schema(pa.BufferReader(data)) for data in files])


def committed_drops(metadata: TableMetadata) -> dict[str, int]:
    """Drop id -> snapshot id of every drop in the table, in commit order."""
    return {
        str(snapshot.summary[DROP_ID]): snapshot.snapshot_id
        for snapshot in metadata.snapshots
        if snapshot.summary is not None and snapshot.summary[DROP_ID] is not None
    }


class DropTable:
    """One agreement's and format version's table; commit under the publish lock.

    Args:
        client: the pipeline's client: reads the drops, writes the table (:mod:`.table_io`).
        partner: the partner location.
        schema_version: the format version whose drops the table holds.
    """

    def __init__(self, client: S3Client, partner: S3Location, schema_version: str) -> None:
        self.client = client
        self.partner = partner
        self.schema_version = schema_version
        self.location = table_location(partner, schema_version)
        self.hint = S3Location(self.location.bucket, self.location.key("metadata", VERSION_HINT))
        self.io = StoreFileIO(client)

    def commit(self, drop: TableDrop) -> list[str]:
        """Add ``drop`` as a snapshot, after any earlier complete drop the table lacks.

        Returns the ids of the drops added, oldest first: none if the table has ``drop``.
        """
        current = self._current_metadata()
        base, previous = current if current else (self._new_metadata(), None)
        committed = committed_drops(base)
        if drop.drop_id in committed:
            return []
        pending = [drop]
        while pending[-1].previous_drop_id and pending[-1].previous_drop_id not in committed:
            pending.append(self._published_drop(pending[-1].previous_drop_id))
        pending.reverse()
        if len(pending) > 1:
            log.warning(
                "table %s: adding %d earlier drops it lacked", self.location, len(pending) - 1
            )
        metadata, replaced = base, previous
        for each in pending:
            # The columns first: the snapshot records the schema it was written with.
            columns = self._column_updates(metadata, each.schema)
            if columns:
                metadata, replaced = _applied(metadata, columns, replaced), None
            metadata, replaced = _applied(metadata, self._snapshot(metadata, each), replaced), None
        self._write(metadata, previous)
        return [each.drop_id for each in pending]

    def _current_metadata(self) -> tuple[TableMetadata, str] | None:
        """The metadata the version hint names and its location; None before the first drop."""
        hint = get_bytes_if_present(self.client, self.hint.bucket, self.hint.prefix)
        if hint is None:
            return None
        name = hint.decode("utf-8").strip()
        location = self._metadata_url(f"{name}{METADATA_SUFFIX}")
        return FromInputFile.table_metadata(self.io.new_input(location)), location

    def _new_metadata(self) -> TableMetadata:
        return new_table_metadata(
            _PARTITION_SCHEMA,
            _PARTITION_SPEC,
            UNSORTED_SORT_ORDER,
            str(self.location),
            {
                TableProperties.FORMAT_VERSION: "2",
                TableProperties.DEFAULT_NAME_MAPPING: (
                    _PARTITION_SCHEMA.name_mapping.model_dump_json()
                ),
            },
        )

    def _column_updates(self, metadata: TableMetadata, schema: pa.Schema) -> list[TableUpdate]:
        """The schema change that gives the table the columns of ``schema`` it lacks (none
        if it has them all): pyiceberg's union by name works out the new field ids and the
        name mapping."""
        if set(schema.names) <= set(metadata.schema().column_names):
            return []
        # A transaction that is never committed, only asked for the metadata it would make.
        table = StaticTable(
            ("drop-table",), metadata, self._metadata_url("staged"), self.io, NoopCatalog("")
        )
        transaction = table.transaction()
        with transaction.update_schema() as update:
            update.union_by_name(schema)
        evolved = transaction.table_metadata
        return [
            AddSchemaUpdate(schema=evolved.schema()),
            SetCurrentSchemaUpdate(),  # the schema just added
            SetPropertiesUpdate(
                updates={
                    TableProperties.DEFAULT_NAME_MAPPING: evolved.properties[
                        TableProperties.DEFAULT_NAME_MAPPING
                    ]
                }
            ),
        ]

    def _snapshot(self, metadata: TableMetadata, drop: TableDrop) -> list[TableUpdate]:
        """Write the drop's manifest and a manifest list (the parent's manifests and it);
        the updates that make it the table's current snapshot. As pyiceberg's fast append
        does, without its transaction."""
        snapshot_id = metadata.new_snapshot_id()
        parent = metadata.current_snapshot()
        commit = uuid.uuid4()
        data_files = [file.data_file() for file in drop.files]
        with write_manifest(
            format_version=metadata.format_version,
            spec=metadata.spec(),
            schema=metadata.schema(),
            output_file=self.io.new_output(self._metadata_url(f"{commit}-m0.avro")),
            snapshot_id=snapshot_id,
            avro_compression=_AVRO_COMPRESSION,
        ) as writer:
            for data_file in data_files:
                writer.add(
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED,
                        snapshot_id=snapshot_id,
                        sequence_number=None,
                        file_sequence_number=None,
                        data_file=data_file,
                    )
                )
        manifests = [writer.to_manifest_file()]
        if parent is not None:
            manifests += parent.manifests(self.io)
        manifest_list = self._metadata_url(f"snap-{snapshot_id}-0-{commit}.avro")
        sequence_number = metadata.next_sequence_number()
        if sequence_number != drop.sequence:
            # Readers without the summary (DuckDB) find a drop by this number.
            log.warning(
                "table %s: drop %s (sequence %d) becomes snapshot sequence number %d",
                self.location,
                drop.drop_id,
                drop.sequence,
                sequence_number,
            )
        with write_manifest_list(
            format_version=metadata.format_version,
            output_file=self.io.new_output(manifest_list),
            snapshot_id=snapshot_id,
            parent_snapshot_id=None if parent is None else parent.snapshot_id,
            sequence_number=sequence_number,
            avro_compression=_AVRO_COMPRESSION,
        ) as list_writer:
            list_writer.add_manifests(manifests)
        collector = SnapshotSummaryCollector()
        for data_file in data_files:
            collector.add_file(data_file, schema=metadata.schema(), partition_spec=metadata.spec())
        summary = update_snapshot_summaries(
            Summary(Operation.APPEND, **collector.build(), **drop.summary()),
            previous_summary=None if parent is None else parent.summary,
        )
        # Validated from Iceberg's own field names: pyiceberg's models take their aliases.
        snapshot = Snapshot.model_validate(
            {
                "snapshot-id": snapshot_id,
                "parent-snapshot-id": None if parent is None else parent.snapshot_id,
                "sequence-number": sequence_number,
                "timestamp-ms": int(time.time() * 1000),
                "manifest-list": manifest_list,
                "summary": summary,
                "schema-id": metadata.current_schema_id,
            }
        )
        branch = SetSnapshotRefUpdate.model_validate(
            {"ref-name": MAIN_BRANCH, "type": SnapshotRefType.BRANCH, "snapshot-id": snapshot_id}
        )
        return [AddSnapshotUpdate(snapshot=snapshot), branch]

    def _write(self, metadata: TableMetadata, previous: str | None) -> None:
        """Write the new metadata file (never over an existing one), then point the hint at
        it: readers move to the new version all at once."""
        version = 0 if previous is None else _metadata_version(previous) + 1
        name = f"{version:05d}-{uuid.uuid4()}"
        ToOutputFile.table_metadata(
            metadata, self.io.new_output(self._metadata_url(f"{name}{METADATA_SUFFIX}"))
        )
        # The name without ".metadata.json": pyiceberg appends it to a hint that is not a
        # bare number, and DuckDB tries "<hint>.metadata.json" among its name formats.
        put_bytes(
            self.client,
            self.hint.bucket,
            self.hint.prefix,
            name.encode("utf-8"),
            content_type="text/plain",
        )

    def _metadata_url(self, name: str) -> str:
        return f"s3://{self.location.bucket}/{self.location.key('metadata', name)}"

    def _published_drop(self, drop_id: str) -> TableDrop:
        """A complete drop already published, read back from the partner location."""
        root = drops_root(self.partner, self.schema_version)
        folder = S3Location(root.bucket, root.key(drop_id))
        if not exists(self.client, folder.bucket, folder.key(SUCCESS_MARKER)):
            raise RuntimeError(f"drop {drop_id} precedes a complete drop but is not complete")
        published = get_bytes(
            self.client, folder.bucket, folder.key(manifest_name(self.schema_version))
        )
        manifest = json.loads(published)
        # One file's columns are the drop's: all its files come from one table.
        schema = _footer_schema(self.client, folder.bucket, folder.key(manifest["files"][0]["key"]))
        sha256 = hashlib.sha256(published).hexdigest()
        return TableDrop.from_manifest(manifest, sha256, schema, folder)


def _footer_schema(client: S3Client, bucket: str, key: str) -> pa.Schema:
    """A Parquet object's columns from its footer alone: two ranged GETs, not the file."""
    tail = client.get_object(Bucket=bucket, Key=key, Range="bytes=-8")["Body"].read()
    length = int.from_bytes(tail[:4], "little") + len(tail)
    footer = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=-{length}")["Body"].read()
    # Readers find the footer from the end; the leading magic number makes the rest a file.
    return pq.read_schema(pa.BufferReader(b"PAR1" + footer))


def _applied(
    metadata: TableMetadata, updates: list[TableUpdate], replaced: str | None
) -> TableMetadata:
    """``metadata`` with ``updates``; ``replaced``, the metadata file a commit replaces, goes
    into the metadata log. Validated by a round trip through pydantic's Rust core, not
    pyiceberg's deep copy (decision 0025)."""
    return update_table_metadata(
        metadata, tuple(updates), enforce_validation=True, metadata_location=replaced
    )


def _metadata_version(location: str) -> int:
    """The version a metadata file's name starts with: ``00003-<uuid>.metadata.json``."""
    return int(location.rsplit("/", 1)[1].split("-", 1)[0])
