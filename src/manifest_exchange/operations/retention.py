"""Retention: raw manifests and quarantine are deleted once they are older than the limit.

Only data the pipeline owns and has finished with is deleted:

- source objects the ledger has recorded as processed (an unprocessed object is never deleted,
  whatever its age: deleting it would lose travellers; reconciliation reports it instead);
- quarantine files under ``<state>/quarantine/``.

Where the agreement requires receipts, a processed source object is deleted only once the drop
its travellers went into (the ``drop_id`` of its ledger outcome) has a receipt naming that
drop's manifest as published: until the partner confirms delivery, the manifest is kept so it
can be sent again. An object none of whose travellers were published needs no receipt.

A purge is planned (:func:`plan_purge`), the drops it would need confirmed are checked by an
identity that may read receipts (:func:`manifest_exchange.publish.receipts.confirmed_drops`),
and then carried out (:func:`carry_out_purge`); :func:`purge` plans and carries out in one
call.

Ledger entries, the record index, reports and the partner's drops are kept: they hold no names,
document numbers or birth dates and are the proof of what was exchanged. Each purge writes a
record (``<state>/retention/<time>-<id>.json``) of what it deleted: keys, sizes and times only.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
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
    """What one purge deleted (or would delete, on a dry run).

    Attributes:
        kept_unprocessed: expired source objects kept because the ledger has no outcome.
        require_receipt: whether source objects waited for their drops' receipts.
        kept_unacknowledged: expired, processed source objects kept because a drop they went
            into has no valid receipt yet.
        unacknowledged_drops: those drops.
    """

    purge_id: str
    purged_at: str
    cutoff: str
    dry_run: bool
    source_deleted: list[str] = field(default_factory=list)
    quarantine_deleted: list[str] = field(default_factory=list)
    bytes_deleted: int = 0
    kept_unprocessed: int = 0
    require_receipt: bool = False
    kept_unacknowledged: int = 0
    unacknowledged_drops: list[str] = field(default_factory=list)
    record_uri: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExpiredSource:
    """A processed source object past the cutoff, and the drop its travellers went into (None:
    none of them was published)."""

    info: ObjectInfo
    drop_id: str | None


@dataclass
class PurgePlan:
    """What has expired, before anything is deleted."""

    planned_at: dt.datetime
    cutoff: dt.datetime
    expired_sources: list[ExpiredSource] = field(default_factory=list)
    expired_quarantine: list[ObjectInfo] = field(default_factory=list)
    kept_unprocessed: int = 0

    @property
    def drops_to_confirm(self) -> list[str]:
        """The drops the expired sources went into: what a receipt must confirm first."""
        return sorted({s.drop_id for s in self.expired_sources if s.drop_id is not None})


def plan_purge(
    client: S3Client,
    *,
    source: S3Location,
    state: S3Location,
    older_than: dt.timedelta,
    now: dt.datetime | None = None,
) -> PurgePlan:
    """Processed source objects and quarantine files last written before the cutoff.

    Args:
        client: read and list on the source and state buckets.
        older_than: the retention period.
    """
    now = now or dt.datetime.now(dt.UTC)
    plan = PurgePlan(planned_at=now, cutoff=now - older_than)
    listed = list(iter_objects(client, source))
    outcomes = Ledger(client, state, claim_timeout_s=0).outcomes(
        source, folders={info.key.rpartition("/")[0] for info in listed}
    )
    for info in listed:
        if info.last_modified >= plan.cutoff or info.key.endswith("/"):
            continue
        outcome = outcomes.get((info.key, info.etag))
        if outcome is None:
            plan.kept_unprocessed += 1
            continue
        plan.expired_sources.append(ExpiredSource(info, _drop_published_into(outcome.body)))
    quarantine = S3Location(state.bucket, state.key("quarantine"))
    plan.expired_quarantine = [
        info for info in iter_objects(client, quarantine) if info.last_modified < plan.cutoff
    ]
    return plan


def _drop_published_into(outcome: dict[str, Any]) -> str | None:
    """The drop that holds some of the object's travellers. The ledger names the batch's drop
    for every object of the batch, also one none of whose travellers were published in it."""
    drop_id = outcome.get("drop_id")
    travellers = outcome.get("travellers")
    published = travellers.get("published", 0) if isinstance(travellers, dict) else 0
    return drop_id if isinstance(drop_id, str) and published else None


def split_by_receipts(
    expired: list[ExpiredSource], confirmed_drops: Collection[str] | None
) -> tuple[list[ObjectInfo], list[ExpiredSource]]:
    """The objects that may go, and those that wait for a receipt of the drop they went into.

    ``confirmed_drops`` None requires no receipt; an object that published nothing went into
    no drop and never waits.
    """
    if confirmed_drops is None:
        return [source.info for source in expired], []
    waiting = [s for s in expired if s.drop_id is not None and s.drop_id not in confirmed_drops]
    deletable = [s.info for s in expired if s not in waiting]
    return deletable, waiting


def carry_out_purge(
    client: S3Client,
    plan: PurgePlan,
    *,
    source: S3Location,
    state: S3Location,
    purge_id: str,
    dry_run: bool = False,
    confirmed_drops: Collection[str] | None = None,
) -> PurgeRecord:
    """Delete what ``plan`` found expired; record the purge.

    Args:
        client: read, list and write (delete) on the source and state buckets.
        purge_id: names the record (the flow passes its run id).
        dry_run: list what would go, delete nothing, write no record.
        confirmed_drops: the drops with a valid receipt, where receipts are required: a
            source object whose drop is not among them is kept. None requires no receipt.
    """
    record = PurgeRecord(
        purge_id=purge_id,
        purged_at=plan.planned_at.isoformat(),
        cutoff=plan.cutoff.isoformat(),
        dry_run=dry_run,
        kept_unprocessed=plan.kept_unprocessed,
        require_receipt=confirmed_drops is not None,
    )
    deletable, waiting = split_by_receipts(plan.expired_sources, confirmed_drops)
    record.kept_unacknowledged = len(waiting)
    record.unacknowledged_drops = sorted({str(expired.drop_id) for expired in waiting})
    record.source_deleted = [info.key for info in deletable]
    record.quarantine_deleted = [info.key for info in plan.expired_quarantine]
    record.bytes_deleted = sum(info.size for info in deletable + plan.expired_quarantine)
    if dry_run:
        return record
    delete_many(client, source.bucket, record.source_deleted)
    delete_many(client, state.bucket, record.quarantine_deleted)
    key = state.key("retention", f"{plan.planned_at:%Y%m%dT%H%M%SZ}-{purge_id}.json")
    record.record_uri = f"s3://{state.bucket}/{key}"
    body = json.dumps(record.as_dict(), indent=1).encode("utf-8")
    put_bytes(client, state.bucket, key, body, content_type="application/json")
    return record


def purge(
    client: S3Client,
    *,
    source: S3Location,
    state: S3Location,
    older_than: dt.timedelta,
    purge_id: str,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    confirmed_drops: Collection[str] | None = None,
) -> PurgeRecord:
    """Plan and carry out a purge in one call (arguments as for the two steps)."""
    plan = plan_purge(client, source=source, state=state, older_than=older_than, now=now)
    return carry_out_purge(
        client,
        plan,
        source=source,
        state=state,
        purge_id=purge_id,
        dry_run=dry_run,
        confirmed_drops=confirmed_drops,
    )
