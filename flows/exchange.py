"""Prefect flows that move manifests to partners: ``exchange_manifests`` (one agreement), its
backfill, and ``exchange_partners`` (every agreement of an origin country, one after another).

recover -> discover and claim -> per batch: check (on the task runner) -> decide outcomes ->
settle (drop, quarantine, ledger) -> report. Each task wraps one package function. Big tables
pass between tasks in memory, so tasks neither cache nor persist results, and the flow hands
the big ones over in ``quote``, so Prefect does not walk them looking for futures (decision 0019).
Tasks that talk to the store retry with backoff on transient errors only; every task has a
timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from manifest_exchange.agreements.terms import DEFAULT_AGREEMENT, list_agreements, load_agreement
from manifest_exchange.orchestration.artifacts import (
    publish_partner_summary,
    publish_run_artifacts,
)
from manifest_exchange.orchestration.parameters import RunOptions
from manifest_exchange.orchestration.pipeline import check_ahead_and_publish
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.orchestration.runners import batch_task_runner
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.orchestration.stages import RunRecorder
from manifest_exchange.publish.record_index import RecordIndex
from manifest_exchange.runs import batches
from manifest_exchange.runs.batches import CheckedBatch
from manifest_exchange.runs.context import RunContext, objects_to_read
from manifest_exchange.runs.report import RunTotals, complete_report
from manifest_exchange.runs.settle import (
    BatchDecision,
    decide_batch,
    recover_staged_batches,
    settle_batch,
)
from manifest_exchange.storage.ledger import Claim, Discovery

# PREFECT_LOGGING_EXTRA_LOGGERS sends the package's records to the UI, but the logger would
# inherit the root's WARNING level and drop its INFO lines (claims, recoveries) on the way.
logging.getLogger("manifest_exchange").setLevel(logging.INFO)

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
STORE_TASK: dict[str, Any] = {**TASK_OPTIONS, **STORE_RETRIES}
MINUTE = 60
_Value = TypeVar("_Value")


def _quoted(value: _Value) -> _Value:
    """``value`` in Prefect's ``quote``, typed as itself: the task gets it unwrapped, and
    Prefect does not walk it looking for futures."""
    return cast(_Value, quote(value))


@task(name="recover-interrupted-drops", timeout_seconds=10 * MINUTE, **STORE_TASK)
def recover_interrupted_drops(context: RunContext) -> list[str]:
    with context.publish_lock.hold(context.run_id):
        return recover_staged_batches(context)


@task(name="discover-and-claim", timeout_seconds=5 * MINUTE, **STORE_TASK)
def discover_and_claim(
    context: RunContext,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
    runner: str | None = None,
) -> tuple[Discovery, list[Claim]]:
    # One ledger for both steps: claiming re-reads the claim records discovery read, and the
    # ledger keeps their bodies.
    ledger = context.ledger
    discovery = ledger.discover(
        context.source,
        run_id=context.run_id,
        landed_from=landed_from,
        landed_until=landed_until,
    )
    # Something to check in this process: GX is imported while claiming waits on the store. A
    # run that finds nothing (most scheduled runs), or checks on Dask, never imports it here.
    if runner == "threads" and (discovery.candidates or discovery.own_claims):
        batches.warm_up(context.s3, context.agreement)
    # A retried attempt keeps the claims its earlier attempt made.
    claims = discovery.own_claims + ledger.claim(discovery, context.run_id)
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


@task(name="decide-outcomes", timeout_seconds=15 * MINUTE, **STORE_TASK)
def decide_outcomes(
    context: RunContext, batch: CheckedBatch, claims: list[Claim], record_index: RecordIndex
) -> BatchDecision:
    return decide_batch(context, batch, claims, record_index)


@task(name="publish-drop", timeout_seconds=30 * MINUTE, **STORE_TASK)
def publish_drop(
    context: RunContext,
    decision: BatchDecision,
    validation: dict[str, Any],
    lock_generation: int,
    published_at: dt.datetime,
    batch_number: int,
) -> tuple[str, int] | None:
    """Publish the batch's drop (if it has new records), then its quarantine and ledger
    outcomes; returns the drop's id and row count."""

    def still_holding_lock() -> None:
        if not context.publish_lock.is_held_by(lock_generation):
            raise RuntimeError("the publish lock was taken over; not completing the drop")

    drop = settle_batch(
        context,
        decision,
        validation=validation,
        batch_number=batch_number,
        published_at=published_at,
        still_holding_lock=still_holding_lock,
    )
    if drop is None:
        get_run_logger().info("batch %d: nothing new to publish", batch_number)
        return None
    get_run_logger().info(
        "batch %d: published drop %s, %d records in %d files",
        batch_number,
        drop.drop_id,
        drop.rows,
        len(drop.files),
    )
    return drop.drop_id, drop.rows


@task(name="write-report", timeout_seconds=10 * MINUTE, **STORE_TASK)
def write_report(context: RunContext, totals: RunTotals, **fields: Any) -> dict[str, Any]:
    report, quarantine_items_url = complete_report(context, totals, **fields)
    publish_run_artifacts(report, totals, quarantine_items_url)
    return report


