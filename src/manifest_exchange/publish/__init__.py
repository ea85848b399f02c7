"""Drops for the partner: Hive-partitioned zstd Parquet, ``manifest.json``, then ``_SUCCESS``.

Publishing is staged so that a crash at any point can be completed by the next run:

1. the whole drop (data files, manifest, record-index rows, the ledger outcomes to write) is
   first written to ``<state>/staging/<drop_id>/``;
2. the data files and ``manifest.json`` are written to the partner location;
3. ``_SUCCESS`` is created last, conditionally (If-None-Match), so a published drop can
   never be overwritten;
4. the record index (``<state>/index/records/<drop_id>.parquet``) is updated: the next batch
   is compared with it, so :meth:`DropPublisher.publish` returns only after it;
5. the ledger records the source objects' outcomes and the staging folder is removed
   (:meth:`DropPublisher.finish`).

:func:`recover_staged_drops` redoes steps 2-5 for any staged drop left behind; a drop has no
``_SUCCESS`` until then and the partner ignores it. Every upload carries a SHA-256 checksum.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    create_if_absent,
    delete_keys,
    exists,
    get_bytes,
    get_many,
    iter_objects,
    put_bytes,
    put_many,
)
from manifest_exchange.transform import RECORD_INDEX_SCHEMA

log = logging.getLogger(__name__)

PARTITION_COLUMNS = ("arr_airport", "flight_date")
SUCCESS_MARKER = "_SUCCESS"
MANIFEST = "manifest.json"
MAX_ROWS_PER_FILE = 500_000


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
    ledger_outcomes: list[dict[str, Any]] = field(default_factory=list)

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
) -> Drop:
    """Write ``records`` as Parquet per (arr_airport, flight_date) and describe them."""
    files: list[DropFile] = []
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
            self._tables[key] = _as_index(pq.read_table(io.BytesIO(data)))
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


# Records in the ledger the outcomes of a drop's source objects: (ledger outcomes, drop id).
FinishLedger = Callable[[list[dict[str, Any]], str], None]


class DropPublisher:
    """Stages, publishes and recovers drops.

    Args:
        client: the pipeline's client (read+write on the state and partner buckets).
        state: the pipeline's state location.
        partner: the partner location (drops go under ``<partner>/v1/drops/``).
    """

    def __init__(self, client: S3Client, state: S3Location, partner: S3Location) -> None:
        self.client = client
        self.state = state
        self.partner = partner
        self.staging = S3Location(state.bucket, state.key("staging"))
        self.index_root = S3Location(state.bucket, state.key("index", "records"))

    def _drop_folder(self, drop_id: str, schema_version: str = "1") -> S3Location:
        root = drops_root(self.partner, schema_version)
        return S3Location(root.bucket, root.key(drop_id))

    # -- record index ----------------------------------------------------------------------------

    def record_index(self) -> RecordIndex:
        """What the partner already has; read again with :meth:`RecordIndex.current`."""
        return RecordIndex(self.client, self.index_root)

    # -- publish ---------------------------------------------------------------------------------

    def publish(self, drop: Drop, *, before_success: Callable[[], None] | None = None) -> None:
        """Stage ``drop``, publish it and record it in the record index.

        The drop stays staged until :meth:`finish` has written its ledger outcomes, so a
        crash before then is completed by :meth:`recover_staged_drops`.

        Args:
            drop: from :func:`build_drop`, with ``ledger_outcomes`` filled in.
            before_success: called after the data files and manifest, before ``_SUCCESS``
                (the flow checks it still holds the publish lock here).
        """
        self._stage(drop)
        self._complete(drop.drop_id, drop.files, drop.manifest, before_success)
        self._record_index(drop.drop_id, drop.index)

    def finish(
        self, drop_id: str, ledger_outcomes: list[dict[str, Any]], finish_ledger: FinishLedger
    ) -> None:
        """Write a published drop's ledger outcomes, then remove its staging folder.

        Idempotent: the ledger keeps the first outcome of an object, so finishing a drop
        twice (a retry, or another run's recovery meanwhile) changes nothing.

        Args:
            drop_id: a drop :meth:`publish` has published.
            ledger_outcomes: the drop's ``ledger_outcomes``.
            finish_ledger: records ``ledger_outcomes`` in the ledger's outcome sheets, naming
                the drop they went into.
        """
        finish_ledger(ledger_outcomes, drop_id)
        folder = S3Location(self.staging.bucket, self.staging.key(drop_id))
        delete_keys(
            self.client, folder.bucket, [info.key for info in iter_objects(self.client, folder)]
        )

    def _stage(self, drop: Drop) -> None:
        folder = self.staging.key(drop.drop_id)
        items = [(f"{folder}/files/{f.key}", f.data) for f in drop.files]
        items.append((f"{folder}/index.parquet", parquet_bytes(drop.index)))
        items.append((f"{folder}/ledger.json", _json(drop.ledger_outcomes)))
        put_many(self.client, self.staging.bucket, items)
        # The manifest goes last: a staged drop without it is incomplete and is discarded.
        put_bytes(self.client, self.staging.bucket, f"{folder}/{MANIFEST}", _json(drop.manifest))

    def _complete(
        self,
        drop_id: str,
        files: list[DropFile],
        manifest: dict[str, Any],
        before_success: Callable[[], None] | None,
    ) -> None:
        target = self._drop_folder(drop_id, str(manifest["schema_version"]))
        if exists(self.client, target.bucket, target.key(SUCCESS_MARKER)):
            return
        put_many(self.client, target.bucket, [(target.key(f.key), f.data) for f in files])
        put_bytes(
            self.client,
            target.bucket,
            target.key(MANIFEST),
            _json(manifest),
            content_type="application/json",
        )
        if before_success is not None:
            before_success()
        marker = _json({"drop_id": drop_id, "row_total": manifest["row_total"]})
        if not create_if_absent(self.client, target.bucket, target.key(SUCCESS_MARKER), marker):
            log.info("drop %s was already complete", drop_id)

    def _record_index(self, drop_id: str, index: pa.Table) -> None:
        put_bytes(
            self.client,
            self.index_root.bucket,
            self.index_root.key(f"{drop_id}.parquet"),
            parquet_bytes(index),
        )

    # -- recovery --------------------------------------------------------------------------------

    def recover_staged_drops(self, finish_ledger: FinishLedger) -> list[str]:
        """Complete every drop a crashed run staged; return their ids. Hold the lock."""
        staged: dict[str, list[str]] = {}
        for info in iter_objects(self.client, self.staging):
            drop_id = info.key[len(self.staging.prefix) + 1 :].split("/", 1)[0]
            staged.setdefault(drop_id, []).append(info.key)
        recovered = []
        for drop_id, keys in sorted(staged.items()):
            folder = self.staging.key(drop_id)
            if f"{folder}/{MANIFEST}" not in keys:
                # Staging never finished, so nothing reached the partner: discard it. The
                # run's claims expire and its objects are processed again.
                log.warning("discarding incompletely staged drop %s", drop_id)
                delete_keys(self.client, self.staging.bucket, keys)
                continue
            read_staged = functools.partial(get_bytes, self.client, self.staging.bucket)
            manifest = json.loads(read_staged(f"{folder}/{MANIFEST}"))
            files = []
            for entry in manifest["files"]:
                data = read_staged(f"{folder}/files/{entry['key']}")
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise RuntimeError(f"staged file {entry['key']} of {drop_id} is corrupt")
                partition = {c: entry[c] for c in PARTITION_COLUMNS}
                files.append(
                    DropFile(entry["key"], entry["rows"], data, entry["sha256"], partition)
                )
            index = pq.read_table(io.BytesIO(read_staged(f"{folder}/index.parquet")))
            ledger_outcomes = json.loads(read_staged(f"{folder}/ledger.json"))
            log.warning("completing drop %s left by an interrupted run", drop_id)
            self._complete(drop_id, files, manifest, None)
            self._record_index(drop_id, index)
            self.finish(drop_id, ledger_outcomes, finish_ledger)
            recovered.append(drop_id)
        return recovered


def _json(body: object) -> bytes:
    return json.dumps(body, indent=1, sort_keys=True, default=str).encode("utf-8")
