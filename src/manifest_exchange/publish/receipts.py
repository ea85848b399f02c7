"""Receipts: the partner's word that it received a drop, and receipts checked against drops.

The partner writes one receipt per drop to a location only it may write, the agreement's
``receipts_location``: ``<receipts>/v<version>/<drop_id>.json`` holding the drop id, format
version, sequence number, the SHA-256 of the drop's manifest bytes as the partner fetched them,
and when it received the drop. Ids, hashes and times only: never anything about a traveller.

A receipt is created with ``If-None-Match: *`` and never replaced. A store cannot be told to
refuse a plain PUT over an existing key (SeaweedFS 4.48's bucket policies know no
``s3:if-none-match`` condition), so the receipts bucket keeps every version under object lock,
readers take each receipt's *first* version, and a receipt with more than one version is
reported as rewritten.

The pipeline reads receipts to report drops not acknowledged in time and receipts that name
other bytes than were published (:func:`match_receipts`), and the retention purge may wait for
them (:func:`confirmed_drops`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import botocore.exceptions

from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root, manifest_name
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    create_if_absent,
    exists,
    get_bytes,
)

RECEIPT_SUFFIX = ".json"


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ReceiptError(ValueError):
    """Bytes that do not hold a receipt (not JSON, a field missing or of the wrong kind)."""


@dataclass(frozen=True)
class Receipt:
    """One drop acknowledged by the partner.

    Attributes:
        drop_id: the drop received.
        schema_version: its format version (receipts of each version are kept apart).
        sequence: its place in the version's sequence; None for a drop published before drops
            were sequenced.
        manifest_sha256: SHA-256 (lower-case hex) of the drop's manifest bytes as received.
        received_at: when the partner received the drop (UTC).
    """

    drop_id: str
    schema_version: str
    sequence: int | None
    manifest_sha256: str
    received_at: dt.datetime

    @classmethod
    def for_manifest(cls, manifest_bytes: bytes, received_at: dt.datetime) -> Receipt:
        """The receipt for the drop whose manifest is ``manifest_bytes``."""
        manifest = json.loads(manifest_bytes)
        sequence = manifest.get("sequence")
        return cls(
            drop_id=str(manifest["drop_id"]),
            schema_version=str(manifest["schema_version"]),
            sequence=None if sequence is None else int(sequence),
            manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            received_at=received_at.astimezone(dt.UTC),
        )

    def to_json(self) -> bytes:
        body = {
            **asdict(self),
            "received_at": self.received_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
        }
        return json.dumps(body, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Receipt:
        """Read a receipt, whoever wrote it (``partner ack`` or the partner's own tools).

        Raises:
            ReceiptError: naming what is wrong, never quoting the bytes.
        """
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ReceiptError("not JSON") from None
        if not isinstance(raw, dict):
            raise ReceiptError("not a JSON object")
        missing = [
            name
            for name in ("drop_id", "schema_version", "manifest_sha256", "received_at")
            if not isinstance(raw.get(name), str)
        ]
        if missing:
            raise ReceiptError(f"missing or not text: {', '.join(missing)}")
        sequence = raw.get("sequence")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)):
            raise ReceiptError("sequence is not a whole number")
        if not _SHA256_HEX.fullmatch(raw["manifest_sha256"]):
            raise ReceiptError("manifest_sha256 is not 64 lower-case hex digits")
        try:
            received_at = dt.datetime.fromisoformat(raw["received_at"])
        except ValueError:
            raise ReceiptError("received_at is not an ISO 8601 time") from None
        if received_at.tzinfo is None:
            raise ReceiptError("received_at has no time zone")
        return cls(
            drop_id=raw["drop_id"],
            schema_version=raw["schema_version"],
            sequence=sequence,
            manifest_sha256=raw["manifest_sha256"],
            received_at=received_at.astimezone(dt.UTC),
        )


def receipts_root(receipts: S3Location, schema_version: str) -> S3Location:
    """Where the receipts of one format version go: ``<receipts>/v<version>``."""
    return S3Location(receipts.bucket, receipts.key(f"v{schema_version}"))


def receipt_key(receipts: S3Location, schema_version: str, drop_id: str) -> str:
    return receipts_root(receipts, schema_version).key(f"{drop_id}{RECEIPT_SUFFIX}")


def write_receipt(client: S3Client, receipts: S3Location, receipt: Receipt) -> bool:
    """Create ``receipt``; False where the drop has a receipt already (it is never replaced)."""
    key = receipt_key(receipts, receipt.schema_version, receipt.drop_id)
    return create_if_absent(
        client, receipts.bucket, key, receipt.to_json(), content_type="application/json"
    )


# -- reading receipts (the pipeline) -----------------------------------------------------------


@dataclass(frozen=True)
class StoredReceipt:
    """A receipt as the store holds it.

    Attributes:
        drop_id: the drop its key names.
        versions: how many versions the key has; more than one means it was written over.
        receipt: the first version, read; None where it is not a receipt for this drop.
        problem: why ``receipt`` is None.
    """

    drop_id: str
    versions: int
    receipt: Receipt | None
    problem: str | None = None


def list_receipts(
    client: S3Client, receipts: S3Location, schema_version: str, *, since: str | None = None
) -> dict[str, list[str]]:
    """Drop id -> the version ids of its receipt, newest first (one paged listing; with
    ``since``, only of drops whose id sorts at or after it, so a daily check lists its window
    rather than the whole history).

    S3 lists the versions of a key newest first, so the last one is the receipt as first
    written: SeaweedFS gives versions of the same second the same time, so the order is the
    only reliable witness.
    """
    root = receipts_root(receipts, schema_version)
    prefix = f"{root.prefix}/"
    versions: dict[str, list[str]] = {}
    # Every key under the prefix sorts after "<prefix>/", and "<prefix>/<since>" before every
    # "<prefix>/<since>...": the listing starts where the wanted drops do.
    page = client.list_object_versions(
        Bucket=receipts.bucket, Prefix=prefix, KeyMarker=f"{prefix}{since or ''}"
    )
    while True:
        for version in page.get("Versions", []):
            name = version["Key"][len(prefix) :]
            if "/" in name or not name.endswith(RECEIPT_SUFFIX):
                continue  # not a receipt of this version
            drop_id = name.removesuffix(RECEIPT_SUFFIX)
            versions.setdefault(drop_id, []).append(str(version.get("VersionId") or "null"))
        if not page.get("IsTruncated"):
            return versions
        page = client.list_object_versions(
            Bucket=receipts.bucket,
            Prefix=prefix,
            KeyMarker=page["NextKeyMarker"],
            VersionIdMarker=page["NextVersionIdMarker"],
        )


def read_receipts(
    client: S3Client,
    receipts: S3Location,
    schema_version: str,
    *,
    drop_ids: Collection[str] | None = None,
    since: str | None = None,
) -> dict[str, StoredReceipt]:
    """Drop id -> its receipt as first written, for the drops named (or every drop, or those
    whose id sorts at or after ``since``: ids start with their UTC time)."""
    listed = list_receipts(client, receipts, schema_version, since=since)
    wanted = sorted(
        drop_id
        for drop_id in listed
        if (drop_ids is None or drop_id in drop_ids) and (since is None or drop_id >= since)
    )
    root = receipts_root(receipts, schema_version)

    def first_version(drop_id: str) -> bytes:
        key = root.key(f"{drop_id}{RECEIPT_SUFFIX}")
        answer = client.get_object(Bucket=receipts.bucket, Key=key, VersionId=listed[drop_id][-1])
        body: bytes = answer["Body"].read()
        return body

    with ThreadPoolExecutor(max_workers=16) as pool:
        bodies = list(pool.map(first_version, wanted))
    return {
        drop_id: _stored(drop_id, len(listed[drop_id]), body, schema_version)
        for drop_id, body in zip(wanted, bodies, strict=True)
    }


def _stored(drop_id: str, versions: int, body: bytes, schema_version: str) -> StoredReceipt:
    try:
        receipt = Receipt.from_json(body)
    except ReceiptError as error:
        return StoredReceipt(drop_id, versions, None, f"not a receipt: {error}")
    if receipt.drop_id != drop_id:
        return StoredReceipt(drop_id, versions, None, f"names drop {receipt.drop_id!r}")
    if receipt.schema_version != schema_version:
        return StoredReceipt(
            drop_id, versions, None, f"names format version {receipt.schema_version!r}"
        )
    return StoredReceipt(drop_id, versions, receipt)


# -- receipts against drops --------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedDrop:
    """A complete drop as the pipeline published it.

    Attributes:
        manifest_sha256: SHA-256 of its manifest's bytes in the partner bucket.
        completed_at: when its ``_SUCCESS`` was written, from which on the partner can take it.
    """

    drop_id: str
    manifest_sha256: str
    completed_at: dt.datetime


@dataclass
class ReceiptCheck:
    """What the receipts say about a set of complete drops.

    Attributes:
        acknowledged: drops whose receipt names their manifest as published.
        awaiting: drops without a receipt that are not due yet.
        unacknowledged: drop id -> when it was completed, for drops without a receipt past due.
        mismatched: drop id -> the receipt's and the published manifest's sha256: the partner
            received other bytes than were published.
        rewritten: drops whose receipt was written over (its first version still counts).
        unreadable: drop id -> why its receipt is not one (bad JSON, names another drop).
        without_drop: receipts naming a drop that is not complete in the partner bucket.
    """

    due_minutes: float
    drops_checked: int = 0
    acknowledged: list[str] = field(default_factory=list)
    awaiting: list[str] = field(default_factory=list)
    unacknowledged: dict[str, str] = field(default_factory=dict)
    mismatched: dict[str, dict[str, str]] = field(default_factory=dict)
    rewritten: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    without_drop: list[str] = field(default_factory=list)

    @property
    def problem_count(self) -> int:
        return (
            len(self.unacknowledged)
            + len(self.mismatched)
            + len(self.rewritten)
            + len(self.unreadable)
            + len(self.without_drop)
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": self.problem_count}


def match_receipts(
    drops: Iterable[PublishedDrop],
    receipts: Mapping[str, StoredReceipt],
    *,
    now: dt.datetime,
    due: dt.timedelta,
    complete_drop_ids: Collection[str] | None = None,
) -> ReceiptCheck:
    """Each drop against its receipt.

    Args:
        drops: the drops to account for (reconciliation: those of its window).
        receipts: the receipts read for them (and any others of the same window).
        now: the reference time; a drop completed more than ``due`` before it needs a receipt.
        complete_drop_ids: every complete drop, so a receipt for an older drop than ``drops``
            is not mistaken for one without a drop (default: the ids of ``drops``).
    """
    result = ReceiptCheck(due_minutes=due.total_seconds() / 60)
    checked = sorted(drops, key=lambda drop: drop.drop_id)
    result.drops_checked = len(checked)
    for drop in checked:
        stored = receipts.get(drop.drop_id)
        if stored is None:
            if now - drop.completed_at > due:
                result.unacknowledged[drop.drop_id] = drop.completed_at.isoformat()
            else:
                result.awaiting.append(drop.drop_id)
            continue
        if stored.versions > 1:
            result.rewritten.append(drop.drop_id)
        if stored.receipt is None:
            result.unreadable[drop.drop_id] = stored.problem or "not a receipt"
        elif stored.receipt.manifest_sha256 != drop.manifest_sha256:
            result.mismatched[drop.drop_id] = {
                "receipt_sha256": stored.receipt.manifest_sha256,
                "manifest_sha256": drop.manifest_sha256,
            }
        else:
            result.acknowledged.append(drop.drop_id)
    known = set(complete_drop_ids) if complete_drop_ids is not None else set()
    known.update(drop.drop_id for drop in checked)
    result.without_drop = sorted(drop_id for drop_id in receipts if drop_id not in known)
    return result


def published_drops(
    client: S3Client, partner: S3Location, schema_version: str, drop_ids: Collection[str]
) -> list[PublishedDrop]:
    """The named drops that are complete, with their manifests' sha256 (a HEAD and a GET each);
    a drop without ``_SUCCESS`` is left out."""
    root = drops_root(partner, schema_version)
    name = manifest_name(schema_version)

    def published(drop_id: str) -> PublishedDrop | None:
        try:
            head = client.head_object(Bucket=root.bucket, Key=root.key(drop_id, SUCCESS_MARKER))
        except botocore.exceptions.ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return None
            raise
        manifest = get_bytes(client, root.bucket, root.key(drop_id, name))
        return PublishedDrop(drop_id, hashlib.sha256(manifest).hexdigest(), head["LastModified"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(published, sorted(set(drop_ids))))
    return [drop for drop in found if drop is not None]


def confirmed_drops(
    client: S3Client,
    *,
    partner: S3Location,
    receipts: S3Location,
    schema_version: str,
    drop_ids: Collection[str],
) -> set[str]:
    """Of ``drop_ids``, the drops whose receipt names their manifest as published.

    Args:
        client: read on the partner bucket and read and list on the receipts (the pipeline).
    """
    if not drop_ids:
        return set()
    drops = published_drops(client, partner, schema_version, drop_ids)
    stored = read_receipts(client, receipts, schema_version, drop_ids=set(drop_ids))
    check = match_receipts(
        drops, stored, now=dt.datetime.now(dt.UTC), due=dt.timedelta(0), complete_drop_ids=drop_ids
    )
    return set(check.acknowledged)


# -- acknowledging drops (the partner) ---------------------------------------------------------


@dataclass
class Acknowledgement:
    """What ``partner ack`` did.

    Attributes:
        acknowledged: drops whose receipt was written now.
        already_acknowledged: drops that had a receipt for the same manifest.
        conflicting: drop id -> why the receipt already there does not match this one.
        not_published: drops offered that are not complete at the drops location (a wrong
            location or inbox): no receipt is written for them.
    """

    acknowledged: list[str] = field(default_factory=list)
    already_acknowledged: list[str] = field(default_factory=list)
    conflicting: dict[str, str] = field(default_factory=dict)
    not_published: list[str] = field(default_factory=list)

    @property
    def is_ok(self) -> bool:
        return not self.conflicting and not self.not_published

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.is_ok}


def receipts_from_inbox(
    inbox: Path, schema_version: str, drop_ids: Sequence[str] | None = None
) -> list[Receipt]:
    """Receipts for the complete drops fetched into ``inbox`` (or the named ones among them):
    the manifest bytes as fetched, received when the fetch wrote the drop's ``_SUCCESS``."""
    drops = inbox / f"v{schema_version}" / "drops"
    name = manifest_name(schema_version)
    fetched = {marker.parent.name: marker for marker in drops.glob(f"*/{SUCCESS_MARKER}")}
    missing = [drop_id for drop_id in drop_ids or () if drop_id not in fetched]
    if missing:
        raise ValueError(f"not fetched into {drops}: {', '.join(missing)}")
    chosen = sorted(drop_ids if drop_ids else fetched)
    receipts = []
    for drop_id in chosen:
        marker = fetched[drop_id]
        received_at = dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.UTC)
        receipt = Receipt.for_manifest((marker.parent / name).read_bytes(), received_at)
        if (receipt.drop_id, receipt.schema_version) != (drop_id, schema_version):
            raise ValueError(f"{marker.parent / name} describes another drop or version")
        receipts.append(receipt)
    return receipts


