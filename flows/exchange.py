"""Prefect flows that move manifests to the partner: ``exchange_manifests`` and its backfill.

recover -> discover -> parse -> validate -> decide outcomes -> publish -> report. Each task is
a thin wrapper over one package function; the package holds the logic (of it, only
``manifest_exchange.orchestration`` knows Prefect). Big tables pass between tasks in memory,
so tasks neither cache nor persist results. Tasks that talk to the store retry with backoff on
transient errors only; every task has a timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from manifest_exchange import ingest, quality, runs, transform
from manifest_exchange.agreements import DEFAULT_AGREEMENT, load_agreement
from manifest_exchange.ingest import ParsedManifests
from manifest_exchange.orchestration.artifacts import StageProgress, publish_run_artifacts
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.publish import build_drop, new_drop_id
from manifest_exchange.runs import QualitySummary, RunContext
from manifest_exchange.storage.ledger import Claim, Discovery

# PREFECT_LOGGING_EXTRA_LOGGERS sends the package's records to the UI, but the logger would
# inherit the root's WARNING level and drop its INFO lines (claims, recoveries) on the way.
logging.getLogger("manifest_exchange").setLevel(logging.INFO)

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
STORE_TASK: dict[str, Any] = {**TASK_OPTIONS, **STORE_RETRIES}
STAGES = ["recover", "discover", "parse", "transform", "validate", "decide", "publish", "report"]
MINUTE = 60


@task(name="recover-interrupted-drops", timeout_seconds=10 * MINUTE, **STORE_TASK)
def recover_interrupted_drops(context: RunContext) -> list[str]:
    with context.publish_lock.hold(context.run_id):
        return context.publisher.recover_staged_drops(
            lambda outcomes, drop_id: runs.finish_ledger(context.ledger, outcomes, drop_id)
        )


@task(name="discover-and-claim", timeout_seconds=5 * MINUTE, **STORE_TASK)
def discover_and_claim(
    context: RunContext,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
) -> tuple[Discovery, list[Claim]]:
    discovery = context.ledger.discover(
        context.source,
        run_id=context.run_id,
        landed_from=landed_from,
        landed_until=landed_until,
    )
    # A retried attempt keeps the claims its earlier attempt made.
    claims = discovery.own_claims + context.ledger.claim(discovery, context.run_id)
    get_run_logger().info(
        "listed %d objects: %d already processed, %d claimed by other runs, "
        "%d outside the window, %d claimed now",
        discovery.listed,
        discovery.done,
        discovery.claimed_by_others,
        discovery.outside_window,
        len(claims),
    )
    return discovery, claims


@task(name="parse-manifests", timeout_seconds=30 * MINUTE, **STORE_TASK)
def parse_manifests(context: RunContext, claims: list[Claim]) -> ParsedManifests:
    parsed = ingest.read_manifests(context.client, runs.objects_to_read(claims), context.agreement)
    get_run_logger().info(
        "parsed %d objects: %d messages, %d travellers",
        parsed.objects.num_rows,
        parsed.messages.num_rows,
        parsed.traveller_count,
    )
    return parsed


@task(name="transform-messages", timeout_seconds=15 * MINUTE, **TASK_OPTIONS)
def transform_messages(context: RunContext, parsed: ParsedManifests) -> pa.Table:
    return transform.exchange_messages(parsed.messages, parsed.objects, context.agreement)


@task(name="validate-messages", timeout_seconds=30 * MINUTE, **TASK_OPTIONS)
def validate_messages(messages: pa.Table, validator: quality.Validator) -> quality.SuiteResult:
    readable = messages.filter(pc.is_null(messages["parse_error"]))
    return validator.validate(quality.load_suite("paxlst_messages"), readable)


@task(name="transform-travellers", timeout_seconds=15 * MINUTE, **TASK_OPTIONS)
def transform_travellers(
    context: RunContext, parsed: ParsedManifests, messages: pa.Table, message_issues: pa.Table
) -> tuple[pa.Table, pa.Table]:
    """Travellers in the exchange shape, and one row per passenger list (for its suite)."""
    travellers = transform.exchange_travellers(
        parsed.persons, messages, message_issues, context.agreement
    )
    return travellers, transform.exchange_lists(messages, travellers)


@task(name="validate-travellers", timeout_seconds=30 * MINUTE, **TASK_OPTIONS)
def validate_travellers(
    travellers: pa.Table, lists: pa.Table, validator: quality.Validator
) -> tuple[quality.SuiteResult, quality.SuiteResult]:
    # Travellers already settled (out of scope, in a quarantined message) are not validated.
    candidates = travellers.filter(pc.is_null(travellers["stage_outcome"]))
    return (
        validator.validate(quality.load_suite("paxlst_travellers"), candidates),
        validator.validate(quality.load_suite("paxlst_lists"), lists),
    )


@task(name="decide-outcomes", timeout_seconds=15 * MINUTE, **STORE_TASK)
def decide_outcomes(
    context: RunContext, travellers: pa.Table, issues: dict[str, pa.Table]
) -> pa.Table:
    # Reads the record index, so it runs under the publish lock.
    return transform.exchange_outcomes(travellers, issues, context.publisher.published_records())


@task(name="publish-drop", timeout_seconds=30 * MINUTE, **STORE_TASK)
def publish_drop(
    context: RunContext,
    outcomes: pa.Table,
    ledger_outcomes: list[dict[str, Any]],
    validation: dict[str, Any],
    lock_generation: int,
    published_at: dt.datetime,
) -> tuple[str | None, int]:
    # ``published_at`` is fixed by the flow, so a retried attempt rebuilds the very same drop
    # under the same id and the publisher carries on where the failed attempt stopped.
    records, index = transform.exchange_records(
        outcomes, context.agreement, context.hmac_key, published_at
    )
    if records.num_rows == 0:
        runs.finish_ledger(context.ledger, ledger_outcomes, None)
        get_run_logger().info("nothing new to publish")
        return None, 0
    drop = build_drop(
        records,
        index,
        drop_id=new_drop_id(published_at, context.run_id),
        agreement=context.agreement.name,
        schema_version=context.agreement.schema_version,
        validation=validation,
        published_at=published_at,
    )
    drop.ledger_outcomes = ledger_outcomes

    def still_holding_lock() -> None:
        if not context.publish_lock.is_held_by(lock_generation):
            raise RuntimeError("the publish lock was taken over; not completing the drop")

    context.publisher.publish(
        drop,
        lambda outcomes, drop_id: runs.finish_ledger(context.ledger, outcomes, drop_id),
        before_success=still_holding_lock,
    )
    get_run_logger().info(
        "published drop %s: %d records in %d files", drop.drop_id, drop.rows, len(drop.files)
    )
    return drop.drop_id, drop.rows


@task(name="write-report", timeout_seconds=10 * MINUTE, **STORE_TASK)
def write_report(
    context: RunContext,
    validator: quality.Validator,
    parsed: ParsedManifests,
    outcomes: pa.Table,
    messages: pa.Table,
    message_issues: pa.Table,
    **fields: Any,
) -> dict[str, Any]:
    quarantine = runs.write_quarantine(context, parsed, outcomes, messages, message_issues)
    accounting = transform.exchange_accounting(outcomes, messages)
    result = runs.build_report(
        context,
        parsed=parsed,
        messages=messages,
        accounting=accounting,
        quarantine=quarantine,
        **fields,
    )
    result["data_docs_files"] = runs.upload_folder(context, validator.data_docs_dir, "data-docs")
    result["report_uri"] = runs.write_report(context, result)
    listing, total = runs.quarantine_listing(outcomes, messages, message_issues)
    docs_url = runs.data_docs_url(context) if result["data_docs_files"] else None
    publish_run_artifacts(result, listing, total, docs_url)
    return result


def _run_exchange(
    context: RunContext,
    *,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The stages of one exchange run, shared by the regular flow and the backfill."""
    timings: dict[str, float] = {}
    progress = StageProgress(STAGES)

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        progress.finished(name)

    with stage("recover"):
        recovered = recover_interrupted_drops(context)
    with stage("discover"):
        discovery, claims = discover_and_claim(context, landed_from, landed_until)
    with stage("parse"):
        parsed = parse_manifests(context, claims)
    validator = quality.Validator()
    summary = QualitySummary()
    # Transform and validate alternate: traveller rows need the messages' verdicts.
    with stage("transform"):
        messages = transform_messages(context, parsed)
    with stage("validate"):
        message_result = validate_messages(messages, validator)
    with stage("transform"):
        travellers, lists = transform_travellers(context, parsed, messages, message_result.issues)
    with stage("validate"):
        traveller_result, list_result = validate_travellers(travellers, lists, validator)
    for result in (message_result, traveller_result, list_result):
        summary.add(result)
    issues = {
        "message_issues": message_result.issues,
        "traveller_issues": traveller_result.issues,
        "list_issues": list_result.issues,
    }
    with context.publish_lock.hold(context.run_id) as generation:
        with stage("decide"):
            outcomes = decide_outcomes(context, travellers, issues)
            ledger_outcomes = runs.object_outcomes(claims, parsed, outcomes, messages)
        with stage("publish"):
            drop_id, drop_rows = publish_drop(
                context,
                outcomes,
                ledger_outcomes,
                summary.as_dict(),
                generation,
                dt.datetime.now(dt.UTC),
            )
    with stage("report"):
        return write_report(
            context,
            validator,
            parsed,
            outcomes,
            messages,
            message_result.issues,
            discovery=discovery,
            claims=claims,
            quality=summary,
            drop_id=drop_id,
            drop_rows=drop_rows,
            recovered_drops=recovered,
            timings=timings,
        )


