"""Leases in the state bucket (``locks/<name>/<generation>.json``): the publish lock, which
serialises deciding and publishing batches across runs, and the ledger's claim lock."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from manifest_exchange.storage.s3 import (
    ObjectInfo,
    S3Client,
    S3Location,
    create_if_absent,
    delete_keys,
    iter_objects,
    json_bytes,
    put_bytes,
)

log = logging.getLogger(__name__)


class LockTimeoutError(RuntimeError):
    """A lock stayed held by another run for longer than we were willing to wait."""


class StateLock:
    """A lease in the state bucket (``locks/<name>/``), taken over when its holder stalls.

    Generations make take-over safe: the holder of generation ``n`` writes ``n.json``; it is
    free once ``n.released`` exists or ``n.json`` is older than the timeout, and the next
    holder is whoever creates ``n+1.json`` first (a conditional create, so exactly one run).
    The new holder deletes the files of earlier generations, so the folder stays a few files
    long however often the lock is taken.
    """

    def __init__(self, client: S3Client, state: S3Location, name: str, timeout_s: float) -> None:
        self.client = client
        self.prefix = S3Location(state.bucket, state.key("locks", name))
        self.timeout_s = timeout_s

    def _latest(
        self, listing: tuple[dict[int, ObjectInfo], dict[int, ObjectInfo]] | None = None
    ) -> tuple[int, ObjectInfo | None, bool]:
        held, released = listing or self._generations()
        if not held:
            return 0, None, True
        generation = max(held)
        return generation, held[generation], generation in released

    def _generations(self) -> tuple[dict[int, ObjectInfo], dict[int, ObjectInfo]]:
        held: dict[int, ObjectInfo] = {}
        released: dict[int, ObjectInfo] = {}
        for info in iter_objects(self.client, self.prefix):
            name = info.key.rsplit("/", 1)[1]
            stem, _, suffix = name.partition(".")
            if stem.isdigit():
                if suffix == "json":
                    held[int(stem)] = info
                elif suffix == "released":
                    released[int(stem)] = info
        return held, released

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
                json_bytes({"run_id": run_id, "released_at": _now().isoformat()}),
            )

    def _acquire(self, run_id: str, wait_s: float) -> int:
        deadline = time.monotonic() + wait_s
        while True:
            listing = self._generations()
            generation, info, is_released = self._latest(listing)
            is_expired = (
                info is not None and (_now() - info.last_modified).total_seconds() >= self.timeout_s
            )
            if is_released or is_expired:
                if is_expired and not is_released:
                    log.warning("%s %d was abandoned; taking it over", self._name, generation)
                body = {"run_id": run_id, "acquired_at": _now().isoformat()}
                key = self.prefix.key(f"{generation + 1:08d}.json")
                if create_if_absent(self.client, self.prefix.bucket, key, json_bytes(body)):
                    # Only the latest generation counts: what the listing showed can go. A
                    # release written after it is left for the next holder to delete.
                    old = [i.key for files in listing for i in files.values()]
                    delete_keys(self.client, self.prefix.bucket, old)
                    return generation + 1
                continue  # another run took it between our listing and our create
            if time.monotonic() > deadline:
                raise LockTimeoutError(
                    f"{self._name} generation {generation} still held after {wait_s:.0f}s"
                )
            time.sleep(0.2)

    @property
    def _name(self) -> str:
        return f"lock {self.prefix.prefix.rsplit('/', 1)[-1]}"

    def is_held_by(self, generation: int) -> bool:
        """True while no later generation exists (nobody took the lock over from us)."""
        latest, _, is_released = self._latest()
        return latest == generation and not is_released


class PublishLock(StateLock):
    """Held while a run compares a batch with what was published and writes its drop."""

    def __init__(self, client: S3Client, state: S3Location, timeout_s: float) -> None:
        super().__init__(client, state, "publish", timeout_s)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
