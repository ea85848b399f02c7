"""What each claimed object's travellers came to, checked and recorded in the ledger."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.ingest.manifests import ParsedManifests
from manifest_exchange.runs.context import RunContext
from manifest_exchange.storage.ledger import (
    Claim,
    Ledger,
    SourceRef,
)
from manifest_exchange.transform.schemas import OUTCOMES


class AccountingError(RuntimeError):
    """Outcomes do not add up to the travellers received: something was lost or counted twice."""


def object_outcomes(
    claims: list[Claim], parsed: ParsedManifests, outcomes: pa.Table, messages: pa.Table
) -> list[dict[str, Any]]:
    """Per claimed object: what the ledger records (sha256, traveller counts per outcome)."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    grouped = outcomes.group_by(["object_key", "outcome"]).aggregate([("person_id", "count")])
    for row in grouped.to_pylist():
        counts[row["object_key"]][row["outcome"]] += row["person_id_count"]
    unreadable = messages.filter(pc.is_valid(messages["parse_error"]))
    for row in unreadable.select(["object_key", "person_count"]).to_pylist():
        counts[row["object_key"]]["quarantined"] += row["person_count"]
    objects = {row["object_key"]: row for row in parsed.objects.to_pylist()}
    result = []
    for claim in claims:
        obj = objects.get(claim.source.key, {})
        result.append(
            {
                "claim_key": claim.claim_key,
                "source_key": claim.source.key,
                "source_bucket": claim.source.bucket,
                "etag": claim.source.etag,
                "size": claim.source.size,
                "claimed_at": claim.claimed_at.isoformat(),
                "run_id": claim.run_id,
                "sha256": obj.get("source_sha256"),
                "object_error": obj.get("error_code"),
                "travellers": counts[claim.source.key],
            }
        )
    return result


def settled_by_other_runs(
    context: RunContext, claims: list[Claim], now: dt.datetime | None = None
) -> set[str]:
    """Keys of claimed objects that another run has settled meanwhile (the ledger has their
    outcome): this run must not quarantine or record them a second time.

    Only a claim that was a take-over, or that has outlived the claim timeout, can have been
    taken by another run, so the ledger is read only for those (a stalled run that resumed).
    """
    now = now or dt.datetime.now(dt.UTC)
    at_risk = [
        claim
        for claim in claims
        if claim.is_takeover or (now - claim.claimed_at).total_seconds() > context.claim_timeout_s
    ]
    if not at_risk:
        return set()
    wanted = {(claim.source.key, claim.source.etag) for claim in at_risk}
    folders = {key.rpartition("/")[0] for key, _ in wanted}
    recorded = context.ledger.outcomes(context.source, folders=folders)
    return {
        key
        for (key, etag), outcome in recorded.items()
        if (key, etag) in wanted and outcome.body.get("run_id") != context.run_id
    }


def finish_ledger(ledger: Ledger, outcomes: list[dict[str, Any]], drop_id: str | None) -> None:
    """Record the objects' outcomes in the ledger (one sheet per folder; recording an object
    again is harmless, its earliest outcome stands)."""
    finished: list[tuple[Claim, dict[str, object]]] = []
    for entry in outcomes:
        claim = Claim(
            source=SourceRef(
                entry["source_bucket"], entry["source_key"], entry["etag"], entry["size"]
            ),
            claim_key=entry["claim_key"],
            run_id=entry["run_id"],
            claimed_at=dt.datetime.fromisoformat(entry["claimed_at"]),
            is_takeover=False,
        )
        outcome: dict[str, object] = {
            "sha256": entry["sha256"],
            "object_error": entry["object_error"],
            "travellers": entry["travellers"],
            "drop_id": drop_id,
        }
        finished.append((claim, outcome))
    ledger.finish_many(finished)


def check_accounting(travellers: int, accounting: pa.Table, label: str) -> dict[str, int]:
    """Outcome totals of ``accounting``; raises if they do not add up to ``travellers``."""
    totals = dict.fromkeys(OUTCOMES, 0)
    for outcome, count in zip(
        accounting["outcome"].to_pylist(), accounting["travellers"].to_pylist(), strict=True
    ):
        totals[outcome] += int(count)
    if sum(totals.values()) != travellers:
        raise AccountingError(
            f"{label}: {travellers} travellers received but {sum(totals.values())} accounted "
            f"for ({totals})"
        )
    return totals
