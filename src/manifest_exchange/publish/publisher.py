"""Drops for the partner: Hive-partitioned zstd Parquet, ``manifest.json``, then ``_SUCCESS``.

Every batch is settled through a staging folder, so that a crash at any point is completed by
the next run and nothing the ledger counts can be missing:

1. the whole batch is first written to ``<state>/staging/<batch_id>/``: its drop (data files,
   manifest, record-index rows) if it has records, and its settlement (the source objects'
   ledger outcomes and the quarantine files); ``manifest.json``, or ``batch.json`` for a
   batch without a drop, is written last and marks the staging complete;
2. the data files and the manifest (``manifest.json``, ``_manifest.json`` from format
   version 3) are written to the partner location;
3. ``_SUCCESS`` is created last, conditionally (If-None-Match), so a published drop can
   never be overwritten; from format version 3 the drop then becomes a snapshot of its
   version's Iceberg table (:mod:`.drop_table`); then ``_latest.json`` is moved to the drop
   (:mod:`.sequence`);
4. the record index (``<state>/index/records/<drop_id>.parquet``) is updated: the next batch
   is compared with it, so :meth:`DropPublisher.publish` returns only after it;
5. the quarantine files are written, then the ledger records the source objects' outcomes,
   then the staging folder is removed (:meth:`DropPublisher.finish`): the ledger never counts
   a quarantined traveller whose quarantine row is not written (decision record 0001).

:meth:`DropPublisher.recover_staged_batches` redoes steps 2-5 for any completely staged batch
left behind and discards the rest (their claims expire and the objects are read again); a
drop has no ``_SUCCESS`` until then and the partner ignores it. Every upload carries a
SHA-256 checksum.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from manifest_exchange.publish.drops import (
    MANIFEST,
    PARTITION_COLUMNS,
    SUCCESS_MARKER,
    Drop,
    DropFile,
    drop_layout,
    drops_root,
    manifest_name,
    parquet_bytes,
)
from manifest_exchange.publish.record_index import RecordIndex
from manifest_exchange.publish.sequence import ChainLink, advance_latest, next_link, read_latest
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    create_if_absent,
    delete_keys,
    exists,
    get_bytes,
    iter_objects,
    put_bytes,
    put_many,
    read_parquet,
)

log = logging.getLogger(__name__)


# In a staging folder: the batch's settlement (drop id, quarantine destination and files).
STAGED_BATCH = "batch.json"


@dataclass
class Settlement:
    """What a batch leaves besides its drop, written when the batch is finished.

    Attributes:
        batch_id: names the staging folder; the drop id where the batch has a drop.
        drop_id: the batch's drop, or None where it published nothing.
        ledger_outcomes: per source object, what the ledger records.
        quarantine_prefix: the state-bucket folder the quarantine files go to.
        quarantine: file name -> Parquet bytes (travellers, messages, errors).
    """

    batch_id: str
    drop_id: str | None
    ledger_outcomes: list[dict[str, Any]]
    quarantine_prefix: str
    quarantine: dict[str, bytes] = field(default_factory=dict)

    def description(self) -> dict[str, Any]:
        """The staged ``batch.json``: everything but the outcomes and the files' bytes."""
        return {
            "batch_id": self.batch_id,
            "drop_id": self.drop_id,
            "quarantine_prefix": self.quarantine_prefix,
            "quarantine_files": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(self.quarantine.items())
            },
        }


