"""Prefect flows for housekeeping: the daily reconciliation and the retention purge.

Each is one task over one package function, plus the artifacts an operator reads in the UI.
A reconciliation that finds problems fails its run, so the failure automation alerts someone.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from manifest_exchange.agreements.terms import DEFAULT_AGREEMENT, load_agreement
from manifest_exchange.operations.reconcile import Reconciliation, reconcile
from manifest_exchange.operations.retention import PurgeRecord, purge
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.storage.s3 import S3Location, make_client, put_bytes

STORE_TASK: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, **STORE_RETRIES}


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
) -> dict[str, Any]:
    """Re-check the ledger against the source and partner buckets; fail if anything is off.

    Args:
        grace_minutes: how long a landed manifest or a partial drop may wait before it counts
            as unprocessed or orphaned.
        lookback_days: drops published within this window are re-verified file by file.
        (other arguments as for ``exchange_manifests``)
    """
    terms = load_agreement(agreement)
    result = reconcile_ledger(
        source,
        state,
        partner or terms.partner_location,
        s3_credentials_block,
        dt.timedelta(minutes=grace_minutes),
        dt.timedelta(days=lookback_days),
        terms.schema_version,
    )
    summary = result.as_dict()
    create_markdown_artifact(
        key="reconciliation",
        markdown=_reconciliation_markdown(result),
        description="Ledger against source and partner",
    )
    rows = _problem_rows(result)
    if rows:
        create_table_artifact(key="reconciliation-problems", table=rows[:1000])
        raise ReconciliationProblemsError(
            f"{result.problem_count} problems: {len(result.unprocessed)} unprocessed, "
            f"{len(result.stuck)} stuck, {len(result.orphan_drops)} orphan drops, "
            f"{len(result.staged_drops)} staged drops, {len(result.drop_problems)} drops that "
            f"do not verify, {len(result.ledger_drop_missing) + len(result.row_mismatches)} "
            "ledger/drop mismatches (see the run's artifacts)"
        )
    get_run_logger().info(
        "consistent: %d objects, %d processed, %d drops verified",
        result.source_objects,
        result.processed,
        result.drops_verified,
    )
    return summary


def _reconciliation_markdown(result: Reconciliation) -> str:
    verdict = "consistent" if result.is_consistent else f"**{result.problem_count} problems**"
    return "\n".join(
        [
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
    )


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
    return rows


@task(name="purge-expired-data", timeout_seconds=30 * 60, **STORE_TASK)
def purge_expired_data(
    source: str,
    state: str,
    retain: dt.timedelta,
    dry_run: bool,
    s3_credentials_block: str | None,
) -> PurgeRecord:
    settings = run_settings(s3_credentials_block, None)
    return purge(
        make_client(settings.s3),
        source=S3Location.parse(source),
        state=S3Location.parse(state),
        older_than=retain,
        purge_id=flow_run.get_id() or "manual",
        dry_run=dry_run,
    )


@flow(name="purge_retention")
def purge_retention(
    source: str,
    state: str,
    retain_days: float = 30,
    dry_run: bool = False,
    s3_credentials_block: str | None = None,
) -> dict[str, Any]:
    """Delete processed manifests and quarantine older than ``retain_days``; record the purge.

    Args:
        source: ``s3://bucket/prefix`` where manifests land.
        state: the pipeline's state location (quarantine, ledger, purge records).
        retain_days: retention period in days (fractions allowed: 0.5 is twelve hours).
        dry_run: report what would be deleted, delete nothing.
        s3_credentials_block: an ``AwsCredentials`` block for an identity allowed to delete
            (the embedded stack's ``retention``; the exchange's own identity cannot).
    """
    if retain_days < 0:
        raise ValueError("retain_days must not be negative")
    record = purge_expired_data(
        source, state, dt.timedelta(days=retain_days), dry_run, s3_credentials_block
    )
    verb = "would delete" if dry_run else "deleted"
    create_markdown_artifact(
        key="retention-purge",
        markdown=(
            f"### Retention purge ({verb})\n\n"
            f"Cutoff: `{record.cutoff}`\n\n"
            f"| what | objects |\n|---|---|\n"
            f"| processed manifests | {len(record.source_deleted)} |\n"
            f"| quarantine files | {len(record.quarantine_deleted)} |\n"
            f"| unprocessed manifests kept | {record.kept_unprocessed} |\n\n"
            f"{record.bytes_deleted} bytes. Record: `{record.record_uri}`"
        ),
        description="What the retention purge removed",
    )
    get_run_logger().info(
        "%s %d manifests and %d quarantine files older than %s",
        verb,
        len(record.source_deleted),
        len(record.quarantine_deleted),
        record.cutoff,
    )
    return record.as_dict()
