"""The pipeline's memory in its state bucket: which source objects were processed, by whom.

Layout under the state location (``s3://exchange-state/<prefix>``):

- ``ledger/<source bucket>/<source key>/<etag>/claim-000001.json``: a run's claim on one
  version of a source object, made with a conditional create so that of two runs racing for
  the same object exactly one wins. A claim older than the timeout with no ``done.json`` was
  left by a crashed run; the next run takes it over by creating the next claim number (again
  conditionally, so only one run takes it over).
- ``ledger/.../<etag>/done.json``: the object's outcome (sha256, counts, run id, drop id).
- ``locks/publish/00000001.json`` (+ ``.released``): the publish lock, by generation.

The ledger mirrors the source layout, so discovering ``paxlst/2026-12-01/`` lists exactly
``ledger/<bucket>/paxlst/2026-12-01/`` beside it, not the whole history.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    create_if_absent,
    iter_objects,
    put_bytes,
)

log = logging.getLogger(__name__)

_CLAIM_PREFIX = "claim-"
_CONCURRENCY = 16
_DONE = "done.json"


@dataclass(frozen=True)
class SourceRef:
    """One version of one source object."""

    bucket: str
    key: str
    etag: str
    size: int


@dataclass(frozen=True)
class Claim:
    """A run's exclusive hold on one source object version."""

    source: SourceRef
    claim_key: str
    run_id: str
    claimed_at: dt.datetime
    is_takeover: bool


@dataclass(frozen=True)
class Discovery:
    """What listing the source found, before claiming."""

    listed: int
    done: int
    claimed_by_others: int
    candidates: list[tuple[SourceRef, int]]  # with the next free claim number


