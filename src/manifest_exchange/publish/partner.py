"""The partner's side: verify drops and fetch them for offline use (read-only credentials).

Only drops with ``_SUCCESS`` are published; a folder without it is a drop still being
written (or left by an interrupted run, which the next run completes) and is reported as
pending, never read. Drops carry a gap-free, hash-chained sequence (:mod:`.sequence`):
verification reports a gap, a broken link or a drop that changed, and a fetch can resume
after the last sequence number the partner took.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from manifest_exchange.agreements.terms import COLUMNS_BY_VERSION
from manifest_exchange.paths import read_sql
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root, manifest_name
from manifest_exchange.publish.sequence import Latest, read_latest
from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    get_bytes,
    get_bytes_if_present,
    iter_objects,
)

# What `partner fetch --current` writes beside the version's drops in the inbox, and the macro
# it runs (the partner guide quotes it).
CURRENT_RECORDS = "current.parquet"
CURRENT_RECORDS_MACRO = "macro_current_records"


class SequenceError(RuntimeError):
    """The drops' sequence has a gap or a broken link, so a resumed fetch would miss data."""


@dataclass
class DropCheck:
    drop_id: str
    rows: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)
    sequence: int | None = None
    previous_drop_id: str | None = None
    previous_manifest_sha256: str | None = None
    manifest_sha256: str | None = None


@dataclass
class SequenceCheck:
    """The complete drops' sequence numbers and hash chain, and the ``_latest.json`` pointer."""

    first: int | None = None
    last: int | None = None
    latest: int | None = None
    gaps: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unsequenced: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "latest_pointer": self.latest,
            "gaps": self.gaps,
            "problems": self.problems,
            "drops_before_sequencing": self.unsequenced,
        }


