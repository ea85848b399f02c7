"""The quarantine a batch settles with: rows with personal data, for the state bucket only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.ingest.manifests import ParsedManifests
from manifest_exchange.publish.drops import parquet_bytes


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
    outcomes: pa.Table, messages: pa.Table, message_issues: pa.Table, *, limit: int = 500
) -> tuple[list[dict[str, Any]], int]:
    """What was quarantined and why, for an operator: ids and reasons, never personal data.

    Returns up to ``limit`` rows (whole messages first, then travellers) and the total count.
    """
    rows: list[dict[str, Any]] = []
    for message in quarantined_messages(messages, message_issues).to_pylist():
        reasons = [message["parse_error"]] if message["parse_error"] else []
        rows.append(
            {
                "item": "message",
                "id": message["message_id"],
                "flight_key": message.get("flight_key"),
                "object_key": message["object_key"],
                "reasons": ", ".join(reasons + (message["failed_checks"] or [])),
            }
        )
    travellers = outcomes.filter(pc.equal(outcomes["outcome"], "quarantined"))
    columns = travellers.select(["record_id", "flight_key", "object_key", "reasons"])
    for traveller in columns.to_pylist():
        rows.append(
            {
                "item": "traveller",
                "id": traveller["record_id"],
                "flight_key": traveller["flight_key"],
                "object_key": traveller["object_key"],
                "reasons": ", ".join(traveller["reasons"] or []),
            }
        )
    return rows[:limit], len(rows)


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
