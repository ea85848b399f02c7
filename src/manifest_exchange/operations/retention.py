"""Retention: raw manifests and quarantine are deleted once they are older than the limit.

Only data the pipeline owns and has finished with is deleted:

- source objects the ledger has recorded as processed (an unprocessed object is never deleted,
  whatever its age: deleting it would lose travellers; reconciliation reports it instead);
- quarantine files under ``<state>/quarantine/``.

Ledger entries, the record index, reports and the partner's drops are kept: they hold no names,
document numbers or birth dates and are the proof of what was exchanged. Each purge writes a
record (``<state>/retention/<time>-<id>.json``) of what it deleted: keys, sizes and times only.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from manifest_exchange.storage.ledger import Ledger
from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    delete_many,
    iter_objects,
    put_bytes,
)


@dataclass
class PurgeRecord:
    """What one purge deleted (or would delete, on a dry run)."""

    purge_id: str
    purged_at: str
    cutoff: str
    dry_run: bool
    source_deleted: list[str] = field(default_factory=list)
    quarantine_deleted: list[str] = field(default_factory=list)
    bytes_deleted: int = 0
    kept_unprocessed: int = 0
    record_uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def purge(
    client: S3Client,
    *,
    source: S3Location,
    state: S3Location,
    older_than: dt.timedelta,
    purge_id: str,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> PurgeRecord:
    """Delete processed source objects and quarantine files last written before the cutoff.

    Args:
        client: read, list and write (delete) on the source and state buckets.
        older_than: the retention period.
        purge_id: names the record (the flow passes its run id).
        dry_run: list what would go, delete nothing, write no record.
    """
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - older_than
    record = PurgeRecord(
        purge_id=purge_id, purged_at=now.isoformat(), cutoff=cutoff.isoformat(), dry_run=dry_run
    )
    listed = list(iter_objects(client, source))
    outcomes = Ledger(client, state, claim_timeout_s=0).outcomes(
        source, folders={info.key.rpartition("/")[0] for info in listed}
    )
    expired_sources: list[ObjectInfo] = []
    for info in listed:
        if info.last_modified >= cutoff or info.key.endswith("/"):
            continue
        if (info.key, info.etag) in outcomes:
            expired_sources.append(info)
        else:
            record.kept_unprocessed += 1
    quarantine = S3Location(state.bucket, state.key("quarantine"))
    expired_quarantine = [
        info for info in iter_objects(client, quarantine) if info.last_modified < cutoff
    ]
    record.source_deleted = [info.key for info in expired_sources]
    record.quarantine_deleted = [info.key for info in expired_quarantine]
    record.bytes_deleted = sum(info.size for info in expired_sources + expired_quarantine)
    if dry_run:
        return record
    delete_many(client, source.bucket, record.source_deleted)
    delete_many(client, state.bucket, record.quarantine_deleted)
    key = state.key("retention", f"{now:%Y%m%dT%H%M%SZ}-{purge_id}.json")
    record.record_uri = f"s3://{state.bucket}/{key}"
    body = json.dumps(record.as_dict(), indent=1).encode("utf-8")
    put_bytes(client, state.bucket, key, body, content_type="application/json")
    return record
