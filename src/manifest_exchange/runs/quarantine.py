"""The quarantine a batch settles with: rows with personal data, for the state bucket only."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.ingest.manifests import ParsedManifests
from manifest_exchange.publish.drops import parquet_bytes

# Where the report counts a message whose flight could not be read.
UNREADABLE_FLIGHT = "(unreadable)"

# Why a message could not be read at all (``parse_error``, from sql/staging); the suites
# describe their own checks.
UNREADABLE_REASONS = {
    "message_truncated": "The message has no UNT: the transmission was cut off",
    "not_paxlst": "The message is not a PAXLST message",
    "csv_line_rejected": "A line of an airport export could not be read",
}


def quarantined_messages(messages: pa.Table, message_issues: pa.Table) -> pa.Table:
    """Messages that could not be read or failed an error check, with ``failed_checks``."""
    errors = message_issues.filter(pc.equal(message_issues["severity"], "error"))
    failed_checks: dict[str, list[str]] = defaultdict(list)
    for row in errors.to_pylist():
        failed_checks[row["row_id"]].append(row["check_name"])
    checks = pa.array(
        [failed_checks.get(m) for m in messages["message_id"].to_pylist()], pa.list_(pa.string())
    )
    with_checks = messages.append_column("failed_checks", checks)
    return with_checks.filter(
        pc.or_(pc.is_valid(with_checks["parse_error"]), pc.is_valid(with_checks["failed_checks"]))
    )


def quarantine_listing(
    outcomes: pa.Table, messages: pa.Table, message_issues: pa.Table
) -> list[dict[str, Any]]:
    """What was quarantined and why, for an operator: ids and reasons, never personal data.

    One row per quarantined message, then one per quarantined traveller. ``travellers`` is how
    many of the run's quarantined travellers the row stands for, so the rows add up to the
    report's count: one for a traveller, a message's NAD count when it could not be read at
    all, and none for a readable message whose travellers have rows of their own.
    """
    rows: list[dict[str, Any]] = []
    for message in quarantined_messages(messages, message_issues).to_pylist():
        unreadable = message["parse_error"] is not None
        reasons = [message["parse_error"]] if unreadable else []
        rows.append(
            {
                "reasons": reasons + (message["failed_checks"] or []),
                "item": "message",
                "travellers": int(message.get("person_count") or 0) if unreadable else 0,
                "flight_key": message.get("flight_key"),
                "object_key": message["object_key"],
                "id": message["message_id"],
            }
        )
    travellers = outcomes.filter(pc.equal(outcomes["outcome"], "quarantined"))
    columns = travellers.select(["record_id", "flight_key", "object_key", "reasons"])
    for traveller in columns.to_pylist():
        rows.append(
            {
                "reasons": list(traveller["reasons"] or []),
                "item": "traveller",
                "travellers": 1,
                "flight_key": traveller["flight_key"],
                "object_key": traveller["object_key"],
                "id": traveller["record_id"],
            }
        )
    return rows


@dataclass
class Tally:
    """Quarantined travellers and messages under one reason or flight, and their reasons."""

    count_travellers: int = 0
    count_messages: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, row: dict[str, Any], reasons: list[str]) -> None:
        self.count_travellers += row["travellers"]
        self.count_messages += row["item"] == "message"
        self.reasons.update(reasons)


@dataclass
class QuarantineSummary:
    """A run's quarantine for a person to scan: counts per reason and per flight, and the
    first ``limit`` items (memory stays bounded however much a run quarantines)."""

    limit: int = 500
    total: Tally = field(default_factory=Tally)
    by_reason: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    by_flight: defaultdict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    items: list[dict[str, Any]] = field(default_factory=list)
    count_items: int = 0
    # Quarantined travellers of objects another run settled meanwhile: that run lists them.
    count_settled_elsewhere: int = 0

    def add(
        self, rows: list[dict[str, Any]], settled_elsewhere: frozenset[str] = frozenset()
    ) -> None:
        """Add a batch's :func:`quarantine_listing`, but for the objects in
        ``settled_elsewhere``, whose quarantine files the run that settled them wrote."""
        kept = []
        for row in rows:
            if row["object_key"] in settled_elsewhere:
                self.count_settled_elsewhere += row["travellers"]
                continue
            kept.append(row)
            self.total.add(row, row["reasons"])
            for reason in row["reasons"]:
                self.by_reason[reason].add(row, [reason])
            self.by_flight[row["flight_key"] or UNREADABLE_FLIGHT].add(row, row["reasons"])
        self.items.extend(kept[: self.limit - len(self.items)])
        self.count_items += len(kept)

    def as_dict(self) -> dict[str, Any]:
        """For the run report: totals, and travellers and messages per reason."""

        def counts(tally: Tally) -> dict[str, int]:
            return {"travellers": tally.count_travellers, "messages": tally.count_messages}

        return {
            "total": counts(self.total),
            "settled_by_other_runs": {"travellers": self.count_settled_elsewhere},
            "by_reason": {reason: counts(t) for reason, t in sorted(self.by_reason.items())},
        }


@dataclass(frozen=True)
class Quarantine:
    """A batch's quarantine: Parquet files by name, and their row counts.

    ``travellers.parquet`` holds quarantined travellers with their ``reasons``,
    ``messages.parquet`` messages that could not be read or failed an error check of the
    message suite (with ``failed_checks``), ``errors.parquet`` the parser's errors.
    """

    files: dict[str, bytes]
    counts: dict[str, int]


def build_quarantine(
    parsed: ParsedManifests,
    outcomes: pa.Table,
    messages: pa.Table,
    message_issues: pa.Table,
    settled_elsewhere: set[str] | None = None,
) -> Quarantine:
    """The batch's quarantined travellers, messages and parser errors, with reasons.

    The files are written with the batch's drop and before its ledger outcomes
    (:meth:`DropPublisher.finish`), under :meth:`RunContext.quarantine_folder`. Rows of the
    objects in ``settled_elsewhere`` are left out: the run that settled them wrote theirs.
    """
    travellers = outcomes.filter(pc.equal(outcomes["outcome"], "quarantined"))
    bad_messages = quarantined_messages(messages, message_issues)
    files: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    others = pa.array(sorted(settled_elsewhere or ()), pa.string())
    for name, table in (
        ("travellers", travellers),
        ("messages", bad_messages),
        ("errors", parsed.errors),
    ):
        if len(others):
            table = table.filter(pc.invert(pc.is_in(table["object_key"], value_set=others)))
        counts[name] = table.num_rows
        if table.num_rows:
            files[f"{name}.parquet"] = parquet_bytes(table)
    return Quarantine(files, counts)
