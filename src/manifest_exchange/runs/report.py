"""What a run writes about itself: validation totals, the quarantine summary, the run report
and its accounting."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.ingest.manifests import ParsedManifests
from manifest_exchange.quality.validator import SuiteResult
from manifest_exchange.runs.context import RunContext
from manifest_exchange.runs.outcomes import AccountingError, check_accounting
from manifest_exchange.runs.quarantine import (
    UNREADABLE_FLIGHT,
    QuarantineSummary,
    quarantine_listing,
)
from manifest_exchange.storage.ledger import (
    Claim,
    Discovery,
)
from manifest_exchange.storage.s3 import put_bytes
from manifest_exchange.transform.schemas import OUTCOMES


@dataclass
class QualitySummary:
    """Per suite the rows checked, and per check what it reads and how many rows it checked
    and failed (no row values). Results of several batches add up.
    """

    rows: dict[str, int] = field(default_factory=dict)
    checks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def add(self, result: SuiteResult) -> None:
        self.rows[result.suite] = self.rows.get(result.suite, 0) + result.rows
        details = self.checks.setdefault(result.suite, {})
        for check in result.checks:
            detail = details.setdefault(
                check["check"],
                {key: check[key] for key in ("severity", "description", "expectation", "column")}
                | {"rows": 0, "failed": 0},
            )
            detail["rows"] += check["element_count"]
            detail["failed"] += check["unexpected_count"]

    def as_dict(self) -> dict[str, Any]:
        """Per suite, as drop manifests and the report carry it: rows, checks, failed checks."""
        return {
            suite: {
                "rows": self.rows[suite],
                "failed": {
                    check: {"severity": detail["severity"], "rows": detail["failed"]}
                    for check, detail in sorted(checks.items())
                    if detail["failed"]
                },
                "checks": len(checks),
            }
            for suite, checks in self.checks.items()
        }


# How long a link handed out in the UI stays valid (SigV4 allows at most 7 days).
LINK_VALID_DAYS = 7


def presigned_url(context: RunContext, key: str) -> str:
    """A time-limited URL of a state-bucket object that holds no personal data."""
    url: str = context.client.generate_presigned_url(
        "get_object",
        Params={"Bucket": context.state.bucket, "Key": key},
        ExpiresIn=LINK_VALID_DAYS * 86400,
    )
    return url


@dataclass
class RunTotals:
    """What a run's batches add up to, for its report: counts, ids and reasons only.

    Kept small on purpose (no batch's tables), so a run's memory does not grow with its input.
    """

    objects_unreadable: int = 0
    messages: int = 0
    travellers: int = 0
    batches: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    per_flight: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    )
    per_source_format: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: dict.fromkeys(OUTCOMES, 0))
    )
    quarantine: dict[str, int] = field(
        default_factory=lambda: {"travellers": 0, "messages": 0, "errors": 0}
    )
    quality: QualitySummary = field(default_factory=QualitySummary)
    drops: list[tuple[str, int]] = field(default_factory=list)
    quarantine_summary: QuarantineSummary = field(default_factory=QuarantineSummary)

    def add_batch(
        self,
        parsed: ParsedManifests,
        messages: pa.Table,
        message_issues: pa.Table,
        outcomes: pa.Table,
        accounting: pa.Table,
        *,
        quarantine: dict[str, int],
        drop: tuple[str, int] | None,
        settled_elsewhere: frozenset[str] = frozenset(),
    ) -> None:
        """Add one published batch and its ``transform.exchange_accounting`` rows;
        ``settled_elsewhere`` are its objects another run settled meanwhile.

        Raises :class:`AccountingError` if the batch does not add up.
        """
        travellers = parsed.traveller_count
        counts = check_accounting(travellers, accounting, f"batch {self.batches}")
        for row in accounting.to_pylist():
            flight = row["flight_key"] or UNREADABLE_FLIGHT
            self.per_flight[flight][row["outcome"]] += int(row["travellers"])
            source_format = row["source_format"] or "(unreadable)"
            self.per_source_format[source_format][row["outcome"]] += int(row["travellers"])
        for outcome, count in counts.items():
            self.outcomes[outcome] += count
        self.objects_unreadable += int(
            pc.sum(pc.is_valid(parsed.objects["error_code"])).as_py() or 0
        )
        self.messages += messages.num_rows
        self.travellers += travellers
        self.batches += 1
        for name, count in quarantine.items():
            self.quarantine[name] += count
        if drop is not None:
            self.drops.append(drop)
        self.quarantine_summary.add(
            quarantine_listing(outcomes, messages, message_issues), settled_elsewhere
        )

    @property
    def drop_rows(self) -> int:
        return sum(rows for _, rows in self.drops)


def build_report(
    context: RunContext,
    *,
    discovery: Discovery | None,
    claims: list[Claim],
    totals: RunTotals,
    recovered_drops: list[str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The run report; raises :class:`AccountingError` if the outcomes do not add up."""
    outcomes = totals.outcomes
    drop_ids = [drop_id for drop_id, _ in totals.drops]
    report = {
        "run_id": context.run_id,
        "agreement": context.agreement.name,
        "source": str(context.source),
        "partner": str(context.partner),
        "started_at": context.started_at.isoformat(),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "drop_ids": drop_ids,
        "drop_rows": totals.drop_rows,
        "drop_uris": [str(context.drop_location(drop_id)) for drop_id in drop_ids],
        "batches": totals.batches,
        "quarantine_uri": str(context.quarantine_folder()),
        "recovered_drops": recovered_drops,
        "objects": {
            "listed": discovery.listed if discovery else 0,
            "already_processed": discovery.done if discovery else 0,
            "claimed_by_other_runs": discovery.claimed_by_others if discovery else 0,
            "claimed": len(claims),
            "taken_over": sum(c.is_takeover for c in claims),
            "unreadable": totals.objects_unreadable,
        },
        "messages": totals.messages,
        "travellers": totals.travellers,
        "published": outcomes["published"],
        "out_of_scope": outcomes["out_of_scope"],
        "duplicates": outcomes["duplicate"],
        "quarantined_rows": outcomes["quarantined"],
        "quarantined_messages": totals.quarantine["messages"],
        "quarantine": totals.quarantine_summary.as_dict(),
        "validation": totals.quality.as_dict(),
        "per_flight": {k: dict(v) for k, v in sorted(totals.per_flight.items())},
        "per_source_format": {k: dict(v) for k, v in sorted(totals.per_source_format.items())},
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    accounted = sum(outcomes.values())
    if accounted != totals.travellers or totals.drop_rows != outcomes["published"]:
        raise AccountingError(
            f"run {context.run_id}: {totals.travellers} travellers received but {accounted} "
            f"accounted for ({outcomes}); drop rows {totals.drop_rows} vs published "
            f"{outcomes['published']}"
        )
    return report


def write_report(context: RunContext, report: dict[str, Any]) -> str:
    key = context.run_folder().key("report.json")
    put_bytes(
        context.client,
        context.state.bucket,
        key,
        json.dumps(report, indent=1, default=str).encode(),
        content_type="application/json",
    )
    return f"s3://{context.state.bucket}/{key}"


def write_quarantine_items(context: RunContext, summary: QuarantineSummary) -> str | None:
    """The quarantine items the UI lists, with full object keys and ids, as CSV in the run's
    folder (ids, keys and reasons only); returns its key, or None when nothing was held back."""
    if not summary.items:
        return None
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(summary.items[0]))
    writer.writeheader()
    writer.writerows(
        {name: _inert_cell(value) for name, value in item.items()} for item in summary.items
    )
    key = context.run_folder().key("quarantine-items.csv")
    put_bytes(
        context.client,
        context.state.bucket,
        key,
        text.getvalue().encode(),
        content_type="text/csv; charset=utf-8",
    )
    return key


def _inert_cell(value: Any) -> Any:
    """A cell a spreadsheet shows as text: object keys come from senders, and a cell that
    starts with ``=``, ``+``, ``-`` or ``@`` would otherwise run as a formula."""
    if isinstance(value, list):
        value = ", ".join(value)
    if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
        return "'" + value
    return value


def complete_report(
    context: RunContext, totals: RunTotals, **fields: Any
) -> tuple[dict[str, Any], str | None]:
    """Build and store the run report and its quarantine items; returns the report and a
    time-limited link to the items (None when the run held nothing back)."""
    report = build_report(context, totals=totals, **fields)
    items_key = write_quarantine_items(context, totals.quarantine_summary)
    report["quarantine_items_uri"] = (
        f"s3://{context.state.bucket}/{items_key}" if items_key else None
    )
    report["report_uri"] = write_report(context, report)
    return report, presigned_url(context, items_key) if items_key else None