def receipts_from_store(
    client: S3Client,
    partner: S3Location,
    schema_version: str,
    drop_ids: Sequence[str],
    received_at: dt.datetime,
) -> list[Receipt]:
    """Receipts for named complete drops that the partner took with its own tools: the
    manifests as published now."""
    root = drops_root(partner, schema_version)
    name = manifest_name(schema_version)
    incomplete = [
        drop_id
        for drop_id in drop_ids
        if not exists(client, root.bucket, root.key(drop_id, SUCCESS_MARKER))
    ]
    if incomplete:
        raise ValueError(f"not complete under {root}: {', '.join(incomplete)}")
    return [
        Receipt.for_manifest(get_bytes(client, root.bucket, root.key(drop_id, name)), received_at)
        for drop_id in sorted(set(drop_ids))
    ]


def acknowledge(
    client: S3Client,
    *,
    partner: S3Location,
    receipts: S3Location,
    schema_version: str,
    received: Sequence[Receipt],
) -> Acknowledgement:
    """Write a receipt for each drop in ``received`` that has none yet.

    One listing finds the drops acknowledged before, so acknowledging an inbox again costs
    no write per drop; a receipt that appears meanwhile (a second ack at once) is read back
    and compared.

    Args:
        client: the partner's own (read on its drops, create on its receipts).
    """
    result = Acknowledgement()
    listed = list_receipts(client, receipts, schema_version)
    root = drops_root(partner, schema_version)
    for receipt in received:
        if receipt.drop_id in listed:
            result.already_acknowledged.append(receipt.drop_id)
        elif not exists(client, root.bucket, root.key(receipt.drop_id, SUCCESS_MARKER)):
            result.not_published.append(receipt.drop_id)
        elif write_receipt(client, receipts, receipt):
            result.acknowledged.append(receipt.drop_id)
        else:
            _compare_existing(client, receipts, receipt, result)
    return result


