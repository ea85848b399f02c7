"""The exactly-once audit: every traveller accounted for once, every record published once.

Where reconciliation looks for work left undone, the audit proves the invariants over the
whole history (it reads every ledger outcome and every drop, so it is slower and meant for
after incidents, fault-injection tests and periodic assurance):

1. every source object still in the source has exactly one outcome in the ledger, and its
   traveller counts (published + out of scope + duplicate + quarantined) add up to the
   travellers in the object, counted again here from the object's bytes;
2. every traveller the ledger counts as quarantined has a quarantine row with a reason,
   written by the run the ledger names, and no run quarantined an object it did not finish;
3. every complete drop verifies against its manifest (files, sizes, sha256, rows);
4. no ``record_id`` + ``manifest_revision`` appears in more than one published row;
5. the rows in the drops equal the travellers the ledger says were published;
6. no partner folder lacks ``_SUCCESS`` beyond the grace period (orphans).

The report holds object keys, drop ids, record ids and counts: no personal data.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow.compute as pc

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.ingest.manifests import ObjectToRead, read_manifests
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.publish.partner import list_drops, verify_drops
from manifest_exchange.storage.ledger import Ledger
from manifest_exchange.storage.s3 import (
    BotoDownloader,
    S3Client,
    S3Location,
    get_bytes,
    get_many,
    iter_objects,
    read_parquet,
)

_RECORD_COLUMNS = ["record_id", "manifest_revision"]


@dataclass
class AuditReport:
    """The invariants' findings; :attr:`ok` is True only if every one holds."""

    audited_at: str
    source_objects: int = 0
    objects_recounted: int = 0
    source_travellers: int = 0
    ledger_outcomes: int = 0
    drops_verified: int = 0
    published_rows: int = 0
    ledger_published: int = 0
    not_yet_processed: list[str] = field(default_factory=list)
    miscounted_objects: list[dict[str, Any]] = field(default_factory=list)
    ledger_quarantined: int = 0
    quarantine_rows: int = 0
    quarantine_mismatches: list[dict[str, Any]] = field(default_factory=list)
    drop_problems: dict[str, list[str]] = field(default_factory=dict)
    duplicate_publications: list[dict[str, Any]] = field(default_factory=list)
    orphan_drops: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.miscounted_objects
            or self.quarantine_mismatches
            or self.drop_problems
            or self.duplicate_publications
            or self.orphan_drops
            or self.published_rows != self.ledger_published
        )

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}


def audit(
    client: S3Client,
    *,
    source: S3Location,
    state: S3Location,
    partner: S3Location,
    agreement: Agreement,
    grace: dt.timedelta = dt.timedelta(minutes=10),
    now: dt.datetime | None = None,
) -> AuditReport:
    """Check the invariants over everything under ``source``, ``state`` and ``partner``.

    Objects that landed within ``grace`` and have no outcome yet are listed as not yet
    processed without failing the audit; older ones count as miscounted (zero accounted).
    """
    now = now or dt.datetime.now(dt.UTC)
    report = AuditReport(audited_at=now.isoformat())
    ledger = Ledger(client, state, claim_timeout_s=0)
    outcomes = {ref: outcome.body for ref, outcome in ledger.outcomes(source).items()}
    report.ledger_outcomes = len(outcomes)
    report.ledger_published = sum(_count(done, "published") for done in outcomes.values())

    listed = [info for info in iter_objects(client, source) if not info.key.endswith("/")]
    report.source_objects = len(listed)
    counted = _travellers_per_object(client, source, listed, agreement)
    report.objects_recounted = len(counted)
    report.source_travellers = sum(counted.values())
    for info in listed:
        done = outcomes.get((info.key, info.etag))
        if done is None:
            if now - info.last_modified <= grace:
                report.not_yet_processed.append(info.key)
                continue
            accounted = 0
        else:
            accounted = sum(_count(done, outcome) for outcome in _outcomes(done))
        if accounted != counted[info.key]:
            report.miscounted_objects.append(
                {"key": info.key, "travellers": counted[info.key], "accounted": accounted}
            )
    _check_quarantine(client, state, listed, outcomes, report)

    version = agreement.schema_version
    verified = verify_drops(client, partner, schema_version=version)
    report.drops_verified = len(verified.drops)
    report.drop_problems = {d.drop_id: d.problems for d in verified.drops if d.problems}
    report.published_rows = sum(d.rows for d in verified.drops)
    for drop_id, objects in sorted(list_drops(client, partner, version).items()):
        newest = max(info.last_modified for info in objects.values())
        if SUCCESS_MARKER not in objects and now - newest > grace:
            report.orphan_drops.append(drop_id)
    report.duplicate_publications = _duplicate_publications(
        client, drops_root(partner, version), [d.drop_id for d in verified.drops]
    )
    return report