class LockTimeoutError(RuntimeError):
    """The publish lock stayed held by another run for longer than we were willing to wait."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Ledger:
    """Claims and outcomes of source objects, kept in the state location.

    Args:
        client: an S3 client with read, write and list on the state bucket.
        state: the state location.
        claim_timeout_s: age after which an unfinished claim counts as abandoned.
    """

    def __init__(self, client: S3Client, state: S3Location, claim_timeout_s: float) -> None:
        self.client = client
        self.state = state
        self.claim_timeout_s = claim_timeout_s

    def _entry_prefix(self, bucket: str, key: str, etag: str) -> str:
        return self.state.key("ledger", bucket, key, etag)

    def discover(self, source: S3Location) -> Discovery:
        """List ``source`` and its ledger; return the object versions that need processing."""
        objects = list(iter_objects(self.client, source))
        entries = self._ledger_entries(source)
        candidates: list[tuple[SourceRef, int]] = []
        done = claimed = 0
        now = _now()
        for info in objects:
            if info.key.endswith("/"):
                continue  # folder markers some tools create
            files = entries.get((info.key, info.etag), {})
            if _DONE in files:
                done += 1
                continue
            claims = sorted(name for name in files if name.startswith(_CLAIM_PREFIX))
            if claims:
                latest = files[claims[-1]]
                age_s = (now - latest.last_modified).total_seconds()
                if age_s < self.claim_timeout_s:
                    claimed += 1
                    continue
            ref = SourceRef(source.bucket, info.key, info.etag, info.size)
            candidates.append((ref, len(claims) + 1))
        return Discovery(len(objects), done, claimed, candidates)

    def _ledger_entries(self, source: S3Location) -> dict[tuple[str, str], dict[str, ObjectInfo]]:
        root = self.state.key("ledger", source.bucket)
        listing = S3Location(
            self.state.bucket, self.state.key("ledger", source.bucket, source.prefix)
        )
        entries: dict[tuple[str, str], dict[str, ObjectInfo]] = defaultdict(dict)
        for info in iter_objects(self.client, listing):
            rest = info.key[len(root) + 1 :]
            key, _, tail = rest.rpartition("/")
            source_key, _, etag = key.rpartition("/")
            entries[(source_key, etag)][tail] = info
        return entries

    def claim(self, discovery: Discovery, run_id: str) -> list[Claim]:
        """Claim the discovered candidates; those another run claims first are skipped."""

        def claim_one(candidate: tuple[SourceRef, int]) -> Claim | None:
            ref, number = candidate
            claimed_at = _now()
            entry = self._entry_prefix(ref.bucket, ref.key, ref.etag)
            key = f"{entry}/{_CLAIM_PREFIX}{number:06d}.json"
            body = {"run_id": run_id, "claimed_at": claimed_at.isoformat(), **asdict(ref)}
            if create_if_absent(
                self.client, self.state.bucket, key, _json(body), content_type="application/json"
            ):
                return Claim(ref, key, run_id, claimed_at, is_takeover=number > 1)
            return None

        with ThreadPoolExecutor(max_workers=_CONCURRENCY) as pool:
            return [c for c in pool.map(claim_one, discovery.candidates) if c is not None]

    def finish_many(self, finished: list[tuple[Claim, dict[str, object]]]) -> int:
        """:meth:`finish` for many objects at once; returns how many were newly recorded."""
        with ThreadPoolExecutor(max_workers=_CONCURRENCY) as pool:
            return sum(pool.map(lambda item: self.finish(*item), finished))

    def finish(self, claim: Claim, outcome: dict[str, object]) -> bool:
        """Record the outcome of a claimed object; False if it was already recorded."""
        ref = claim.source
        key = f"{self._entry_prefix(ref.bucket, ref.key, ref.etag)}/{_DONE}"
        body = {**asdict(ref), "run_id": claim.run_id, "finished_at": _now().isoformat(), **outcome}
        return create_if_absent(
            self.client, self.state.bucket, key, _json(body), content_type="application/json"
        )


class PublishLock:
    """A lease held while a run compares with what was published and writes its drop.

    Generations make take-over safe: the holder of generation ``n`` writes ``n.json``; it is
    free once ``n.released`` exists or ``n.json`` is older than the timeout, and the next
    holder is whoever creates ``n+1.json`` first (a conditional create, so exactly one run).
    """

    def __init__(self, client: S3Client, state: S3Location, timeout_s: float) -> None:
        self.client = client
        self.prefix = S3Location(state.bucket, state.key("locks", "publish"))
        self.timeout_s = timeout_s

    def _latest(self) -> tuple[int, ObjectInfo | None, bool]:
        held: dict[int, ObjectInfo] = {}
        released: set[int] = set()
        for info in iter_objects(self.client, self.prefix):
            name = info.key.rsplit("/", 1)[1]
            stem, _, suffix = name.partition(".")
            if stem.isdigit():
                if suffix == "json":
                    held[int(stem)] = info
                elif suffix == "released":
                    released.add(int(stem))
        if not held:
            return 0, None, True
        generation = max(held)
        return generation, held[generation], generation in released

    @contextmanager
    def hold(self, run_id: str, wait_s: float = 600.0) -> Iterator[int]:
        """Hold the lock for the ``with`` block; yields the generation held."""
        generation = self._acquire(run_id, wait_s)
        try:
            yield generation
        finally:
            put_bytes(
                self.client,
                self.prefix.bucket,
                self.prefix.key(f"{generation:08d}.released"),
                _json({"run_id": run_id, "released_at": _now().isoformat()}),
            )

    def _acquire(self, run_id: str, wait_s: float) -> int:
        deadline = time.monotonic() + wait_s
        while True:
            generation, info, is_released = self._latest()
            is_expired = (
                info is not None and (_now() - info.last_modified).total_seconds() >= self.timeout_s
            )
            if is_released or is_expired:
                if is_expired and not is_released:
                    log.warning("publish lock %d was abandoned; taking it over", generation)
                body = {"run_id": run_id, "acquired_at": _now().isoformat()}
                key = self.prefix.key(f"{generation + 1:08d}.json")
                if create_if_absent(self.client, self.prefix.bucket, key, _json(body)):
                    return generation + 1
                continue  # another run took it between our listing and our create
            if time.monotonic() > deadline:
                raise LockTimeoutError(
                    f"publish lock generation {generation} still held after {wait_s:.0f}s"
                )
            time.sleep(0.2)

    def is_held_by(self, generation: int) -> bool:
        """True while no later generation exists (nobody took the lock over from us)."""
        latest, _, is_released = self._latest()
        return latest == generation and not is_released


def _json(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, default=str).encode("utf-8")
