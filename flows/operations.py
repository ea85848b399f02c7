"""Prefect flows for housekeeping: the daily reconciliation and the retention purge.

Each task is one package function, plus the artifacts an operator reads in the UI. A
reconciliation that finds problems (a drop the partner has not acknowledged in time among
them) fails its run, so the failure automation alerts someone. Where receipts are required,
the purge plans as the retention identity, has the drops it needs confirmed by an identity
that may read receipts, then deletes: no identity gains a grant for it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from manifest_exchange.agreements.terms import (
    DEFAULT_AGREEMENT,
    DEFAULT_RECEIPT_DUE_MINUTES,
    load_agreement,
)
from manifest_exchange.operations.reconcile import Reconciliation, reconcile
from manifest_exchange.operations.retention import (
    PurgePlan,
    PurgeRecord,
    carry_out_purge,
    plan_purge,
)
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.publish.receipts import confirmed_drops
from manifest_exchange.storage.s3 import S3Location, make_client, put_bytes

STORE_TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, **STORE_RETRIES}
_Value = TypeVar("_Value")


def _quoted(value: _Value) -> _Value:
    """``value`` in Prefect's ``quote``, typed as itself: Prefect does not walk a purge plan's
    thousands of objects looking for futures (decision 0019)."""
    return cast(_Value, quote(value))


# PREFECT_LOGGING_EXTRA_LOGGERS sends the package's records to the UI, but the logger would
# inherit the root's WARNING level and drop its INFO lines (claims, recoveries) on the way.
logging.getLogger("manifest_exchange").setLevel(logging.INFO)


class ReconciliationProblemsError(RuntimeError):
    """The reconciliation found objects or drops that need an operator."""


@task(name="reconcile-ledger", timeout_seconds=30 * 60, **STORE_TASK)
def reconcile_ledger(
    source: str,
    state: str,
    partner: str,
    s3_credentials_block: str | None,
    grace: dt.timedelta,
    lookback: dt.timedelta,
    schema_version: str = "1",
    receipts: str | None = None,
    receipt_due: dt.timedelta = dt.timedelta(minutes=DEFAULT_RECEIPT_DUE_MINUTES),
) -> Reconciliation:
    settings = run_settings(s3_credentials_block, None)
    client = make_client(settings.s3)
    result = reconcile(
        client,
        source=S3Location.parse(source),
        state=S3Location.parse(state),
        partner=S3Location.parse(partner),
        claim_timeout_s=settings.claim_timeout_s,
        grace=grace,
        lookback=lookback,
        schema_version=schema_version,
        receipts=S3Location.parse(receipts) if receipts else None,
        receipt_due=receipt_due,
    )
    location = S3Location.parse(state)
    key = location.key("reconciliation", f"{result.checked_at[:19]}-{flow_run.get_id()}.json")
    put_bytes(client, location.bucket, key, json.dumps(result.as_dict(), indent=1).encode())
    return result


@flow(name="reconcile_exchange")
def reconcile_exchange(
    source: str,
    state: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    grace_minutes: float = 10,
    lookback_days: float = 2,
    s3_credentials_block: str | None = None,
    receipts: str | None = None,
    receipt_due_minutes: float | None = None,
) -> dict[str, Any]:
    """Re-check the ledger against the source and partner buckets, and the window's drops
    against the partner's receipts; fail if anything is off.

    Args:
        grace_minutes: how long a landed manifest or a partial drop may wait before it counts
            as unprocessed or orphaned.
        lookback_days: drops published within this window are re-verified file by file.
        receipts: ``s3://`` location of the partner's receipts (default: the agreement's).
        receipt_due_minutes: how long after it is complete a drop may go unacknowledged
            (default: the agreement's ``receipt_due_minutes``).
        (other arguments as for ``exchange_manifests``)
    """
    terms = load_agreement(agreement)
    due_minutes = terms.receipt_due_minutes if receipt_due_minutes is None else receipt_due_minutes
    result = reconcile_ledger(
        source,
        state,
        partner or terms.partner_location,
        s3_credentials_block,
        dt.timedelta(minutes=grace_minutes),
        dt.timedelta(days=lookback_days),
        terms.schema_version,
        receipts or terms.receipts_location,
        dt.timedelta(minutes=due_minutes),
    )
    summary = result.as_dict()
    create_markdown_artifact(
        key="reconciliation",
        markdown=_reconciliation_markdown(result),
        description="Ledger against source and partner, drops against receipts",
    )
    rows = _problem_rows(result)
    if rows:
        create_table_artifact(key="reconciliation-problems", table=rows[:1000])
        raise ReconciliationProblemsError(_problem_summary(result))
    get_run_logger().info(
        "consistent: %d objects, %d processed, %d drops verified, %d acknowledged",
        result.source_objects,
        result.processed,
        result.drops_verified,
        len(result.receipts.acknowledged) if result.receipts else 0,
    )
    return summary


def _problem_summary(result: Reconciliation) -> str:
    receipts = result.receipts
    unacknowledged = len(receipts.unacknowledged) if receipts else 0
    other_receipt_problems = receipts.problem_count - unacknowledged if receipts else 0
    return (
        f"{result.problem_count} problems: {len(result.unprocessed)} unprocessed, "
        f"{len(result.stuck)} stuck, {len(result.orphan_drops)} orphan drops, "
        f"{len(result.staged_drops)} staged drops, {len(result.drop_problems)} drops that "
        f"do not verify, {len(result.ledger_drop_missing) + len(result.row_mismatches)} "
        f"ledger/drop mismatches, {unacknowledged} drops not acknowledged in time, "
        f"{other_receipt_problems} receipt problems (see the run's artifacts)"
    )


def _reconciliation_markdown(result: Reconciliation) -> str:
    verdict = "consistent" if result.is_consistent else f"**{result.problem_count} problems**"
    lines = [
        f"### Reconciliation: {verdict}",
        "",
        "| check | count |",
        "|---|---|",
        f"| source objects | {result.source_objects} |",
        f"| processed | {result.processed} |",
        f"| in progress | {result.in_progress} |",
        f"| processed, then purged from the source | {result.processed_and_purged} |",
        f"| unprocessed after the grace period | {len(result.unprocessed)} |",
        f"| stuck claims | {len(result.stuck)} |",
        f"| drops verified since {result.window_start[:16]} | {result.drops_verified} |",
        f"| drops that do not verify | {len(result.drop_problems)} |",
        f"| partial drops (orphans) | {len(result.orphan_drops)} |",
        f"| partial drops still within grace | {len(result.pending_drops)} |",
        f"| staged drops awaiting recovery | {len(result.staged_drops)} |",
        f"| ledger names a missing drop | {len(result.ledger_drop_missing)} |",
        f"| drop rows differ from the ledger | {len(result.row_mismatches)} |",
    ]
    receipts = result.receipts
    if receipts is not None:
        due = f"{receipts.due_minutes:g} min"
        lines += [
            f"| drops acknowledged by the partner | {len(receipts.acknowledged)} |",
            f"| drops awaiting a receipt (within {due}) | {len(receipts.awaiting)} |",
            f"| drops not acknowledged within {due} | {len(receipts.unacknowledged)} |",
            f"| receipts naming other manifest bytes | {len(receipts.mismatched)} |",
            f"| receipts written over | {len(receipts.rewritten)} |",
            f"| receipts that are not receipts | {len(receipts.unreadable)} |",
            f"| receipts naming no complete drop | {len(receipts.without_drop)} |",
        ]
    return "\n".join(lines)


def _problem_rows(result: Reconciliation) -> list[dict[str, str]]:
    rows = [{"problem": "unprocessed", "item": key} for key in result.unprocessed]
    rows += [{"problem": "stuck claim", "item": key} for key in result.stuck]
    rows += [{"problem": "orphan partial drop", "item": d} for d in result.orphan_drops]
    rows += [{"problem": "staged drop awaiting recovery", "item": d} for d in result.staged_drops]
    rows += [
        {"problem": f"drop does not verify: {'; '.join(problems)}", "item": drop_id}
        for drop_id, problems in result.drop_problems.items()
    ]
    rows += [
        {"problem": f"ledger names missing drop {drop_id}", "item": key}
        for drop_id, keys in result.ledger_drop_missing.items()
        for key in keys
    ]
    rows += [
        {"problem": f"rows {c['drop_rows']} but ledger says {c['ledger_published']}", "item": d}
        for d, c in result.row_mismatches.items()
    ]
    receipts = result.receipts
    if receipts is not None:
        rows += [
            {"problem": f"not acknowledged; complete since {completed_at}", "item": drop_id}
            for drop_id, completed_at in receipts.unacknowledged.items()
        ]
        rows += [
            {
                "problem": f"receipt names manifest sha256 {c['receipt_sha256']}, published "
                f"{c['manifest_sha256']}",
                "item": drop_id,
            }
            for drop_id, c in receipts.mismatched.items()
        ]
        rows += [
            {"problem": "receipt written over (its first version counts)", "item": drop_id}
            for drop_id in receipts.rewritten
        ]
        rows += [
            {"problem": f"receipt unreadable: {reason}", "item": drop_id}
            for drop_id, reason in receipts.unreadable.items()
        ]
        rows += [
            {"problem": "receipt for a drop that is not complete", "item": drop_id}
            for drop_id in receipts.without_drop
        ]
    return rows


@task(name="plan-purge", timeout_seconds=30 * 60, **STORE_TASK)
def plan_expired_data(
    source: str, state: str, retain: dt.timedelta, s3_credentials_block: str | None
) -> PurgePlan:
    settings = run_settings(s3_credentials_block, None)
    return plan_purge(
        make_client(settings.s3),
        source=S3Location.parse(source),
        state=S3Location.parse(state),
        older_than=retain,
    )


@task(name="confirm-receipts", timeout_seconds=30 * 60, **STORE_TASK)
def confirm_receipts(
    drop_ids: list[str],
    partner: str,
    receipts: str,
    schema_version: str,
    s3_credentials_block: str | None,
) -> set[str]:
    settings = run_settings(s3_credentials_block, None)
    return confirmed_drops(
        make_client(settings.s3),
        partner=S3Location.parse(partner),
        receipts=S3Location.parse(receipts),
        schema_version=schema_version,
        drop_ids=drop_ids,
    )


@task(name="purge-expired-data", timeout_seconds=30 * 60, **STORE_TASK)
def purge_expired_data(
    plan: PurgePlan,
    source: str,
    state: str,
    dry_run: bool,
    confirmed: set[str] | None,
    s3_credentials_block: str | None,
) -> PurgeRecord:
    settings = run_settings(s3_credentials_block, None)
    return carry_out_purge(
        make_client(settings.s3),
        plan,
        source=S3Location.parse(source),
        state=S3Location.parse(state),
        purge_id=flow_run.get_id() or "manual",
        dry_run=dry_run,
        confirmed_drops=confirmed,
    )


@flow(name="purge_retention")
def purge_retention(
    source: str,
    state: str,
    retain_days: float = 30,
    dry_run: bool = False,
    s3_credentials_block: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    require_receipt: bool | None = None,
    partner: str | None = None,
    receipts: str | None = None,
    receipts_credentials_block: str | None = None,
) -> dict[str, Any]:
    """Delete processed manifests and quarantine older than ``retain_days``; record the purge.

    Args:
        source: ``s3://bucket/prefix`` where manifests land.
        state: the pipeline's state location (quarantine, ledger, purge records).
        retain_days: retention period in days (fractions allowed: 0.5 is twelve hours).
        dry_run: report what would be deleted, delete nothing.
        s3_credentials_block: an ``AwsCredentials`` block for an identity allowed to delete
            (the embedded stack's ``retention``; the exchange's own identity cannot).
        agreement: whose drops and receipts the manifests went to.
        require_receipt: keep a manifest until every drop it went into has a valid receipt
            (default: the agreement's ``require_receipt``).
        partner, receipts: ``s3://`` locations of the drops and the partner's receipts
            (default: the agreement's).
        receipts_credentials_block: an ``AwsCredentials`` block for an identity that reads
            drops and receipts (the pipeline's); the retention identity reads neither.
    """
    if retain_days < 0:
        raise ValueError("retain_days must not be negative")
    terms = load_agreement(agreement)
    plan = plan_expired_data(source, state, dt.timedelta(days=retain_days), s3_credentials_block)
    confirmed: set[str] | None = None
    if terms.require_receipt if require_receipt is None else require_receipt:
        confirmed = confirm_receipts(
            plan.drops_to_confirm,
            partner or terms.partner_location,
            receipts or terms.receipts_location,
            terms.schema_version,
            receipts_credentials_block,
        )
    record = purge_expired_data(
        _quoted(plan), source, state, dry_run, confirmed, s3_credentials_block
    )
    verb = "would delete" if dry_run else "deleted"
    waited = (
        f"| processed manifests kept for a receipt | {record.kept_unacknowledged} "
        f"({len(record.unacknowledged_drops)} drops unacknowledged) |\n"
        if record.require_receipt
        else ""
    )
    create_markdown_artifact(
        key="retention-purge",
        markdown=(
            f"### Retention purge ({verb})\n\n"
            f"Cutoff: `{record.cutoff}`\n\n"
            f"| what | objects |\n|---|---|\n"
            f"| processed manifests | {len(record.source_deleted)} |\n"
            f"| quarantine files | {len(record.quarantine_deleted)} |\n"
            f"| unprocessed manifests kept | {record.kept_unprocessed} |\n"
            f"{waited}\n"
            f"{record.bytes_deleted} bytes. Record: `{record.record_uri}`"
        ),
        description="What the retention purge removed",
    )
    get_run_logger().info(
        "%s %d manifests and %d quarantine files older than %s; %d kept for a receipt",
        verb,
        len(record.source_deleted),
        len(record.quarantine_deleted),
        record.cutoff,
        record.kept_unacknowledged,
    )
    return record.as_dict()
