"""Deciding and settling one checked batch: every traveller's outcome, then its drop,
quarantine and ledger outcomes through one staging folder (:mod:`..publish.publisher`).

Both steps read or write what other runs read (the record index, the ledger), so the flow
calls them under the publish lock.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from manifest_exchange.publish.drops import Drop, build_drop, new_drop_id
from manifest_exchange.publish.publisher import Settlement
from manifest_exchange.publish.record_index import RecordIndex
from manifest_exchange.runs.batches import CheckedBatch
from manifest_exchange.runs.context import RunContext
from manifest_exchange.runs.outcomes import (
    check_accounting,
    finish_ledger,
    object_outcomes,
    settled_by_other_runs,
)
from manifest_exchange.runs.quarantine import Quarantine, build_quarantine
from manifest_exchange.storage.ledger import Claim
from manifest_exchange.transform.exchange import (
    exchange_accounting,
    exchange_outcomes,
    exchange_records,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchDecision:
    """What a checked batch comes to, before anything of it is published."""

    outcomes: pa.Table
    accounting: pa.Table
    quarantine: Quarantine
    ledger_outcomes: list[dict[str, Any]]
    # Objects another run settled meanwhile: their quarantine rows are that run's.
    settled_elsewhere: frozenset[str] = frozenset()


def recover_staged_batches(context: RunContext) -> list[str]:
    """Finish every completely staged batch an interrupted run left behind."""
    return context.publisher.recover_staged_batches(
        lambda outcomes, drop_id: finish_ledger(context.ledger, outcomes, drop_id)
    )


def decide_batch(
    context: RunContext, batch: CheckedBatch, claims: list[Claim], record_index: RecordIndex
) -> BatchDecision:
    """Every traveller's outcome, the batch's accounting (checked before anything is
    published), its quarantine and its objects' ledger outcomes."""
    published = record_index.for_records(
        batch.travellers["record_id"], batch.travellers["person_key"]
    )
    outcomes = exchange_outcomes(batch.travellers, batch.issues, published)
    accounting = exchange_accounting(outcomes, batch.messages)
    check_accounting(batch.parsed.traveller_count, accounting, f"batch {batch.number}")
    # A stalled run whose objects were taken over and settled meanwhile records none of them.
    settled_elsewhere = settled_by_other_runs(context, claims)
    if settled_elsewhere:
        log.warning(
            "batch %d: %d objects were settled by another run meanwhile; not recording them",
            batch.number,
            len(settled_elsewhere),
        )
    quarantine = build_quarantine(
        batch.parsed, outcomes, batch.messages, batch.message_issues, settled_elsewhere
    )
    ledger_outcomes = [
        entry
        for entry in object_outcomes(claims, batch.parsed, outcomes, batch.messages)
        if entry["source_key"] not in settled_elsewhere
    ]
    return BatchDecision(
        outcomes, accounting, quarantine, ledger_outcomes, frozenset(settled_elsewhere)
    )


def settle_batch(
    context: RunContext,
    decision: BatchDecision,
    *,
    validation: dict[str, Any],
    batch_number: int,
    published_at: dt.datetime,
    still_holding_lock: Callable[[], None],
) -> Drop | None:
    """Publish the batch's drop (if it has new records), then write its quarantine and
    ledger outcomes; returns the drop.

    ``published_at`` is fixed by the caller, so a retried attempt rebuilds the very same batch
    under the same id and the publisher carries on where the failed attempt stopped.
    ``still_holding_lock`` raises if the publish lock was taken over; it is called right
    before the drop is made visible.
    """
    batch_id = new_drop_id(published_at, context.run_id, batch_number)
    records, index = exchange_records(
        decision.outcomes, context.agreement, context.hmac_key, published_at
    )
    drop = None
    if records.num_rows:
        # A run that crashed between a drop's _SUCCESS and _latest.json while this one waited
        # for the lock left that drop staged: completed first, it keeps its sequence number.
        recover_staged_batches(context)
        drop = build_drop(
            records,
            index,
            drop_id=batch_id,
            agreement=context.agreement.name,
            schema_version=context.agreement.schema_version,
            validation=validation,
            published_at=published_at,
            link=context.publisher.next_link(batch_id, context.agreement.schema_version),
        )
    settlement = Settlement(
        batch_id=batch_id,
        drop_id=None if drop is None else drop.drop_id,
        ledger_outcomes=decision.ledger_outcomes,
        quarantine_prefix=context.quarantine_folder(batch_number).prefix,
        quarantine=decision.quarantine.files,
    )
    context.publisher.publish(drop, settlement, before_success=still_holding_lock)
    context.publisher.finish(
        settlement, lambda outcomes, drop_id: finish_ledger(context.ledger, outcomes, drop_id)
    )
    return drop