def _run_exchange(
    context: RunContext,
    options: RunOptions,
    *,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
) -> dict[str, Any]:
    """The stages of one exchange run, shared by the regular flow and the backfill."""
    run_started = time.perf_counter()
    run = RunRecorder()
    clock = run.clock
    task_runner = batch_task_runner(options.runner, options.dask_address)  # fails early
    with clock.stage("recover"):
        recovered = recover_interrupted_drops(context)
    with clock.stage("discover"):
        discovery, claims = discover_and_claim(context, landed_from, landed_until, options.runner)
    plan = batches.plan_batches(objects_to_read(claims), options.batch_bytes)
    get_run_logger().info(
        "%d claimed objects in %d batches (%s)", len(claims), len(plan), options.runner
    )
    clock.plan(len(plan))
    claims_by_key = {claim.source.key: claim for claim in claims}
    record_index = context.publisher.record_index()

    def publish_batch(batch: CheckedBatch) -> None:
        validation = run.checked(batch)
        batch_claims = [claims_by_key[obj.key] for obj in batch.objects]
        with context.publish_lock.hold(context.run_id) as generation:
            with clock.stage("decide"):
                decision = decide_outcomes(
                    context, _quoted(batch), _quoted(batch_claims), record_index
                )
            with clock.stage("publish"):
                drop = publish_drop(
                    context,
                    _quoted(decision),
                    validation,
                    generation,
                    dt.datetime.now(dt.UTC),
                    batch.number,
                )
        run.settled(batch, decision, drop)

    with clock.stage("batches"):
        check_ahead_and_publish(
            task_runner,
            plan,
            {"s3": context.s3, "agreement": context.agreement},
            publish_batch,
            clock,
        )
    with clock.stage("report"):
        report = write_report(
            context,
            # Quoted: Prefect walks a task's arguments twice looking for futures, and a big
            # run's discovery and totals hold tens of thousands of entries.
            _quoted(run.totals),
            discovery=_quoted(discovery),
            claims=_quoted(claims),
            recovered_drops=recovered,
            timings=clock.timings,
        )
    # The stored report was written before its own stage ended; the caller gets the whole run.
    report["timings_s"]["report"] = round(clock.timings["report"], 3)
    report["run_s"] = round(time.perf_counter() - run_started, 3)
    return report


def _context(
    source: str, state: str, partner: str | None, agreement: str, options: RunOptions
) -> RunContext:
    settings = run_settings(options.s3_credentials_block, options.hmac_key_block)
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
    options: RunOptions = RunOptions(),  # noqa: B008 - immutable, and Prefect needs the default
) -> dict[str, Any]:
    """Move new manifests under ``source`` to verified drops for the agreement's partner.

    Args:
        source: ``s3://bucket/prefix`` of new manifests.
        state: ``s3://bucket/prefix`` of the pipeline's ledger, quarantine and reports.
        partner: ``s3://bucket/prefix`` of the partner's drops (default: the agreement's).
        agreement: agreement name (a file in ``manifest_exchange/agreements``) or path.
        options: the credentials blocks, where batches are checked and the batch size.
    """
    context = _context(source, state, partner, agreement, options)
    return _run_exchange(context, options)


@flow(name="backfill_manifests", log_prints=False)
def backfill_manifests(
    source: str,
    state: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    prefix: str | None = None,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - immutable, and Prefect needs the default
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
    context = _context(source, state, partner, agreement, options)
    return _run_exchange(
        context, options, landed_from=_as_utc(landed_from), landed_until=_as_utc(landed_until)
    )


class PartnerRunsFailedError(RuntimeError):
    """At least one agreement's exchange failed; the others ran (see the run's artifact)."""


@flow(name="exchange_partners", log_prints=False)
def exchange_partners(
    source: str,
    state: str,
    agreements: list[str] | None = None,
    origin_country: str = "TWN",
    options: RunOptions = RunOptions(),  # noqa: B008 - immutable, and Prefect needs the default
) -> dict[str, Any]:
    """Run the exchange for every partner whose agreement covers departures from a country.

    Each agreement runs as its own ``exchange_manifests`` subflow, with its own ledger and
    record index under ``<state>/<agreement>`` and its own partner location, scope, columns and
    key, so a partner receives exactly its agreement and one partner's failure (its bucket
    down, say) does not hold back the others: they run, then this flow fails naming it.

    Args:
        state: ``s3://bucket/prefix`` under which each agreement keeps its state.
        agreements: names or paths (default: every agreement file whose origin is
            ``origin_country``); adding a partner is adding a file.
        origin_country: whose departures ``source`` holds.
        (other arguments as for ``exchange_manifests``)
    """
    chosen = (
        [load_agreement(name) for name in agreements]
        if agreements
        else [a for a in list_agreements() if a.origin_country == origin_country.upper()]
    )
    if not chosen:
        raise ValueError(f"no agreement for departures from {origin_country!r}")
    reports: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    for name, terms in zip(agreements or [a.name for a in chosen], chosen, strict=True):
        outcome = exchange_manifests(
            source=source,
            state=f"{state.rstrip('/')}/{terms.name}",
            agreement=name,
            options=options,
            return_state=True,
        )
        if outcome.is_completed():
            reports[terms.name] = outcome.result()
        else:
            failures[terms.name] = outcome.message or outcome.name or "failed"
    publish_partner_summary(reports, failures)
    if failures:
        raise PartnerRunsFailedError(
            f"{len(failures)} of {len(chosen)} agreements failed: {', '.join(sorted(failures))}"
        )
    return {"agreements": reports}


def _as_utc(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)
