"""The partner's side: verify drops and fetch them for offline use (read-only credentials).

Only drops with ``_SUCCESS`` are published; a folder without it is a drop still being
written (or left by an interrupted run, which the next run completes) and is reported as
pending, never read.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from manifest_exchange.publish.drops import MANIFEST, SUCCESS_MARKER, drops_root
from manifest_exchange.storage.s3 import ObjectInfo, S3Client, S3Location, get_bytes, iter_objects


@dataclass
class DropCheck:
    drop_id: str
    rows: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Drops checked, drops pending (no ``_SUCCESS`` yet) and every problem found."""

    drops: list[DropCheck]
    pending: list[str]

    @property
    def is_ok(self) -> bool:
        return all(not d.problems for d in self.drops)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "drops_verified": len(self.drops),
            "rows": sum(d.rows for d in self.drops),
            "files": sum(d.files for d in self.drops),
            "pending_drops": self.pending,
            "problems": {d.drop_id: d.problems for d in self.drops if d.problems},
        }


def list_drops(
    client: S3Client, partner: S3Location, schema_version: str = "1"
) -> dict[str, dict[str, ObjectInfo]]:
    """Drop id -> (key relative to the drop folder -> object), of one schema version."""
    root = drops_root(partner, schema_version)
    drops: dict[str, dict[str, ObjectInfo]] = defaultdict(dict)
    for info in iter_objects(client, root):
        drop_id, _, relative = info.key[len(root.prefix) + 1 :].partition("/")
        drops[drop_id][relative] = info
    return dict(drops)


def verify_drops(
    client: S3Client,
    partner: S3Location,
    *,
    since: str | None = None,
    schema_version: str = "1",
) -> VerifyReport:
    """Check every complete drop against its manifest: files, sizes, sha256, row counts.

    Args:
        since: only drops whose id sorts at or after this (ids start with their UTC time,
            ``20261124T101500Z``), so a daily check need not re-read all history.
        schema_version: which version's drops (``v1/drops/``, ``v2/drops/``).
    """
    root = drops_root(partner, schema_version)
    checks, pending = [], []
    for drop_id, objects in sorted(list_drops(client, partner, schema_version).items()):
        if since and drop_id < since:
            continue
        if SUCCESS_MARKER not in objects:
            pending.append(drop_id)
            continue
        checks.append(_verify_drop(client, root, drop_id, objects))
    return VerifyReport(checks, pending)


def _verify_drop(
    client: S3Client, root: S3Location, drop_id: str, objects: dict[str, ObjectInfo]
) -> DropCheck:
    check = DropCheck(drop_id)
    if MANIFEST not in objects:
        check.problems.append("manifest.json is missing")
        return check
    manifest = json.loads(get_bytes(client, root.bucket, root.key(drop_id, MANIFEST)))
    listed = {entry["key"]: entry for entry in manifest["files"]}
    data_files = {k for k in objects if k not in (MANIFEST, SUCCESS_MARKER)}
    for extra in sorted(data_files - set(listed)):
        check.problems.append(f"{extra}: not listed in the manifest")
    for key, entry in sorted(listed.items()):
        if key not in objects:
            check.problems.append(f"{key}: listed but missing")
            continue
        data = get_bytes(client, root.bucket, root.key(drop_id, key))
        if len(data) != entry["bytes"]:
            check.problems.append(f"{key}: {len(data)} bytes, manifest says {entry['bytes']}")
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            check.problems.append(f"{key}: sha256 does not match the manifest")
            continue
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        if rows != entry["rows"]:
            check.problems.append(f"{key}: {rows} rows, manifest says {entry['rows']}")
        check.rows += rows
        check.files += 1
    if sum(e["rows"] for e in listed.values()) != manifest["row_total"]:
        check.problems.append("row_total does not equal the sum of the files' rows")
    if manifest.get("drop_id") != drop_id:
        check.problems.append(f"manifest names drop {manifest.get('drop_id')!r}")
    return check


def fetch_drops(
    client: S3Client, partner: S3Location, destination: Path, schema_version: str = "1"
) -> list[str]:
    """Download complete drops not yet present under ``destination``; return their ids.

    Each file is checked against the manifest before it is kept; a drop's manifest is written
    last locally too, so an interrupted fetch is redone on the next call.
    """
    root = drops_root(partner, schema_version)
    fetched = []
    for drop_id, objects in sorted(list_drops(client, partner, schema_version).items()):
        if SUCCESS_MARKER not in objects:
            continue
        local = destination / f"v{schema_version}" / "drops" / drop_id
        if (local / SUCCESS_MARKER).is_file():
            continue
        manifest_bytes = get_bytes(client, root.bucket, root.key(drop_id, MANIFEST))
        manifest = json.loads(manifest_bytes)
        for entry in manifest["files"]:
            data = get_bytes(client, root.bucket, root.key(drop_id, entry["key"]))
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                raise ValueError(f"{drop_id}/{entry['key']}: sha256 does not match the manifest")
            path = local / entry["key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (local / MANIFEST).write_bytes(manifest_bytes)
        (local / SUCCESS_MARKER).write_bytes(b"")
        fetched.append(drop_id)
    return fetched