def _compare_existing(
    client: S3Client, receipts: S3Location, receipt: Receipt, result: Acknowledgement
) -> None:
    stored = read_receipts(
        client, receipts, receipt.schema_version, drop_ids={receipt.drop_id}
    ).get(receipt.drop_id)
    if stored is not None and stored.receipt is not None:
        if stored.receipt.manifest_sha256 == receipt.manifest_sha256:
            result.already_acknowledged.append(receipt.drop_id)
        else:
            result.conflicting[receipt.drop_id] = "a receipt for other manifest bytes exists"
    else:
        problem = stored.problem if stored is not None else "not readable"
        result.conflicting[receipt.drop_id] = f"the receipt there is {problem}"


def acknowledge_drops(
    client: S3Client,
    *,
    partner: S3Location,
    receipts: S3Location,
    schema_version: str,
    inbox: Path | None = None,
    drop_ids: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> Acknowledgement:
    """``partner ack``: receipts for the drops fetched into ``inbox`` (all, or those named), or,
    without an inbox, for the named drops as published.

    Raises:
        ValueError: neither an inbox nor drops named; a named drop not fetched or not complete.
    """
    if inbox is not None:
        received = receipts_from_inbox(inbox, schema_version, drop_ids)
    elif drop_ids:
        moment = now or dt.datetime.now(dt.UTC)
        received = receipts_from_store(client, partner, schema_version, drop_ids, moment)
    else:
        raise ValueError("name the inbox the drops were fetched into (--to) or the drops (--drop)")
    return acknowledge(
        client, partner=partner, receipts=receipts, schema_version=schema_version, received=received
    )
