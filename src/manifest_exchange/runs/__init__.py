"""One exchange run: its identity and locations, and what it writes about itself.

The stages (ingest, quality, transform, publish) know nothing of each other; this module holds
what a run needs around them: where things go, the per-object outcomes for the ledger, the
quarantine, the validation results and Data Docs, and the run report with its accounting.
Nothing here logs personal data; quarantine files with personal data go to the state bucket.
"""

from __future__ import annotations

import datetime as dt
import json
import mimetypes
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.agreements import Agreement
from manifest_exchange.config import HmacKey, S3Settings, Settings
from manifest_exchange.ingest import ObjectToRead, ParsedManifests
from manifest_exchange.publish import DropPublisher, drops_root, parquet_bytes
from manifest_exchange.quality import SuiteResult
from manifest_exchange.storage.ledger import (
    Claim,
    Discovery,
    Ledger,
    PublishLock,
    SourceRef,
)
from manifest_exchange.storage.s3 import S3Client, S3Location, make_client, put_bytes, put_many
from manifest_exchange.transform import OUTCOMES


class AccountingError(RuntimeError):
    """Outcomes do not add up to the travellers received: something was lost or counted twice."""


@dataclass(frozen=True)
class RunContext:
    """Who the run is and where it reads and writes."""

    run_id: str
    started_at: dt.datetime
    agreement: Agreement
    source: S3Location
    state: S3Location
    partner: S3Location
    hmac_key: HmacKey
    s3: S3Settings
    client: S3Client
    claim_timeout_s: float
    lock_timeout_s: float

    @classmethod
    def create(
        cls,
        settings: Settings,
        agreement: Agreement,
        *,
        source: str,
        state: str,
        partner: str | None = None,
        run_id: str | None = None,
    ) -> RunContext:
        return cls(
            run_id=run_id or str(uuid.uuid4()),
            started_at=dt.datetime.now(dt.UTC),
            agreement=agreement,
            source=S3Location.parse(source),
            state=S3Location.parse(state),
            partner=S3Location.parse(partner or agreement.partner_location),
            hmac_key=settings.hmac_key_for(agreement.hmac_key_id),
            s3=settings.s3,
            client=make_client(settings.s3),
            claim_timeout_s=settings.claim_timeout_s,
            lock_timeout_s=settings.lock_timeout_s,
        )

    @property
    def ledger(self) -> Ledger:
        # The claim lock is held for a listing and one write: a stalled holder is taken over
        # within a minute (sooner where the lock timeout is shorter), not the publish lock's.
        claim_lock_timeout_s = min(60.0, self.lock_timeout_s)
        return Ledger(self.client, self.state, self.claim_timeout_s, claim_lock_timeout_s)

    @property
    def publish_lock(self) -> PublishLock:
        return PublishLock(self.client, self.state, self.lock_timeout_s)

    @property
    def publisher(self) -> DropPublisher:
        return DropPublisher(self.client, self.state, self.partner)

    def run_folder(self) -> S3Location:
        return S3Location(self.state.bucket, self.state.key("runs", self.run_id))

    def quarantine_folder(self, batch: int | None = None) -> S3Location:
        """The run's quarantine, or one batch's part of it (``batch=00000``, Hive-style)."""
        folder = self.state.key("quarantine", self.run_id)
        if batch is not None:
            folder = f"{folder}/batch={batch:05d}"
        return S3Location(self.state.bucket, folder)

    def drop_location(self, drop_id: str) -> S3Location:
        root = drops_root(self.partner, self.agreement.schema_version)
        return S3Location(root.bucket, root.key(drop_id))


def objects_to_read(claims: list[Claim]) -> list[ObjectToRead]:
    """The claimed objects in receive order (claim time, then key: a run claims all it found
    at once, so the parts of a flight's list, named alike, stay together)."""
    ordered = sorted(claims, key=lambda c: (c.claimed_at, c.source.key))
    return [
        ObjectToRead(c.source.bucket, c.source.key, c.claimed_at, c.source.size) for c in ordered
    ]


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


@dataclass
class QualitySummary:
    """Per suite: rows checked and unexpected counts per failed check (no row values).

    Results of several batches add up.
    """

    suites: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, result: SuiteResult) -> None:
        suite = self.suites.setdefault(
            result.suite, {"rows": 0, "failed": {}, "checks": len(result.checks)}
        )
        suite["rows"] += result.rows
        suite["checks"] = max(suite["checks"], len(result.checks))
        for check in result.checks:
            if check["success"]:
                continue
            failed = suite["failed"].setdefault(
                check["check"], {"severity": check["severity"], "rows": 0}
            )
            failed["rows"] += check["unexpected_count"]

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {**suite, "failed": dict(sorted(suite["failed"].items()))}
            for name, suite in self.suites.items()
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


def upload_folder(context: RunContext, local: Path, name: str) -> int:
    """Upload a local folder (e.g. Data Docs) under the run's folder; return file count."""
    if not local.is_dir():
        return 0
    folder = context.run_folder()
    items = [
        (folder.key(name, str(path.relative_to(local))), path.read_bytes())
        for path in sorted(local.rglob("*"))
        if path.is_file()
    ]
    # Data Docs are some eighty small files at 1M travellers: sent together, not in turn.
    put_many(context.client, folder.bucket, items, content_type=_content_type)
    return len(items)


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def data_docs_url(context: RunContext, name: str = "data-docs", expires_s: int = 7 * 86400) -> str:
    """A time-limited URL of the run's Data Docs index (they hold no personal data)."""
    url: str = context.client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": context.state.bucket,
            "Key": context.run_folder().key(name, "index.html"),
        },
        ExpiresIn=expires_s,
    )
    return url


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
    listing: list[dict[str, Any]] = field(default_factory=list)
    listing_total: int = 0
    listing_limit: int = 500

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
    ) -> None:
        """Add one published batch and its ``transform.exchange_accounting`` rows.

        Raises :class:`AccountingError` if the batch does not add up.
        """
        travellers = parsed.traveller_count
        counts = check_accounting(travellers, accounting, f"batch {self.batches}")
        for row in accounting.to_pylist():
            flight = row["flight_key"] or "(unreadable)"
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
        rows, total = quarantine_listing(
            outcomes, messages, message_issues, limit=self.listing_limit
        )
        self.listing.extend(rows[: self.listing_limit - len(self.listing)])
        self.listing_total += total

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
