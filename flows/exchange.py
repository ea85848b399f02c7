"""Prefect flow ``exchange_manifests``: new manifests in the source bucket -> a partner drop.

recover -> discover -> parse -> validate -> transform -> publish -> report. Each task is a thin
wrapper over one package function; the package holds the logic and never imports Prefect.
Big tables pass between tasks in memory, so tasks neither cache nor persist results.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from manifest_exchange import ingest, quality, runs, transform
from manifest_exchange.agreements import DEFAULT_AGREEMENT, load_agreement
from manifest_exchange.config import Settings
from manifest_exchange.ingest import ParsedManifests
from manifest_exchange.publish import build_drop, new_drop_id
from manifest_exchange.runs import QualitySummary, RunContext
from manifest_exchange.storage.ledger import Claim, Discovery

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="recover-interrupted-drops", **TASK_OPTIONS)
def recover_interrupted_drops(context: RunContext) -> list[str]:
    with context.publish_lock.hold(context.run_id):
        return context.publisher.recover_staged_drops(
            lambda outcomes: runs.finish_ledger(context.ledger, outcomes, None)
        )


@task(name="discover-and-claim", **TASK_OPTIONS)
def discover_and_claim(context: RunContext) -> tuple[Discovery, list[Claim]]:
    discovery = context.ledger.discover(context.source)
    claims = context.ledger.claim(discovery, context.run_id)
    get_run_logger().info(
        "listed %d objects: %d already processed, %d claimed by other runs, %d claimed now",
        discovery.listed,
        discovery.done,
        discovery.claimed_by_others,
        len(claims),
    )
    return discovery, claims


@task(name="parse", retries=2, retry_delay_seconds=5, **TASK_OPTIONS)
def parse(context: RunContext, claims: list[Claim]) -> ParsedManifests:
    parsed = ingest.read_manifests(context.client, runs.objects_to_read(claims), context.agreement)
    get_run_logger().info(
        "parsed %d objects: %d messages, %d travellers",
        parsed.objects.num_rows,
        parsed.messages.num_rows,
        parsed.traveller_count,
    )
    return parsed


@task(name="validate-messages", **TASK_OPTIONS)
def validate_messages(
    context: RunContext, parsed: ParsedManifests, validator: quality.Validator
) -> tuple[pa.Table, quality.SuiteResult]:
    messages = transform.exchange_messages(parsed.messages, parsed.objects, context.agreement)
    readable = messages.filter(pc.is_null(messages["parse_error"]))
    return messages, validator.validate(quality.load_suite("paxlst_messages"), readable)


@task(name="validate-travellers", **TASK_OPTIONS)
def validate_travellers(
    context: RunContext,
    parsed: ParsedManifests,
    messages: pa.Table,
    message_issues: pa.Table,
    validator: quality.Validator,
) -> tuple[pa.Table, quality.SuiteResult, quality.SuiteResult]:
    travellers = transform.exchange_travellers(
        parsed.persons, messages, message_issues, context.agreement
    )
    candidates = travellers.filter(pc.is_null(travellers["stage_outcome"]))
    lists = transform.exchange_lists(messages, travellers)
    return (
        travellers,
        validator.validate(quality.load_suite("paxlst_travellers"), candidates),
        validator.validate(quality.load_suite("paxlst_lists"), lists),
    )


@task(name="transform", **TASK_OPTIONS)
def decide_outcomes(
    context: RunContext, travellers: pa.Table, issues: dict[str, pa.Table]
) -> pa.Table:
    # Reads the record index, so it runs under the publish lock.
    return transform.exchange_outcomes(travellers, issues, context.publisher.published_records())


@task(name="publish", **TASK_OPTIONS)
def publish(
    context: RunContext,
    outcomes: pa.Table,
    ledger_outcomes: list[dict[str, Any]],
    validation: dict[str, Any],
    lock_generation: int,
) -> tuple[str | None, int]:
    published_at = dt.datetime.now(dt.UTC)
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
        lambda outcomes: runs.finish_ledger(context.ledger, outcomes, drop.drop_id),
        before_success=still_holding_lock,
    )
    get_run_logger().info(
        "published drop %s: %d records in %d files", drop.drop_id, drop.rows, len(drop.files)
    )
    return drop.drop_id, drop.rows


@task(name="report", **TASK_OPTIONS)
def report(
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
    _publish_artifacts(result)
    return result


def _publish_artifacts(result: dict[str, Any]) -> None:
    """A summary and a per-flight table in the Prefect UI (counts only, no personal data)."""
    create_markdown_artifact(
        key="exchange-run-report",
        markdown=(
            f"### Exchange run `{result['run_id']}`\n\n"
            f"Drop: `{result['drop_id']}` ({result['drop_rows']} records)\n\n"
            f"| travellers | published | out of scope | duplicates | quarantined |\n"
            f"|---|---|---|---|---|\n"
            f"| {result['travellers']} | {result['published']} | {result['out_of_scope']} "
            f"| {result['duplicates']} | {result['quarantined_rows']} |\n\n"
            f"Report: `{result['report_uri']}`"
        ),
        description="Accounting of this exchange run",
    )
    rows = [{"flight_key": key, **counts} for key, counts in result["per_flight"].items()]
    if rows:
        create_table_artifact(
            key="exchange-run-flights", table=rows, description="Travellers per flight"
        )


@flow(name="exchange_manifests", log_prints=False)
def exchange_manifests(
    source: str,
    state: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
) -> dict[str, Any]:
    """Move new manifests under ``source`` to a verified drop for the agreement's partner.

    Args:
        source: ``s3://bucket/prefix`` of new manifests.
        state: ``s3://bucket/prefix`` of the pipeline's ledger, quarantine and reports.
        partner: ``s3://bucket/prefix`` of the partner's drops (default: the agreement's).
        agreement: agreement name (a file in ``manifest_exchange/agreements``) or path.
    """
    context = RunContext.create(
        Settings.from_env(), load_agreement(agreement), source=source, state=state, partner=partner
    )
    timings: dict[str, float] = {}

    @contextmanager
    def timed(stage: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started

    with timed("recover"):
        recovered = recover_interrupted_drops(context)
    with timed("discover"):
        discovery, claims = discover_and_claim(context)
    with timed("parse"):
        parsed = parse(context, claims)
    validator = quality.Validator()
    summary = QualitySummary()
    with timed("validate"):
        messages, message_result = validate_messages(context, parsed, validator)
        travellers, traveller_result, list_result = validate_travellers(
            context, parsed, messages, message_result.issues, validator
        )
    for result in (message_result, traveller_result, list_result):
        summary.add(result)
    issues = {
        "message_issues": message_result.issues,
        "traveller_issues": traveller_result.issues,
        "list_issues": list_result.issues,
    }
    with context.publish_lock.hold(context.run_id) as generation:
        with timed("transform"):
            outcomes = decide_outcomes(context, travellers, issues)
            ledger_outcomes = runs.object_outcomes(claims, parsed, outcomes, messages)
        with timed("publish"):
            drop_id, drop_rows = publish(
                context, outcomes, ledger_outcomes, summary.as_dict(), generation
            )
    with timed("report"):
        return report(
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
