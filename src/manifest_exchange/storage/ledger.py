"""The pipeline's memory in its state bucket: which source objects were processed, by whom.

Layout under the state location (``s3://exchange-state/<prefix>``):

- ``claims/<source bucket>/<time>-<run>-<id>.json``: a run's claim on the object versions it
  is about to process, one record per run (not one per object: a claim is a few requests
  whatever the run's size). Records are named by time, so discovery lists only the recent
  ones. Claiming happens under the claim lock (``locks/claim/``): the claimant reads the live
  records, writes its own for the objects nobody holds, then checks it still holds the lock;
  if another run took the lock over meanwhile, it withdraws its record and claims nothing. A
  claim older than the timeout on an object with no recorded outcome was left by a crashed
  run and the object is claimed again (a take-over).
- ``ledger/<source bucket>/<source folder>/<time>-<run>-<id>.outcomes.json``: an *outcome
  sheet*, the outcomes (sha256, counts, run id, drop id) of the objects of one folder that one
  batch finished. One write per batch and folder, not one per object (decision 0002). An object's
  outcome is the one recorded first; a later one (a recovered publish recording its batch
  again) changes nothing. Discovery reads only the sheets of folders that still hold source
  objects (retention empties old ones) and compacts a folder's sheets into one once there are
  more than :data:`COMPACT_AFTER_SHEETS`.
- ``locks/<name>/00000001.json`` (+ ``.released``): the publish and claim locks, by generation
  (:mod:`.locks`).

The ledger mirrors the source folders, so discovering ``paxlst/2026-12-01/`` lists exactly
``ledger/<bucket>/paxlst/2026-12-01/`` beside it, not the whole history.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import botocore.exceptions

from manifest_exchange.storage.locks import StateLock
from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    delete_keys,
    delete_many,
    get_many,
    iter_objects,
    json_bytes,
    put_bytes,
    put_many,
)

log = logging.getLogger(__name__)


CLAIMS = "claims"


OUTCOME_SHEET_SUFFIX = ".outcomes.json"


# A folder with more sheets than this is compacted into one by the next discovery: a run every
# minute writes a sheet a minute, and reading them should stay a few requests.
COMPACT_AFTER_SHEETS = 32


_SHEET_READ_ATTEMPTS = 5


# Claim records are listed from this long (beyond the claim timeout) before now: room for
# the clocks of the hosts that name the records to differ.
_CLOCK_MARGIN = dt.timedelta(minutes=5)


_RECORD_TIME = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class SourceRef:
    """One version of one source object."""

    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Claim:
    """A run's exclusive hold on one source object version.

    Attributes:
        claim_key: the claim record that holds it (one record per claiming run).
        is_takeover: an earlier claim on the object expired without an outcome.
    """

    source: SourceRef
    claim_key: str
    run_id: str
    claimed_at: dt.datetime
    is_takeover: bool


@dataclass(frozen=True)
class ClaimRecord:
    """One run's claim record: which object versions it claimed, when."""

    key: str
    run_id: str
    claimed_at: dt.datetime
    written_at: dt.datetime  # the store's time, which decides when the claim expires
    objects: list[SourceRef]


@dataclass(frozen=True)
class Outcome:
    """What happened to one source object version, as first recorded.

    ``body`` holds the object (bucket, key, etag, size), ``run_id``, ``finished_at``,
    ``sha256``, ``object_error``, ``travellers`` (counts per outcome) and ``drop_id``.
    """

    sheet_key: str
    recorded_at: dt.datetime  # the store's time of the first sheet that recorded it
    body: dict[str, Any]


