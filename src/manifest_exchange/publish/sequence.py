"""The drops of one agreement and format version as a gap-free, hash-chained sequence.

Each drop's manifest carries its ``sequence`` (1, 2, 3, ... with no gap), the previous drop's
id and the SHA-256 of the previous drop's manifest as published. ``v<version>/_latest.json``
beside the drops names the newest complete drop, so a partner polls one small object to learn
whether anything is new, and a changed or missing drop breaks the chain where it happened.

The pipeline assigns sequence numbers under the publish lock, in the order drops are
published, and moves the pointer only after a drop's ``_SUCCESS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from manifest_exchange.storage.s3 import S3Client, S3Location, get_bytes_if_present, put_bytes

LATEST = "_latest.json"


@dataclass(frozen=True)
class ChainLink:
    """Where a drop sits in its sequence."""

    sequence: int
    previous_drop_id: str | None
    previous_manifest_sha256: str | None

    def as_manifest_fields(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "previous_drop_id": self.previous_drop_id,
            "previous_manifest_sha256": self.previous_manifest_sha256,
        }


@dataclass(frozen=True)
class Latest:
    """The pointer to the newest complete drop, as ``_latest.json`` holds it."""

    sequence: int
    drop_id: str
    manifest_sha256: str
    published_at: str
    previous_drop_id: str | None
    previous_manifest_sha256: str | None

    @classmethod
    def from_json(cls, data: bytes) -> Latest:
        raw = json.loads(data)
        return cls(
            sequence=int(raw["sequence"]),
            drop_id=str(raw["drop_id"]),
            manifest_sha256=str(raw["manifest_sha256"]),
            published_at=str(raw["published_at"]),
            previous_drop_id=raw.get("previous_drop_id"),
            previous_manifest_sha256=raw.get("previous_manifest_sha256"),
        )

    def to_json(self) -> bytes:
        body = {
            "sequence": self.sequence,
            "drop_id": self.drop_id,
            "manifest_sha256": self.manifest_sha256,
            "published_at": self.published_at,
            "previous_drop_id": self.previous_drop_id,
            "previous_manifest_sha256": self.previous_manifest_sha256,
        }
        return json.dumps(body, indent=1, sort_keys=True).encode("utf-8")


def version_root(partner: S3Location, schema_version: str) -> S3Location:
    return S3Location(partner.bucket, partner.key(f"v{schema_version}"))


def read_latest(client: S3Client, partner: S3Location, schema_version: str) -> Latest | None:
    """The pointer, or None before the first sequenced drop."""
    root = version_root(partner, schema_version)
    data = get_bytes_if_present(client, root.bucket, root.key(LATEST))
    return None if data is None else Latest.from_json(data)


def next_link(latest: Latest | None, drop_id: str) -> ChainLink:
    """The link of a drop about to be published after ``latest``.

    A drop the pointer already names (a retried batch rebuilt under its own id) keeps the
    link it was published with.
    """
    if latest is None:
        return ChainLink(1, None, None)
    if latest.drop_id == drop_id:
        return ChainLink(latest.sequence, latest.previous_drop_id, latest.previous_manifest_sha256)
    return ChainLink(latest.sequence + 1, latest.drop_id, latest.manifest_sha256)


def advance_latest(
    client: S3Client,
    partner: S3Location,
    manifest: dict[str, Any],
    manifest_sha256: str,
) -> None:
    """Point ``_latest.json`` at a complete drop, unless it already names a later one.

    Idempotent, so a run that completes a drop left by a crash moves the pointer too.
    """
    version = str(manifest["schema_version"])
    current = read_latest(client, partner, version)
    if current is not None and current.sequence >= int(manifest["sequence"]):
        return
    root = version_root(partner, version)
    latest = Latest(
        sequence=int(manifest["sequence"]),
        drop_id=str(manifest["drop_id"]),
        manifest_sha256=manifest_sha256,
        published_at=str(manifest["published_at"]),
        previous_drop_id=manifest.get("previous_drop_id"),
        previous_manifest_sha256=manifest.get("previous_manifest_sha256"),
    )
    put_bytes(
        client, root.bucket, root.key(LATEST), latest.to_json(), content_type="application/json"
    )