def _context(
    source: str,
    state: str,
    partner: str | None,
    agreement: str,
    s3_credentials_block: str | None,
    hmac_key_block: str | None,
) -> RunContext:
    settings = run_settings(s3_credentials_block, hmac_key_block)
    return RunContext.create(
        settings,
        load_agreement(agreement),
        source=source,
        state=state,
        partner=partner,
        # The Prefect flow run id, so ledger entries, drops and reports lead back to the UI.
        run_id=flow_run.get_id(),
    )


@flow(name="exchange_manifests", log_prints=False)
def exchange_manifests(
    source: str,
    state: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    s3_credentials_block: str | None = None,
    hmac_key_block: str | None = None,
) -> dict[str, Any]:
    """Move new manifests under ``source`` to a verified drop for the agreement's partner.

    Args:
        source: ``s3://bucket/prefix`` of new manifests.
        state: ``s3://bucket/prefix`` of the pipeline's ledger, quarantine and reports.
        partner: ``s3://bucket/prefix`` of the partner's drops (default: the agreement's).
        agreement: agreement name (a file in ``manifest_exchange/agreements``) or path.
        s3_credentials_block: an ``AwsCredentials`` block to reach the store with
            (default: the ``AWS_*`` environment variables).
        hmac_key_block: a ``Secret`` block with the document-matching key
            (default: ``MX_HMAC_KEY_ID``/``MX_HMAC_KEY``).
    """
    context = _context(source, state, partner, agreement, s3_credentials_block, hmac_key_block)
    return _run_exchange(context)


@flow(name="backfill_manifests", log_prints=False)
def backfill_manifests(
    source: str,
    state: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    prefix: str | None = None,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
    s3_credentials_block: str | None = None,
    hmac_key_block: str | None = None,
) -> dict[str, Any]:
    """Process what the ledger has not finished under a prefix and/or a landing window.

    Objects already processed are skipped (the ledger decides, as in every run), so a backfill
    over a range that was already exchanged publishes nothing and can be repeated safely.

    Args:
        prefix: narrows ``source`` to ``<source>/<prefix>`` (e.g. ``2026-11-24/``).
        landed_from: only objects written at or after this time (UTC if no zone).
        landed_until: only objects written before this time.
        (other arguments as for ``exchange_manifests``)
    """
    if prefix:
        source = f"{source.rstrip('/')}/{prefix.strip('/')}"
    context = _context(source, state, partner, agreement, s3_credentials_block, hmac_key_block)
    return _run_exchange(
        context, landed_from=_as_utc(landed_from), landed_until=_as_utc(landed_until)
    )


def _as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)