def _check_quarantine(
    client: S3Client,
    state: S3Location,
    listed: list[Any],
    outcomes: dict[tuple[str, str], dict[str, Any]],
    report: AuditReport,
) -> None:
    """Hold each listed object's quarantined count in the ledger against the quarantine rows
    with a reason, per run: the finishing run's rows must match, and no other run may have
    quarantined the object (that would be a record written twice)."""
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for (run_id, key), count in _quarantined_per_run_and_object(client, state).items():
        if count:
            found[key][run_id] = count
    for info in listed:
        done = outcomes.get((info.key, info.etag))
        finished_by = str(done.get("run_id")) if done else None
        expected = _count(done, "quarantined") if done else 0
        report.ledger_quarantined += expected
        by_run = found.get(info.key, {})
        rows = by_run.get(finished_by, 0) if finished_by else 0
        report.quarantine_rows += rows
        others = {run: count for run, count in by_run.items() if run != finished_by}
        if rows != expected or others:
            report.quarantine_mismatches.append(
                {
                    "key": info.key,
                    "run_id": finished_by,
                    "ledger_quarantined": expected,
                    "quarantine_rows": rows,
                    "other_runs": others,
                }
            )


def _quarantined_per_run_and_object(
    client: S3Client, state: S3Location
) -> Counter[tuple[str, str]]:
    """Travellers in the quarantine with at least one reason, per (run id, object key): rows
    of ``travellers.parquet`` and the travellers of unreadable messages."""
    root = S3Location(state.bucket, state.key("quarantine"))
    wanted = {"travellers.parquet": ["object_key", "reasons"], "messages.parquet": None}
    keys = [
        info.key for info in iter_objects(client, root) if info.key.rpartition("/")[2] in wanted
    ]
    counts: Counter[tuple[str, str]] = Counter()
    for key, data in zip(keys, get_many(client, state.bucket, keys), strict=True):
        run_id = key[len(root.prefix) + 1 :].split("/", 1)[0]
        name = key.rpartition("/")[2]
        table = read_parquet(data, columns=wanted[name])
        if name == "travellers.parquet":
            reasons = pc.list_value_length(table["reasons"]).fill_null(0)
            with_reason = table.filter(pc.greater(reasons, 0))
            counts.update((run_id, k) for k in with_reason["object_key"].to_pylist())
            continue
        # Readable messages that failed a check have their travellers in travellers.parquet.
        unreadable = table.filter(pc.is_valid(table["parse_error"]))
        for object_key, persons in zip(
            unreadable["object_key"].to_pylist(),
            unreadable["person_count"].to_pylist(),
            strict=True,
        ):
            counts[(run_id, object_key)] += int(persons or 0)
    return counts


def _outcomes(done: dict[str, object]) -> list[str]:
    travellers = done.get("travellers")
    return list(travellers) if isinstance(travellers, dict) else []


def _count(done: dict[str, object], outcome: str) -> int:
    travellers = done.get("travellers")
    return int(travellers.get(outcome, 0)) if isinstance(travellers, dict) else 0


def _travellers_per_object(
    client: S3Client, source: S3Location, listed: list[Any], agreement: Agreement
) -> Counter[str]:
    """Travellers in each object, read again from its bytes (readable or not)."""
    received = dt.datetime.now(dt.UTC)
    parsed = read_manifests(
        BotoDownloader(client),
        [ObjectToRead(source.bucket, info.key, received, info.size) for info in listed],
        agreement,
    )
    counts: Counter[str] = Counter({info.key: 0 for info in listed})
    counts.update(parsed.persons["object_key"].to_pylist())
    unreadable = parsed.messages.filter(pc.is_valid(parsed.messages["error_code"]))
    for key, persons in zip(
        unreadable["object_key"].to_pylist(), unreadable["person_count"].to_pylist(), strict=True
    ):
        counts[key] += int(persons or 0)
    return counts


def _duplicate_publications(
    client: S3Client, root: S3Location, drop_ids: list[str]
) -> list[dict[str, Any]]:
    """(record_id, manifest_revision) pairs published in more than one row, with their drops."""
    seen: dict[tuple[str, int], list[str]] = defaultdict(list)
    for drop_id in drop_ids:
        folder = S3Location(root.bucket, root.key(drop_id))
        for info in iter_objects(client, folder):
            if not info.key.endswith(".parquet"):
                continue
            data = get_bytes(client, folder.bucket, info.key)
            table = read_parquet(data, columns=_RECORD_COLUMNS)
            for record_id, revision in zip(
                table["record_id"].to_pylist(), table["manifest_revision"].to_pylist(), strict=True
            ):
                seen[(record_id, revision)].append(drop_id)
    return [
        {"record_id": record_id, "manifest_revision": revision, "drops": drops}
        for (record_id, revision), drops in sorted(seen.items())
        if len(drops) > 1
    ]