@dataclass(frozen=True)
class Discovery:
    """What listing the source found, before claiming.

    Attributes:
        listed: objects under the source location.
        done: of those, already processed.
        claimed_by_others: claimed by another run that is still within the claim timeout.
        candidates: object versions to claim, in key order, each with the attempt it
            would be (1, or more for an object whose earlier claims expired).
        own_claims: claims this run already holds (made by an earlier attempt of a task
            that was retried), so a retry carries on with them instead of waiting them out.
        outside_window: objects skipped because they landed outside the requested window.
    """

    listed: int
    done: int
    claimed_by_others: int
    candidates: list[tuple[SourceRef, int]]
    own_claims: list[Claim] = field(default_factory=list)
    outside_window: int = 0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Ledger:
    """Claims and outcomes of source objects, kept in the state location.

    Args:
        client: an S3 client with read, write and list on the state bucket.
        state: the state location.
        claim_timeout_s: age after which an unfinished claim counts as abandoned.
        claim_lock_timeout_s: age after which the claim lock counts as abandoned. It is held
            for a listing and one write, so a crashed holder should not block for long.
    """

    def __init__(
        self,
        client: S3Client,
        state: S3Location,
        claim_timeout_s: float,
        claim_lock_timeout_s: float = 60.0,
    ) -> None:
        self.client = client
        self.state = state
        self.claim_timeout_s = claim_timeout_s
        self.claim_lock = StateLock(client, state, "claim", claim_lock_timeout_s)
        self._records: dict[str, ClaimRecord] = {}  # read once per ledger: records never change

    def discover(
        self,
        source: S3Location,
        *,
        run_id: str | None = None,
        landed_from: dt.datetime | None = None,
        landed_until: dt.datetime | None = None,
    ) -> Discovery:
        """List ``source``, its ledger and the recent claims; return the object versions that
        need processing.

        Args:
            source: where manifests land.
            run_id: the discovering run; its own live claims come back as ``own_claims``.
            landed_from: skip objects that landed (were last written) before this time.
            landed_until: skip objects that landed at or after this time.
        """
        objects = list(iter_objects(self.client, source))
        folders = {info.key.rpartition("/")[0] for info in objects}
        outcomes = self.outcomes(source, folders=folders, compact=True)
        now = _now()
        claims = self.claims_by_object(source.bucket, since=self._claims_horizon(now))
        candidates: list[tuple[SourceRef, int]] = []
        live_claims = done = outside = 0
        own: list[Claim] = []
        for info in objects:
            if info.key.endswith("/"):
                continue  # folder markers some tools create
            if (landed_from and info.last_modified < landed_from) or (
                landed_until and info.last_modified >= landed_until
            ):
                outside += 1
                continue
            if (info.key, info.etag) in outcomes:
                done += 1
                continue
            ref = SourceRef(source.bucket, info.key, info.etag, info.size)
            records = claims.get((info.key, info.etag), [])
            live = [r for r in records if self._is_live(r, now)]
            if live:
                live_claims += 1
                mine = [r for r in live if r.run_id == run_id]
                if run_id and mine:
                    record = mine[-1]
                    is_takeover = len(records) > len(mine)
                    own.append(Claim(ref, record.key, run_id, record.claimed_at, is_takeover))
                continue
            candidates.append((ref, len(records) + 1))
        return Discovery(
            listed=len(objects),
            done=done,
            claimed_by_others=live_claims - len(own),
            candidates=candidates,
            own_claims=own,
            outside_window=outside,
        )

    def _is_live(self, record: ClaimRecord, now: dt.datetime) -> bool:
        return (now - record.written_at).total_seconds() < self.claim_timeout_s

    def _claims_horizon(self, now: dt.datetime) -> dt.datetime:
        """Records written before this cannot matter to discovery: they expired long ago."""
        return now - 2 * dt.timedelta(seconds=self.claim_timeout_s) - _CLOCK_MARGIN

    def claim_records(self, bucket: str, *, since: dt.datetime) -> list[ClaimRecord]:
        """Claim records on objects of ``bucket`` named from ``since`` on (a listing and one
        read per record not read before)."""
        folder = S3Location(self.state.bucket, self.state.key(CLAIMS, bucket))
        start_after = folder.key(since.astimezone(dt.UTC).strftime(_RECORD_TIME))
        listed = list(iter_objects(self.client, folder, start_after=start_after))
        new = [info for info in listed if info.key not in self._records]
        bodies = get_many(self.client, self.state.bucket, [info.key for info in new])
        for info, body in zip(new, bodies, strict=True):
            content = json.loads(body)
            self._records[info.key] = ClaimRecord(
                key=info.key,
                run_id=content["run_id"],
                claimed_at=dt.datetime.fromisoformat(content["claimed_at"]),
                written_at=info.last_modified,
                objects=[
                    SourceRef(bucket, o["key"], o["etag"], o["size"]) for o in content["objects"]
                ],
            )
        return [self._records[info.key] for info in listed]

    def claims_by_object(
        self, bucket: str, *, since: dt.datetime
    ) -> dict[tuple[str, str], list[ClaimRecord]]:
        """(source key, etag) -> the claim records naming it, oldest first."""
        by_object: dict[tuple[str, str], list[ClaimRecord]] = defaultdict(list)
        for record in self.claim_records(bucket, since=since):
            for ref in record.objects:
                by_object[(ref.key, ref.etag)].append(record)
        return by_object

    def outcomes(
        self, source: S3Location, *, folders: set[str] | None = None, compact: bool = False
    ) -> dict[tuple[str, str], Outcome]:
        """(source key, etag) -> outcome, for every recorded object under ``source``.

        Lists the ledger folder beside ``source`` and reads its outcome sheets (one read per
        sheet; a sheet covers a batch). The earliest recorded outcome of an object decides.

        Args:
            folders: read only the sheets of these source folders (discovery passes the
                folders it listed objects in: once retention has emptied a folder, its sheets
                are no longer read).
            compact: merge the sheets of a folder that has more than
                :data:`COMPACT_AFTER_SHEETS` into one, so the reads stay few however many
                runs wrote there.
        """
        outcomes: dict[tuple[str, str], Outcome] = {}
        sheets_by_folder: dict[str, list[ObjectInfo]] = defaultdict(list)
        for info, entries in self._read_sheets(source, folders):
            sheets_by_folder[self._sheet_folder(source.bucket, info.key)].append(info)
            for entry in entries:
                recorded_at = _recorded_at(entry, info)
                ref = (entry["key"], entry["etag"])
                known = outcomes.get(ref)
                if known is None or recorded_at < known.recorded_at:
                    outcomes[ref] = Outcome(info.key, recorded_at, entry)
        if compact:
            for folder, sheets in sheets_by_folder.items():
                if len(sheets) > COMPACT_AFTER_SHEETS:
                    # A sheet holds objects of its own folder only, so these are all of the
                    # folder's outcomes, each as first recorded.
                    kept = [
                        o for (key, _), o in outcomes.items() if key.rpartition("/")[0] == folder
                    ]
                    self._compact(source.bucket, folder, sheets, kept)
        return outcomes

    def _sheet_folder(self, bucket: str, sheet_key: str) -> str:
        """The source folder an outcome sheet belongs to."""
        root = self.state.key("ledger", bucket) + "/"
        return sheet_key[len(root) :].rpartition("/")[0]

    def _read_sheets(
        self, source: S3Location, folders: set[str] | None
    ) -> list[tuple[ObjectInfo, list[dict[str, Any]]]]:
        listing = S3Location(
            self.state.bucket, self.state.key("ledger", source.bucket, source.prefix)
        )
        for _ in range(_SHEET_READ_ATTEMPTS):
            sheets = [
                info
                for info in iter_objects(self.client, listing)
                if info.key.endswith(OUTCOME_SHEET_SUFFIX)
                and (folders is None or self._sheet_folder(source.bucket, info.key) in folders)
            ]
            try:
                bodies = get_many(self.client, self.state.bucket, [info.key for info in sheets])
            except botocore.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") not in {"NoSuchKey", "404"}:
                    raise
                # Compacted meanwhile: the merged sheet was written before this one was
                # deleted, so listing again finds it. Skipping would lose outcomes.
                continue
            return [
                (info, json.loads(body)["outcomes"])
                for info, body in zip(sheets, bodies, strict=True)
            ]
        raise RuntimeError(
            f"outcome sheets under {listing} kept vanishing while being read "
            f"({_SHEET_READ_ATTEMPTS} attempts)"
        )

    def _compact(
        self, bucket: str, folder: str, sheets: list[ObjectInfo], kept: list[Outcome]
    ) -> None:
        """Replace a folder's ``sheets`` by one holding ``kept``, its outcomes as first recorded.

        The merged sheet is written before anything is deleted, and each entry keeps the time
        it was first recorded, so a reader sees every outcome, with the same earliest one, at
        every moment; two runs compacting at once only leave two equal sheets behind.
        """
        now = _now()
        key = self.state.key(
            "ledger",
            bucket,
            folder,
            f"{now.strftime(_RECORD_TIME)}-compacted-{uuid.uuid4().hex[:8]}{OUTCOME_SHEET_SUFFIX}",
        )
        entries = [{**o.body, "recorded_at": o.recorded_at.isoformat()} for o in kept]
        body = {"compacted_at": now.isoformat(), "outcomes": entries}
        put_bytes(
            self.client, self.state.bucket, key, json_bytes(body), content_type="application/json"
        )
        delete_many(self.client, self.state.bucket, [info.key for info in sheets])
        log.info("compacted %d outcome sheets of %d objects into one", len(sheets), len(kept))

    def claim(self, discovery: Discovery, run_id: str, wait_s: float = 600.0) -> list[Claim]:
        """Claim the discovered candidates that no run holds; returns this run's claims.

        Under the claim lock: read the records written since discovery, write one record
        for the candidates still free, then check the lock was not taken over meanwhile (a
        run that took it over could not have seen our record). If it was, the record is
        withdrawn and nothing is claimed: the objects wait for the next run.
        """
        if not discovery.candidates:
            return []
        buckets = {ref.bucket for ref, _ in discovery.candidates}
        if len(buckets) != 1:
            raise ValueError(f"candidates from more than one bucket: {sorted(buckets)}")
        bucket = buckets.pop()
        with self.claim_lock.hold(run_id, wait_s) as generation:
            now = _now()
            claims = self.claims_by_object(bucket, since=self._claims_horizon(now))
            free = [
                (ref, attempt)
                for ref, attempt in discovery.candidates
                if not any(self._is_live(r, now) for r in claims.get((ref.key, ref.etag), []))
            ]
            if not free:
                return []
            claimed_at = _now()
            key = self.state.key(
                CLAIMS,
                bucket,
                f"{claimed_at.strftime(_RECORD_TIME)}-{run_id.replace('-', '')[:12]}-"
                f"{uuid.uuid4().hex[:8]}.json",
            )
            body = {
                "run_id": run_id,
                "claimed_at": claimed_at.isoformat(),
                "objects": [{"key": r.key, "etag": r.etag, "size": r.size} for r, _ in free],
            }
            put_bytes(
                self.client,
                self.state.bucket,
                key,
                json_bytes(body),
                content_type="application/json",
            )
            if not self.claim_lock.is_held_by(generation):
                delete_keys(self.client, self.state.bucket, [key])
                log.warning("the claim lock was taken over while claiming; claimed nothing")
                return []
        claimed = [Claim(ref, key, run_id, claimed_at, is_takeover=n > 1) for ref, n in free]
        log.info(
            "claimed %d of %d candidate objects (%d taken over from stalled runs)",
            len(claimed),
            len(discovery.candidates),
            sum(c.is_takeover for c in claimed),
        )
        return claimed

    def finish_many(self, finished: list[tuple[Claim, dict[str, object]]]) -> int:
        """Record the outcomes of claimed objects: one sheet per source folder.

        Returns how many outcomes were written. Recording an object again (a recovered
        publish does) adds a later sheet that readers ignore for it.
        """
        by_folder: dict[tuple[str, str], list[dict[str, object]]] = defaultdict(list)
        finished_at = _now()
        run_ids = {claim.run_id for claim, _ in finished}
        for claim, outcome in finished:
            ref = claim.source
            entry = {
                **asdict(ref),
                "run_id": claim.run_id,
                "finished_at": finished_at.isoformat(),
                **outcome,
            }
            by_folder[(ref.bucket, ref.key.rpartition("/")[0])].append(entry)
        run = run_ids.pop().replace("-", "")[:12] if len(run_ids) == 1 else "runs"
        sheets = [
            (
                self.state.key(
                    "ledger",
                    bucket,
                    folder,
                    f"{finished_at.strftime(_RECORD_TIME)}-{run}-{uuid.uuid4().hex[:8]}"
                    f"{OUTCOME_SHEET_SUFFIX}",
                ),
                json_bytes({"finished_at": finished_at.isoformat(), "outcomes": entries}),
            )
            for (bucket, folder), entries in sorted(by_folder.items())
        ]
        put_many(self.client, self.state.bucket, sheets, content_type="application/json")
        return len(finished)

    def finish(self, claim: Claim, outcome: dict[str, object]) -> None:
        """Record the outcome of one claimed object."""
        self.finish_many([(claim, outcome)])


def _recorded_at(entry: Mapping[str, Any], sheet: ObjectInfo) -> dt.datetime:
    """When an outcome was first recorded: kept in the entry by compaction, else its sheet's
    time in the store."""
    recorded = entry.get("recorded_at")
    return dt.datetime.fromisoformat(recorded) if isinstance(recorded, str) else sheet.last_modified
