"""Prefect flows that move manifests to partners: ``exchange_manifests`` (one agreement), its
backfill, and ``exchange_partners`` (every agreement of an origin country, one after another).

recover -> discover -> per batch: check (parse, transform, validate; on the task runner) ->
decide outcomes -> publish (drop, then quarantine, then ledger) -> report. Each task is
a thin wrapper over one package function; the package holds the logic (of it, only
``manifest_exchange.orchestration`` knows Prefect). Big tables pass between tasks in memory,
so tasks neither cache nor persist results, and the flow's own tasks get the big ones in
``quote``: Prefect would otherwise walk every element looking for futures. Tasks that talk
to the store retry with backoff on transient errors only; every task has a timeout.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import pyarrow as pa
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from manifest_exchange import quality, runs, transform
from manifest_exchange.agreements import DEFAULT_AGREEMENT, list_agreements, load_agreement
from manifest_exchange.orchestration.artifacts import (
    StageProgress,
    publish_partner_summary,
    publish_run_artifacts,
)
from manifest_exchange.orchestration.retry import STORE_RETRIES
from manifest_exchange.orchestration.runners import (
    batch_task_runner,
    batches_in_flight,
    check_batch_task,
    free_published_batch,
)
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.publish import RecordIndex, Settlement, build_drop, new_drop_id
from manifest_exchange.runs import QualitySummary, RunContext, RunTotals, batches
from manifest_exchange.runs.batches import CheckedBatch
from manifest_exchange.storage.ledger import Claim, Discovery

# PREFECT_LOGGING_EXTRA_LOGGERS sends the package's records to the UI, but the logger would
# inherit the root's WARNING level and drop its INFO lines (claims, recoveries) on the way.
logging.getLogger("manifest_exchange").setLevel(logging.INFO)

TASK_OPTIONS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}
STORE_TASK: dict[str, Any] = {**TASK_OPTIONS, **STORE_RETRIES}
MINUTE = 60
DEFAULT_BATCH_MB = batches.DEFAULT_BATCH_MB
_Value = TypeVar("_Value")


def _quoted(value: _Value) -> _Value:
    """``value`` in Prefect's ``quote``, typed as itself: the task gets it unwrapped, and
    Prefect does not walk it looking for futures."""
    return cast(_Value, quote(value))


@task(name="recover-interrupted-drops", timeout_seconds=10 * MINUTE, **STORE_TASK)
def recover_interrupted_drops(context: RunContext) -> list[str]:
    with context.publish_lock.hold(context.run_id):
        return context.publisher.recover_staged_batches(
            lambda outcomes, drop_id: runs.finish_ledger(context.ledger, outcomes, drop_id)
        )


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
    # Something to check: GX is imported while claiming waits on the store. A run that finds
    # nothing (most scheduled runs) never imports it.
    if runner is not None and (discovery.candidates or discovery.own_claims):
        batches.warm_up(context.s3, context.agreement, checks_here=runner == "threads")
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
) -> tuple[pa.Table, pa.Table, runs.Quarantine, list[dict[str, Any]]]:
    """Every traveller's outcome, the batch's accounting (checked before anything is
    published), its quarantine and its objects' ledger outcomes. Reads the record index and
    the ledger, so it runs under the publish lock."""
    published = record_index.for_records(
        batch.travellers["record_id"], batch.travellers["person_key"]
    )
    outcomes = transform.exchange_outcomes(batch.travellers, batch.issues, published)
    accounting = transform.exchange_accounting(outcomes, batch.messages)
    runs.check_accounting(batch.parsed.traveller_count, accounting, f"batch {batch.number}")
    # A stalled run whose objects were taken over and settled meanwhile records none of them.
    settled_elsewhere = runs.settled_by_other_runs(context, claims)
    if settled_elsewhere:
        get_run_logger().warning(
            "batch %d: %d objects were settled by another run meanwhile; not recording them",
            batch.number,
            len(settled_elsewhere),
        )
    quarantine = runs.build_quarantine(
        batch.parsed, outcomes, batch.messages, batch.message_issues, settled_elsewhere
    )
    ledger_outcomes = [
        entry
        for entry in runs.object_outcomes(claims, batch.parsed, outcomes, batch.messages)
        if entry["source_key"] not in settled_elsewhere
    ]
    return outcomes, accounting, quarantine, ledger_outcomes


@task(name="publish-drop", timeout_seconds=30 * MINUTE, **STORE_TASK)
def publish_drop(
    context: RunContext,
    outcomes: pa.Table,
    ledger_outcomes: list[dict[str, Any]],
    quarantine: runs.Quarantine,
    validation: dict[str, Any],
    lock_generation: int,
    published_at: dt.datetime,
    batch_number: int,
) -> tuple[str, int] | None:
    """Publish the batch's drop (if it has new records), then write its quarantine and
    ledger outcomes, all through one staging folder (:mod:`manifest_exchange.publish`)."""
    # ``published_at`` is fixed by the flow, so a retried attempt rebuilds the very same batch
    # under the same id and the publisher carries on where the failed attempt stopped.
    batch_id = new_drop_id(published_at, context.run_id, batch_number)
    records, index = transform.exchange_records(
        outcomes, context.agreement, context.hmac_key, published_at
    )
    drop = None
    if records.num_rows:
        drop = build_drop(
            records,
            index,
            drop_id=batch_id,
            agreement=context.agreement.name,
            schema_version=context.agreement.schema_version,
            validation=validation,
            published_at=published_at,
        )
    settlement = Settlement(
        batch_id=batch_id,
        drop_id=None if drop is None else drop.drop_id,
        ledger_outcomes=ledger_outcomes,
        quarantine_prefix=context.quarantine_folder(batch_number).prefix,
        quarantine=quarantine.files,
    )

    def still_holding_lock() -> None:
        if not context.publish_lock.is_held_by(lock_generation):
            raise RuntimeError("the publish lock was taken over; not completing the drop")

    context.publisher.publish(drop, settlement, before_success=still_holding_lock)
    context.publisher.finish(
        settlement,
        lambda outcomes, drop_id: runs.finish_ledger(context.ledger, outcomes, drop_id),
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
def write_report(
    context: RunContext, docs: quality.Validator | None, totals: RunTotals, **fields: Any
) -> dict[str, Any]:
    result = runs.build_report(context, totals=totals, **fields)
    result["data_docs_files"] = 0
    if docs is not None:
        docs.build_data_docs()
        result["data_docs_files"] = runs.upload_folder(context, docs.data_docs_dir, "data-docs")
    result["report_uri"] = runs.write_report(context, result)
    docs_url = runs.data_docs_url(context) if result["data_docs_files"] else None
    publish_run_artifacts(result, totals.listing, totals.listing_total, docs_url)
    return result


class _Stages:
    """Seconds per stage (summed over batches) and the UI's progress artifact."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.progress = StageProgress(["recover", "discover", "report"])

    def plan(self, batch_count: int) -> None:
        """Count each batch as a step of the progress artifact."""
        batch_steps = [f"batch {number}" for number in range(batch_count)]
        self.progress.stages = ["recover", "discover", *batch_steps, "report"]

    def batch_done(self, number: int) -> None:
        self.progress.finished(f"batch {number}")

    def add(self, name: str, seconds: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.add(name, time.perf_counter() - started)
        if name in self.progress.stages:
            self.progress.finished(name)


def _run_exchange(
    context: RunContext,
    *,
    landed_from: dt.datetime | None = None,
    landed_until: dt.datetime | None = None,
    runner: str = "threads",
    dask_address: str | None = None,
    batch_mb: float = DEFAULT_BATCH_MB,
) -> dict[str, Any]:
    """The stages of one exchange run, shared by the regular flow and the backfill.

    Batches are checked on the chosen task runner, a few ahead of the one being published;
    outcomes and drops follow batch order, one batch at a time under the publish lock.
    """
    run_started = time.perf_counter()
    stages = _Stages()
    task_runner = batch_task_runner(runner, dask_address)  # fails early on bad options
    with stages.stage("recover"):
        recovered = recover_interrupted_drops(context)
    with stages.stage("discover"):
        discovery, claims = discover_and_claim(context, landed_from, landed_until, runner)
    plan = batches.plan_batches(runs.objects_to_read(claims), int(batch_mb * 1024 * 1024))
    get_run_logger().info("%d claimed objects in %d batches (%s)", len(claims), len(plan), runner)
    stages.plan(len(plan))
    claims_by_key = {claim.source.key: claim for claim in claims}
    totals = RunTotals()
    # Made at the first batch's results: GX is imported by then (``batches.warm_up``).
    docs: quality.Validator | None = None
    record_index = context.publisher.record_index()

    def publish_batch(batch: CheckedBatch) -> None:
        for stage, seconds in batch.timings.items():
            stages.add(stage, seconds)
        summary = QualitySummary()  # the batch's, for its drop's manifest
        for result in batch.results.values():
            summary.add(result)
            totals.quality.add(result)
        nonlocal docs
        docs = docs or quality.Validator(data_docs=True)
        docs.store_results(batch.results.values())
        batch_claims = [claims_by_key[obj.key] for obj in batch.objects]
        with context.publish_lock.hold(context.run_id) as generation:
            with stages.stage("decide"):
                outcomes, accounting, quarantine, ledger_outcomes = decide_outcomes(
                    context, _quoted(batch), _quoted(batch_claims), record_index
                )
            with stages.stage("publish"):
                drop = publish_drop(
                    context,
                    outcomes,
                    _quoted(ledger_outcomes),
                    _quoted(quarantine),
                    summary.as_dict(),
                    generation,
                    dt.datetime.now(dt.UTC),
                    batch.number,
                )
        totals.add_batch(
            batch.parsed,
            batch.messages,
            batch.message_issues,
            outcomes,
            accounting,
            quarantine=quarantine.counts,
            drop=drop,
        )
        stages.batch_done(batch.number)

    def publish_next(pending: deque[PrefectFuture[CheckedBatch]]) -> None:
        publish_batch(pending.popleft().result())
        with stages.stage("free"):
            free_published_batch()

    with stages.stage("batches"), task_runner:
        in_flight = batches_in_flight(task_runner)
        pending: deque[PrefectFuture[CheckedBatch]] = deque()
        for number, objects in enumerate(plan):
            pending.append(
                task_runner.submit(
                    check_batch_task,
                    {
                        "s3": context.s3,
                        "agreement": context.agreement,
                        # Not quoted: a quoted value pickled for a Dask worker arrives
                        # there wrapped in a tuple.
                        "objects": objects,
                        "number": number,
                    },
                )
            )
            if len(pending) >= in_flight:
                publish_next(pending)
        while pending:
            publish_next(pending)
    with stages.stage("report"):
        result = write_report(
            context,
            docs,
            # Quoted: Prefect walks a task's arguments twice looking for futures, and the
            # discovery's 14,248 candidates and the totals' flights took a second at 1M.
            _quoted(totals),
            discovery=_quoted(discovery),
            claims=_quoted(claims),
            recovered_drops=recovered,
            timings=stages.timings,
        )
    # The stored report was written before its own stage ended; the caller gets the whole run.
    result["timings_s"]["report"] = round(stages.timings["report"], 3)
    result["run_s"] = round(time.perf_counter() - run_started, 3)
    return result


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
    runner: str = "threads",
    dask_address: str | None = None,
    batch_mb: float = DEFAULT_BATCH_MB,
) -> dict[str, Any]:
    """Move new manifests under ``source`` to verified drops for the agreement's partner.

    Args:
        source: ``s3://bucket/prefix`` of new manifests.
        state: ``s3://bucket/prefix`` of the pipeline's ledger, quarantine and reports.
        partner: ``s3://bucket/prefix`` of the partner's drops (default: the agreement's).
        agreement: agreement name (a file in ``manifest_exchange/agreements``) or path.
        s3_credentials_block: an ``AwsCredentials`` block to reach the store with
            (default: the ``AWS_*`` environment variables).
        hmac_key_block: a ``Secret`` block with the document-matching key
            (default: ``MX_HMAC_KEY_ID``/``MX_HMAC_KEY``).
        runner: where batches are checked: ``threads`` (in this process) or ``dask``.
        dask_address: an existing Dask scheduler for ``dask`` (default: a local cluster).
        batch_mb: objects per batch by listed size; one drop per batch that has records.
    """
    context = _context(source, state, partner, agreement, s3_credentials_block, hmac_key_block)
    return _run_exchange(context, runner=runner, dask_address=dask_address, batch_mb=batch_mb)


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
    runner: str = "threads",
    dask_address: str | None = None,
    batch_mb: float = DEFAULT_BATCH_MB,
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
        context,
        landed_from=_as_utc(landed_from),
        landed_until=_as_utc(landed_until),
        runner=runner,
        dask_address=dask_address,
        batch_mb=batch_mb,
    )


class PartnerRunsFailedError(RuntimeError):
    """At least one agreement's exchange failed; the others ran (see the run's artifact)."""


@flow(name="exchange_partners", log_prints=False)
def exchange_partners(
    source: str,
    state: str,
    agreements: list[str] | None = None,
    origin_country: str = "TWN",
    s3_credentials_block: str | None = None,
    hmac_key_block: str | None = None,
    runner: str = "threads",
    dask_address: str | None = None,
    batch_mb: float = DEFAULT_BATCH_MB,
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
            s3_credentials_block=s3_credentials_block,
            hmac_key_block=hmac_key_block,
            runner=runner,
            dask_address=dask_address,
            batch_mb=batch_mb,
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