@dataclass
class VerifyReport:
    """Drops checked, drops pending (no ``_SUCCESS`` yet), the sequence and every problem."""

    drops: list[DropCheck]
    pending: list[str]
    sequence: SequenceCheck = field(default_factory=SequenceCheck)

    @property
    def is_ok(self) -> bool:
        return (
            all(not d.problems for d in self.drops)
            and not self.sequence.gaps
            and not self.sequence.problems
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "drops_verified": len(self.drops),
            "rows": sum(d.rows for d in self.drops),
            "files": sum(d.files for d in self.drops),
            "pending_drops": self.pending,
            "sequence": self.sequence.as_dict(),
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
    """Check every complete drop against its manifest (files, sizes, sha256, row counts)
    and the drops against each other (sequence, hash chain, ``_latest.json``).

    Args:
        since: only drops whose id sorts at or after this (ids start with their UTC time,
            ``20261124T101500Z``), so a daily check need not re-read all history; the
            sequence is then checked from the first drop read.
        schema_version: which version's drops (``v1/drops/``, ``v2/drops/``, ``v3/drops/``).
    """
    root = drops_root(partner, schema_version)
    manifest = manifest_name(schema_version)
    checks, pending = [], []
    for drop_id, objects in sorted(list_drops(client, partner, schema_version).items()):
        if since and drop_id < since:
            continue
        if SUCCESS_MARKER not in objects:
            pending.append(drop_id)
            continue
        checks.append(_verify_drop(client, root, drop_id, objects, manifest))
    latest = read_latest(client, partner, schema_version)
    return VerifyReport(checks, pending, check_sequence(checks, latest, from_first=bool(since)))


def _verify_drop(
    client: S3Client,
    root: S3Location,
    drop_id: str,
    objects: dict[str, ObjectInfo],
    manifest_file: str,
) -> DropCheck:
    check = DropCheck(drop_id)
    if manifest_file not in objects:
        check.problems.append(f"{manifest_file} is missing")
        return check
    manifest_bytes = get_bytes(client, root.bucket, root.key(drop_id, manifest_file))
    manifest = json.loads(manifest_bytes)
    check.manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
    check.sequence = manifest.get("sequence")
    check.previous_drop_id = manifest.get("previous_drop_id")
    check.previous_manifest_sha256 = manifest.get("previous_manifest_sha256")
    listed = {entry["key"]: entry for entry in manifest["files"]}
    data_files = {k for k in objects if k not in (manifest_file, SUCCESS_MARKER)}
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


def check_sequence(
    checks: list[DropCheck], latest: Latest | None, *, from_first: bool = False
) -> SequenceCheck:
    """Gaps, broken links and changed drops among complete drops, and the pointer's agreement.

    Args:
        checks: the complete drops, each with its manifest's link and its manifest's sha256.
        latest: ``_latest.json``, or None where there is none.
        from_first: the drops are a recent part of the sequence (``verify --since``), so the
            first one read need not be number 1.
    """
    result = SequenceCheck()
    by_number: dict[int, list[DropCheck]] = defaultdict(list)
    for check in checks:
        if check.sequence is not None:
            by_number[check.sequence].append(check)
    sequenced = [c for holders in by_number.values() for c in holders]
    result.unsequenced = len(checks) - len(sequenced)
    if by_number:
        first_id = min(c.drop_id for c in sequenced)
        late = sorted(c.drop_id for c in checks if c.sequence is None and c.drop_id > first_id)
        for drop_id in late:
            result.problems.append(f"drop {drop_id} has no sequence number but follows others")
        result.first = 1 if not from_first else min(by_number)
        result.last = max(by_number)
        result.gaps = [n for n in range(result.first, result.last + 1) if n not in by_number]
        for number, holders in sorted(by_number.items()):
            if len(holders) > 1:
                ids = ", ".join(sorted(c.drop_id for c in holders))
                result.problems.append(f"sequence {number} is held by more than one drop: {ids}")
            _check_link(result, holders[0], by_number.get(number - 1, []))
    if latest is not None:
        result.latest = latest.sequence
        if result.last is None or latest.sequence > result.last:
            after = result.last or 0
            result.gaps += list(range(after + 1, latest.sequence + 1))
            result.problems.append(
                f"_latest.json names sequence {latest.sequence} ({latest.drop_id}), but the "
                f"complete drops end at {result.last}"
            )
        elif latest.sequence in by_number:
            head = by_number[latest.sequence][0]
            if head.drop_id != latest.drop_id:
                result.problems.append(
                    f"_latest.json names {latest.drop_id} as sequence {latest.sequence}, "
                    f"which is {head.drop_id}"
                )
            elif head.manifest_sha256 != latest.manifest_sha256:
                result.problems.append(
                    f"drop {head.drop_id} (sequence {head.sequence}) changed: its manifest's "
                    "sha256 differs from the one _latest.json recorded"
                )
    return result


def _check_link(result: SequenceCheck, drop: DropCheck, previous: list[DropCheck]) -> None:
    if drop.sequence == 1:
        if drop.previous_drop_id is not None:
            result.problems.append(f"drop {drop.drop_id} is sequence 1 but names a previous drop")
        return
    if not previous:
        return  # a gap, reported as such; or the first drop read by `verify --since`
    before = previous[0]
    if drop.previous_drop_id != before.drop_id:
        result.problems.append(
            f"broken chain: drop {drop.drop_id} (sequence {drop.sequence}) names "
            f"{drop.previous_drop_id} as the previous drop, but sequence {before.sequence} is "
            f"{before.drop_id}"
        )
    elif drop.previous_manifest_sha256 != before.manifest_sha256:
        result.problems.append(
            f"drop {before.drop_id} (sequence {before.sequence}) changed after drop "
            f"{drop.drop_id} chained to it: its manifest's sha256 differs"
        )


def fetch_drops(
    client: S3Client,
    partner: S3Location,
    destination: Path,
    schema_version: str = "1",
    *,
    since_sequence: int | None = None,
) -> list[str]:
    """Download complete drops not yet present under ``destination``; return their ids.

    Each file is checked against the manifest before it is kept; a drop's manifest is written
    last locally too, so an interrupted fetch is redone on the next call. With
    ``since_sequence``, only the drops after that sequence number, found by walking the hash
    chain back from ``_latest.json`` (every link checked on the way).
    """
    if since_sequence is None:
        drop_ids = [
            drop_id
            for drop_id, objects in sorted(list_drops(client, partner, schema_version).items())
            if SUCCESS_MARKER in objects
        ]
    else:
        chain = chain_since(client, partner, schema_version, since_sequence)
        drop_ids = [drop_id for drop_id, _ in chain]
    return [
        drop_id
        for drop_id in drop_ids
        if _fetch_drop(client, partner, destination, schema_version, drop_id)
    ]


def chain_since(
    client: S3Client, partner: S3Location, schema_version: str, since_sequence: int
) -> list[tuple[str, int]]:
    """(drop id, sequence) of every drop after ``since_sequence``, oldest first.

    Walks back from ``_latest.json`` through each manifest's previous drop, so it reads only
    the new drops' manifests, and checks each against the sha256 its successor recorded.

    Raises:
        SequenceError: a link is missing, broken, or a drop changed.
    """
    latest = read_latest(client, partner, schema_version)
    if latest is None or latest.sequence <= since_sequence:
        return []
    root = drops_root(partner, schema_version)
    name = manifest_name(schema_version)
    found: list[tuple[str, int]] = []
    drop_id: str | None = latest.drop_id
    expected_sha256: str | None = latest.manifest_sha256
    expected_number = latest.sequence
    while expected_number > since_sequence:
        if drop_id is None:
            raise SequenceError(f"the chain ends before sequence {expected_number}")
        data = get_bytes_if_present(client, root.bucket, root.key(drop_id, name))
        if data is None:
            raise SequenceError(f"gap: drop {drop_id} (sequence {expected_number}) is missing")
        if hashlib.sha256(data).hexdigest() != expected_sha256:
            raise SequenceError(
                f"drop {drop_id} (sequence {expected_number}) changed: its manifest's sha256 "
                "differs from the one its successor recorded"
            )
        manifest = json.loads(data)
        if manifest.get("sequence") != expected_number:
            raise SequenceError(
                f"drop {drop_id} is sequence {manifest.get('sequence')}, expected {expected_number}"
            )
        found.append((drop_id, expected_number))
        drop_id = manifest.get("previous_drop_id")
        expected_sha256 = manifest.get("previous_manifest_sha256")
        expected_number -= 1
    return list(reversed(found))


def _fetch_drop(
    client: S3Client, partner: S3Location, destination: Path, schema_version: str, drop_id: str
) -> bool:
    root = drops_root(partner, schema_version)
    name = manifest_name(schema_version)
    local = destination / f"v{schema_version}" / "drops" / drop_id
    if (local / SUCCESS_MARKER).is_file():
        return False
    manifest_bytes = get_bytes(client, root.bucket, root.key(drop_id, name))
    manifest = json.loads(manifest_bytes)
    for entry in manifest["files"]:
        data = get_bytes(client, root.bucket, root.key(drop_id, entry["key"]))
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(f"{drop_id}/{entry['key']}: sha256 does not match the manifest")
        path = local / entry["key"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (local / name).write_bytes(manifest_bytes)
    (local / SUCCESS_MARKER).write_bytes(b"")
    return True


def last_fetched_sequence(inbox: Path, schema_version: str) -> int | None:
    """The highest sequence number among the complete drops fetched into ``inbox``: where
    the next ``fetch --since`` starts."""
    name = manifest_name(schema_version)
    numbers = [
        json.loads((marker.parent / name).read_text()).get("sequence")
        for marker in (inbox / f"v{schema_version}" / "drops").glob(f"*/{SUCCESS_MARKER}")
    ]
    return max((n for n in numbers if n is not None), default=None)


def write_current_records(inbox: Path, schema_version: str) -> Path:
    """Every traveller's current record from the fetched drops, in one Parquet file.

    Reads the complete local drops of the version (those with ``_SUCCESS``) with the shipped
    ``current_records`` macro; columns come in the contract's order.
    """
    drops = inbox / f"v{schema_version}" / "drops"
    complete = sorted(p.parent for p in drops.glob(f"*/{SUCCESS_MARKER}"))
    target = inbox / f"v{schema_version}" / CURRENT_RECORDS
    files = [str(path) for folder in complete for path in sorted(folder.rglob("*.parquet"))]
    if not files:
        raise FileNotFoundError(f"no complete drops under {drops}")
    with duckdb.connect() as database:
        database.execute(read_sql(CURRENT_RECORDS_MACRO))
        database.read_parquet(files, hive_partitioning=True).create_view("published")
        names = [row[0] for row in database.execute("describe published").fetchall()]
        contract = [c for c in COLUMNS_BY_VERSION.get(schema_version, ()) if c in names]
        ordered = contract + [c for c in names if c not in contract]
        columns = ", ".join(f'"{name}"' for name in ordered)
        current = database.execute(
            f"select {columns} from current_records('published') order by record_id"  # noqa: S608
        ).to_arrow_table()
    pq.write_table(current, target, compression="zstd")
    return target
