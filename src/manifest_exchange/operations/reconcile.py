"""Daily reconciliation: the ledger checked against the source and the partner's drops.

Finds what the every-minute runs could have missed or left half done:

- **unprocessed**: a source object that landed more than ``grace`` ago and was never claimed
  (the schedule stopped, or a run cannot read that prefix);
- **stuck**: a claim older than the claim timeout with no outcome (its run crashed and no run
  has taken the object over since);
- **drop problems**: a complete drop whose files do not match its manifest;
- **orphans**: a partner folder without ``_SUCCESS`` older than ``grace`` (a publish that never
  finished and was not recovered), and drops staged in the state bucket awaiting recovery;
- **ledger/drop mismatches**: the ledger says an object went into a drop the partner does not
  have, or a drop's row count differs from the travellers the ledger says were published in it;
- **receipts** (when the agreement's receipts location is given): a drop of the window still
  unacknowledged once its receipt is due, a receipt naming other manifest bytes than were
  published, a receipt written over, one that is not a receipt, or one naming no drop.

The report names object keys, drop ids, hashes and counts only.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from manifest_exchange.agreements.terms import DEFAULT_RECEIPT_DUE_MINUTES
from manifest_exchange.publish.drops import SUCCESS_MARKER
from manifest_exchange.publish.partner import DropCheck, list_drops, verify_drops
from manifest_exchange.publish.receipts import (
    PublishedDrop,
    ReceiptCheck,
    match_receipts,
    read_receipts,
)
from manifest_exchange.storage.ledger import Ledger
from manifest_exchange.storage.s3 import ObjectInfo, S3Client, S3Location, iter_objects


@dataclass
class Reconciliation:
    """What a reconciliation found; :attr:`is_consistent` is False if anything needs action."""

    checked_at: str
    window_start: str
    source_objects: int = 0
    processed: int = 0
    in_progress: int = 0
    processed_and_purged: int = 0
    drops_verified: int = 0
    unprocessed: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    drop_problems: dict[str, list[str]] = field(default_factory=dict)
    orphan_drops: list[str] = field(default_factory=list)
    pending_drops: list[str] = field(default_factory=list)
    staged_drops: list[str] = field(default_factory=list)
    ledger_drop_missing: dict[str, list[str]] = field(default_factory=dict)
    row_mismatches: dict[str, dict[str, int]] = field(default_factory=dict)
    receipts: ReceiptCheck | None = None

    @property
    def problem_count(self) -> int:
        return (
            len(self.unprocessed)
            + len(self.stuck)
            + len(self.drop_problems)
            + len(self.orphan_drops)
            + len(self.staged_drops)
            + len(self.ledger_drop_missing)
            + len(self.row_mismatches)
            + (self.receipts.problem_count if self.receipts is not None else 0)
        )

    @property
    def is_consistent(self) -> bool:
        return self.problem_count == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "receipts": self.receipts.as_dict() if self.receipts is not None else None,
            "consistent": self.is_consistent,
            "problems": self.problem_count,
        }


def _drop_id_floor(moment: dt.datetime) -> str:
    return f"{moment.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}"


def reconcile(
    client: S3Client,
    *,
    source: S3Location,
    state: S3Location,
    partner: S3Location,
    claim_timeout_s: float,
    grace: dt.timedelta = dt.timedelta(minutes=10),
    lookback: dt.timedelta = dt.timedelta(days=2),
    now: dt.datetime | None = None,
    schema_version: str = "1",
    receipts: S3Location | None = None,
    receipt_due: dt.timedelta = dt.timedelta(minutes=DEFAULT_RECEIPT_DUE_MINUTES),
) -> Reconciliation:
    """Check the ledger against ``source`` and ``partner``.

    Args:
        client: read and list on the source, state and partner buckets.
        claim_timeout_s: the exchange's claim timeout; older unfinished claims are stuck.
        grace: how long a landed object or a partial drop may legitimately wait.
        lookback: drops published within this window are re-verified file by file and
            matched against the ledger; older ones were checked by earlier reconciliations.
        now: the reference time (tests pin it).
        schema_version: the agreement's version, whose drops (``v<version>/drops/``) are checked.
        receipts: the agreement's receipts location (read and list); None checks no receipts.
        receipt_due: how long after its ``_SUCCESS`` a drop of the window may go without one.
    """
    now = now or dt.datetime.now(dt.UTC)
    window_start = now - lookback
    result = Reconciliation(checked_at=now.isoformat(), window_start=window_start.isoformat())
    ledger = Ledger(client, state, claim_timeout_s)
    outcomes = ledger.outcomes(source)
    listed = {(info.key, info.etag): info for info in iter_objects(client, source)}
    result.source_objects = len(listed)
    claim_horizon = window_start - dt.timedelta(seconds=claim_timeout_s)
    claims = ledger.claims_by_object(source.bucket, since=claim_horizon)

    for (key, etag), info in sorted(listed.items()):
        records = claims.get((key, etag), [])
        if (key, etag) in outcomes:
            result.processed += 1
        elif records:
            age = now - records[-1].written_at
            if age.total_seconds() >= claim_timeout_s:
                result.stuck.append(key)
            else:
                result.in_progress += 1
        elif now - info.last_modified > grace:
            result.unprocessed.append(key)
    result.processed_and_purged = sum(ref not in listed for ref in outcomes)

    # Drops: every complete drop in the window re-verified; partial folders older than grace.
    drops = list_drops(client, partner, schema_version)
    verified = verify_drops(
        client, partner, since=_drop_id_floor(window_start), schema_version=schema_version
    )
    result.drops_verified = len(verified.drops)
    result.drop_problems = {d.drop_id: d.problems for d in verified.drops if d.problems}
    drop_rows = {d.drop_id: d.rows for d in verified.drops}
    for drop_id, objects in sorted(drops.items()):
        if SUCCESS_MARKER in objects:
            continue
        newest = max(info.last_modified for info in objects.values())
        bucket = result.orphan_drops if now - newest > grace else result.pending_drops
        bucket.append(drop_id)
    result.staged_drops = _stale_staged_drops(client, state, now - grace)
    if receipts is not None:
        result.receipts = _check_receipts(
            client,
            receipts,
            schema_version,
            verified.drops,
            drops,
            since=_drop_id_floor(window_start),
            now=now,
            due=receipt_due,
        )

    # The ledger's view of each recent drop against the drop itself.
    recent = [o.body for o in outcomes.values() if o.recorded_at >= window_start]
    published: dict[str, int] = defaultdict(int)
    for done in recent:
        named_drop = done.get("drop_id")
        if not isinstance(named_drop, str):
            continue  # nothing of this object was published
        travellers = done.get("travellers")
        count = travellers.get("published", 0) if isinstance(travellers, dict) else 0
        published[named_drop] += int(count)
        if SUCCESS_MARKER not in drops.get(named_drop, {}):
            result.ledger_drop_missing.setdefault(named_drop, []).append(str(done["key"]))
    for drop_id, rows in sorted(drop_rows.items()):
        if drop_id in published and published[drop_id] != rows:
            result.row_mismatches[drop_id] = {
                "ledger_published": published[drop_id],
                "drop_rows": rows,
            }
    return result


def _check_receipts(
    client: S3Client,
    receipts: S3Location,
    schema_version: str,
    verified: list[DropCheck],
    drops: dict[str, dict[str, ObjectInfo]],
    *,
    since: str,
    now: dt.datetime,
    due: dt.timedelta,
) -> ReceiptCheck:
    """The window's complete drops against their receipts."""
    # Verification has read each manifest's sha256; a drop is due from its _SUCCESS (one
    # completed after the listing is too new to be due).
    window_drops = [
        PublishedDrop(check.drop_id, check.manifest_sha256, success.last_modified)
        for check in verified
        if check.manifest_sha256 is not None
        and (success := drops.get(check.drop_id, {}).get(SUCCESS_MARKER)) is not None
    ]
    return match_receipts(
        window_drops,
        read_receipts(client, receipts, schema_version, since=since),
        now=now,
        due=due,
        complete_drop_ids=[d for d, objects in drops.items() if SUCCESS_MARKER in objects],
    )


def _stale_staged_drops(client: S3Client, state: S3Location, before: dt.datetime) -> list[str]:
    staging = S3Location(state.bucket, state.key("staging"))
    newest: dict[str, dt.datetime] = {}
    for info in iter_objects(client, staging):
        drop_id = info.key[len(staging.prefix) + 1 :].split("/", 1)[0]
        newest[drop_id] = max(newest.get(drop_id, info.last_modified), info.last_modified)
    return sorted(drop_id for drop_id, moment in newest.items() if moment < before)
