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
from dataclasses import asdict, dataclass, field

from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    create_if_absent,
    get_many,
    iter_objects,
    put_bytes,
)

log = logging.getLogger(__name__)

CLAIM_PREFIX = "claim-"
_CONCURRENCY = 16
DONE = "done.json"


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
    """What listing the source found, before claiming.

    Attributes:
        listed: objects under the source location.
        done: of those, already processed.
        claimed_by_others: claimed by another run that is still within the claim timeout.
        candidates: object versions to claim, each with the next free claim number.
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

    def discover(
        self,
        source: S3Location,
        *,
        run_id: str | None = None,
        landed_from: dt.datetime | None = None,
        landed_until: dt.datetime | None = None,
    ) -> Discovery:
        """List ``source`` and its ledger; return the object versions that need processing.

        Args:
            source: where manifests land.
            run_id: the discovering run; its own live claims come back as ``own_claims``.
            landed_from: skip objects that landed (were last written) before this time.
            landed_until: skip objects that landed at or after this time.
        """
        objects = list(iter_objects(self.client, source))
        entries = self.entries(source)
        candidates: list[tuple[SourceRef, int]] = []
        live_claims: list[tuple[SourceRef, ObjectInfo]] = []
        done = outside = 0
        now = _now()
        for info in objects:
            if info.key.endswith("/"):
                continue  # folder markers some tools create
            if (landed_from and info.last_modified < landed_from) or (
                landed_until and info.last_modified >= landed_until
            ):
                outside += 1
                continue
            files = entries.get((info.key, info.etag), {})
            if DONE in files:
                done += 1
                continue
            ref = SourceRef(source.bucket, info.key, info.etag, info.size)
            claims = sorted(name for name in files if name.startswith(CLAIM_PREFIX))
            if claims:
                latest = files[claims[-1]]
                age_s = (now - latest.last_modified).total_seconds()
                if age_s < self.claim_timeout_s:
                    live_claims.append((ref, latest))
                    continue
            candidates.append((ref, len(claims) + 1))
        own = self._own_claims(live_claims, run_id) if run_id else []
        return Discovery(
            listed=len(objects),
            done=done,
            claimed_by_others=len(live_claims) - len(own),
            candidates=candidates,
            own_claims=own,
            outside_window=outside,
        )

    def _own_claims(
        self, live_claims: list[tuple[SourceRef, ObjectInfo]], run_id: str
    ) -> list[Claim]:
        """The live claims made by ``run_id`` (one read per live claim; there are few)."""
        keys = [info.key for _, info in live_claims]
        bodies = get_many(self.client, self.state.bucket, keys)
        own = []
        for (ref, info), body in zip(live_claims, bodies, strict=True):
            claim = json.loads(body)
            if claim.get("run_id") == run_id:
                number = int(info.key.rsplit(CLAIM_PREFIX, 1)[1].split(".")[0])
                claimed_at = dt.datetime.fromisoformat(claim["claimed_at"])
                own.append(Claim(ref, info.key, run_id, claimed_at, is_takeover=number > 1))
        return own

    def entries(self, source: S3Location) -> dict[tuple[str, str], dict[str, ObjectInfo]]:
        """(source key, etag) -> (ledger file name -> object) for everything under ``source``."""
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
            key = f"{entry}/{CLAIM_PREFIX}{number:06d}.json"
            body = {"run_id": run_id, "claimed_at": claimed_at.isoformat(), **asdict(ref)}
            if create_if_absent(
                self.client, self.state.bucket, key, _json(body), content_type="application/json"
            ):
                return Claim(ref, key, run_id, claimed_at, is_takeover=number > 1)
            return None

        with ThreadPoolExecutor(max_workers=_CONCURRENCY) as pool:
            claims = [c for c in pool.map(claim_one, discovery.candidates) if c is not None]
        log.info(
            "claimed %d of %d candidate objects (%d taken over from stalled runs)",
            len(claims),
            len(discovery.candidates),
            sum(c.is_takeover for c in claims),
        )
        return claims

    def read_done(self, entries: list[dict[str, ObjectInfo]]) -> list[dict[str, object]]:
        """The ``done.json`` bodies of finished entries (as :meth:`entries` returns them)."""
        keys = [files[DONE].key for files in entries]
        return [json.loads(body) for body in get_many(self.client, self.state.bucket, keys)]

    def finish_many(self, finished: list[tuple[Claim, dict[str, object]]]) -> int:
        """:meth:`finish` for many objects at once; returns how many were newly recorded."""
        with ThreadPoolExecutor(max_workers=_CONCURRENCY) as pool:
            return sum(pool.map(lambda item: self.finish(*item), finished))

    def finish(self, claim: Claim, outcome: dict[str, object]) -> bool:
        """Record the outcome of a claimed object; False if it was already recorded."""
        ref = claim.source
        key = f"{self._entry_prefix(ref.bucket, ref.key, ref.etag)}/{DONE}"
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