# Records in the ledger the outcomes of a batch's source objects: (ledger outcomes, drop id
# or None where the batch published nothing).
FinishLedger = Callable[[list[dict[str, Any]], str | None], None]


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

    def next_link(self, drop_id: str, schema_version: str) -> ChainLink:
        """Where a drop published now sits in its version's sequence. Hold the publish lock."""
        return next_link(read_latest(self.client, self.partner, schema_version), drop_id)

    # -- publish ---------------------------------------------------------------------------------

    def publish(
        self,
        drop: Drop | None,
        settlement: Settlement,
        *,
        before_success: Callable[[], None] | None = None,
    ) -> None:
        """Stage a batch, then publish its drop and record it in the record index.

        The batch stays staged until :meth:`finish` has written its quarantine and ledger
        outcomes, so a crash before then is completed by :meth:`recover_staged_batches`.

        Args:
            drop: from :func:`build_drop`, or None for a batch with nothing to publish.
            settlement: the batch's ledger outcomes and quarantine.
            before_success: called after the data files and manifest, before ``_SUCCESS``
                (the flow checks it still holds the publish lock here).
        """
        self._stage(drop, settlement)
        if drop is not None:
            self._complete(drop.drop_id, drop.files, drop.manifest, before_success)
            self._record_index(drop.drop_id, drop.index)

    def finish(self, settlement: Settlement, finish_ledger: FinishLedger) -> None:
        """Write a staged batch's quarantine, then its ledger outcomes; remove its staging.

        Idempotent: the quarantine files are rewritten with the same bytes, and the ledger
        keeps the first outcome of an object, so finishing a batch twice (a retry, or another
        run's recovery meanwhile) changes nothing.

        Args:
            settlement: the batch's, as given to :meth:`publish`.
            finish_ledger: records the ledger outcomes in the ledger's outcome sheets, naming
                the drop they went into.
        """
        put_many(
            self.client,
            self.state.bucket,
            [
                (f"{settlement.quarantine_prefix}/{name}", data)
                for name, data in sorted(settlement.quarantine.items())
            ],
        )
        finish_ledger(settlement.ledger_outcomes, settlement.drop_id)
        folder = S3Location(self.staging.bucket, self.staging.key(settlement.batch_id))
        staged = [info.key for info in iter_objects(self.client, folder)]
        # The completion markers go first: a folder left half-deleted by a crash is then
        # incomplete and discarded, never "completed" again from files already gone.
        markers = [
            folder.key(name) for name in (MANIFEST, STAGED_BATCH) if folder.key(name) in staged
        ]
        delete_keys(self.client, folder.bucket, markers)
        delete_keys(self.client, folder.bucket, [key for key in staged if key not in markers])

    def _stage(self, drop: Drop | None, settlement: Settlement) -> None:
        folder = self.staging.key(settlement.batch_id)
        items = [(f"{folder}/ledger.json", _json(settlement.ledger_outcomes))]
        items += [
            (f"{folder}/quarantine/{name}", data) for name, data in settlement.quarantine.items()
        ]
        if drop is not None:
            items += [(f"{folder}/files/{f.key}", f.data) for f in drop.files]
            items.append((f"{folder}/index.parquet", parquet_bytes(drop.index)))
        put_many(self.client, self.staging.bucket, items)
        # The last write marks the staging complete: a folder without it is discarded.
        batch = _json(settlement.description())
        put_bytes(self.client, self.staging.bucket, f"{folder}/{STAGED_BATCH}", batch)
        if drop is not None:
            manifest = _json(drop.manifest)
            put_bytes(self.client, self.staging.bucket, f"{folder}/{MANIFEST}", manifest)

    def _complete(
        self,
        drop_id: str,
        files: list[DropFile],
        manifest: dict[str, Any],
        before_success: Callable[[], None] | None,
    ) -> None:
        version = str(manifest["schema_version"])
        target = self._drop_folder(drop_id, version)
        manifest_key = target.key(manifest_name(version))
        if not exists(self.client, target.bucket, target.key(SUCCESS_MARKER)):
            put_many(self.client, target.bucket, [(target.key(f.key), f.data) for f in files])
            put_bytes(
                self.client,
                target.bucket,
                manifest_key,
                _json(manifest),
                content_type="application/json",
            )
            if before_success is not None:
                before_success()
            marker = _json({"drop_id": drop_id, "row_total": manifest["row_total"]})
            if not create_if_absent(self.client, target.bucket, target.key(SUCCESS_MARKER), marker):
                log.info("drop %s was already complete", drop_id)
        if "sequence" in manifest:
            # The chain holds the manifest as published, read back: a drop completed earlier
            # keeps the bytes it was completed with.
            published = get_bytes(self.client, target.bucket, manifest_key)
            sha256 = hashlib.sha256(published).hexdigest()
            as_published = json.loads(published)
            if not drop_layout(version).partitions_in_files:
                # After _SUCCESS, before the pointer: a run that dies in between leaves the
                # batch staged, and the next run's recovery comes back here.
                self._add_to_table(as_published, sha256, target, files)
            advance_latest(self.client, self.partner, as_published, sha256)

    def _add_to_table(
        self,
        manifest: dict[str, Any],
        sha256: str,
        folder: S3Location,
        files: list[DropFile],
    ) -> None:
        # Imported here: pyiceberg takes up to 0.8 s to import (decision 0025), and only the
        # format versions with a table need it.
        from manifest_exchange.publish.drop_table import DropTable, TableDrop, files_schema

        version = str(manifest["schema_version"])
        drop = TableDrop.from_manifest(
            manifest, sha256, files_schema([f.data for f in files]), folder
        )
        started = time.perf_counter()
        added = DropTable(self.client, self.partner, version).commit(drop)
        seconds = time.perf_counter() - started
        if added:
            log.info("table v%s: added drops %s in %.3f s", version, ", ".join(added), seconds)

    def _record_index(self, drop_id: str, index: pa.Table) -> None:
        put_bytes(
            self.client,
            self.index_root.bucket,
            self.index_root.key(f"{drop_id}.parquet"),
            parquet_bytes(index),
        )

    # -- recovery --------------------------------------------------------------------------------

    def recover_staged_batches(self, finish_ledger: FinishLedger) -> list[str]:
        """Finish every batch a crashed run staged completely; discard the others.

        Returns the ids of the drops completed. Hold the publish lock.
        """
        staged: dict[str, list[str]] = {}
        for info in iter_objects(self.client, self.staging):
            batch_id = info.key[len(self.staging.prefix) + 1 :].split("/", 1)[0]
            staged.setdefault(batch_id, []).append(info.key)
        recovered = []
        for batch_id, keys in sorted(staged.items()):
            folder = self.staging.key(batch_id)
            settlement = self._staged_settlement(batch_id, set(keys))
            if settlement is None:
                # Staging never finished, so nothing reached the partner, the quarantine or
                # the ledger: discard it. The run's claims expire and its objects are read again.
                log.warning("discarding incompletely staged batch %s", batch_id)
                delete_keys(self.client, self.staging.bucket, keys)
                continue
            if settlement.drop_id is not None:
                manifest = json.loads(self._read_staged(f"{folder}/{MANIFEST}"))
                files = []
                for entry in manifest["files"]:
                    data = _checked(
                        self._read_staged(f"{folder}/files/{entry['key']}"),
                        entry["sha256"],
                        entry["key"],
                    )
                    partition = {c: entry[c] for c in PARTITION_COLUMNS}
                    files.append(
                        DropFile(entry["key"], entry["rows"], data, entry["sha256"], partition)
                    )
                index = read_parquet(self._read_staged(f"{folder}/index.parquet"))
                log.warning("completing drop %s left by an interrupted run", batch_id)
                self._complete(batch_id, files, manifest, None)
                self._record_index(batch_id, index)
                recovered.append(batch_id)
            else:
                log.warning("finishing batch %s left by an interrupted run", batch_id)
            self.finish(settlement, finish_ledger)
        return recovered

    def _staged_settlement(self, batch_id: str, keys: set[str]) -> Settlement | None:
        """A completely staged batch's settlement, with its quarantine read back; None if
        its staging is incomplete."""
        folder = self.staging.key(batch_id)
        read_staged = self._read_staged
        has_manifest = f"{folder}/{MANIFEST}" in keys
        if f"{folder}/{STAGED_BATCH}" not in keys:
            if not has_manifest:
                return None
            # Staged before quarantines were staged: the run wrote its quarantine itself.
            return Settlement(
                batch_id=batch_id,
                drop_id=batch_id,
                ledger_outcomes=json.loads(read_staged(f"{folder}/ledger.json")),
                quarantine_prefix="",
            )
        batch = json.loads(read_staged(f"{folder}/{STAGED_BATCH}"))
        if batch["drop_id"] is not None and not has_manifest:
            return None
        quarantine = {
            name: _checked(read_staged(f"{folder}/quarantine/{name}"), sha256, name)
            for name, sha256 in batch["quarantine_files"].items()
        }
        return Settlement(
            batch_id=batch_id,
            drop_id=batch["drop_id"],
            ledger_outcomes=json.loads(read_staged(f"{folder}/ledger.json")),
            quarantine_prefix=batch["quarantine_prefix"],
            quarantine=quarantine,
        )

    def _read_staged(self, key: str) -> bytes:
        return get_bytes(self.client, self.staging.bucket, key)


def _checked(data: bytes, sha256: str, name: str) -> bytes:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"staged file {name} is corrupt")
    return data


def _json(body: object) -> bytes:
    return json.dumps(body, indent=1, sort_keys=True, default=str).encode("utf-8")
