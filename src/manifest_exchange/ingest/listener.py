"""The landing listener: landings in, small batches of exchange work out, a checkpoint kept.

:class:`LandingListener` follows a landing source (:mod:`.landings`), drops repeats, gathers
what lands into batches that are due after a short linger, and hands each batch to a handler
(the flow runs the exchange over it). After each batch it writes its checkpoint to the state
bucket: the moment from which a restarted listener follows again, so a landing that arrived
while it was down is replayed, not missed. Replays reach the exchange as new work only if the
ledger has not settled them, so nothing is processed twice.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from manifest_exchange.ingest.landings import Landing, LandingFilter, Linger
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    get_bytes_if_present,
    json_bytes,
    put_bytes,
)

log = logging.getLogger(__name__)

CHECKPOINT = "listener/checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    """Where a restarted listener follows from (``since_ns``) and how far it had handled."""

    since_ns: int
    handled_landings: int = 0

    @classmethod
    def load(cls, client: S3Client, state: S3Location, default_since_ns: int) -> Checkpoint:
        """The saved checkpoint; without one, ``default_since_ns``, saved at once so that a
        listener killed before its first batch finished is resumed from its start."""
        data = get_bytes_if_present(client, state.bucket, state.key(CHECKPOINT))
        if data is None:
            first = cls(default_since_ns)
            first.save(client, state)
            return first
        raw = json.loads(data)
        return cls(int(raw["since_ns"]), int(raw.get("handled_landings", 0)))

    def save(self, client: S3Client, state: S3Location) -> None:
        body = {
            "since_ns": self.since_ns,
            "handled_landings": self.handled_landings,
            "saved_at_ns": time.time_ns(),
        }
        put_bytes(
            client,
            state.bucket,
            state.key(CHECKPOINT),
            json_bytes(body),
            content_type="application/json",
        )


def batch_prefix(landings: list[Landing]) -> str:
    """The narrowest folder holding every landing of a batch: what its exchange run lists."""
    folders = [posixpath.dirname(landing.key) for landing in landings]
    common = posixpath.commonpath(folders) if folders else ""
    return common


# A source of landings: yields a landing, or None when a poll passed without one.
LandingStream = Callable[[int], Iterator[Landing | None]]
# The landings a listing of the store shows since a time: the catch-up on each (re)start.
CatchUp = Callable[[int], list[Landing]]
# Runs the exchange over one batch of landings.
BatchHandler = Callable[[list[Landing]], object]
# Told of each new landing (the flow emits an event) and of each pass of the loop.
LandingHook = Callable[[Landing], None]
TickHook = Callable[["ListenerStatus"], None]


@dataclass
class ListenerStatus:
    """How the listener is doing: for its heartbeat and for the tests."""

    landings: int = 0
    repeats: int = 0
    batches: int = 0
    waiting: int = 0
    oldest_waiting_ns: int | None = None
    last_landing_ns: int | None = None

    def lag_s(self, now_ns: int) -> float:
        """How long the oldest landing not yet handled has waited."""
        if self.oldest_waiting_ns is None:
            return 0.0
        return max(now_ns - self.oldest_waiting_ns, 0) / 1e9


class LandingListener:
    """Follow, filter, linger, hand over, checkpoint.

    Args:
        client, state: where the checkpoint is kept (the pipeline's state location).
        stream: follows landings from a time (``FilerChangeLog.follow`` or an SQS source).
        catch_up: lists what changed since the checkpoint (``listed_landings``), taken on
            every (re)start before the stream, so a restart misses nothing even when the
            stream's own replay fails; repeats of it in the stream are dropped.
        handle: runs the exchange over a batch; the checkpoint moves only after it returns.
        linger_s, max_landings: when a batch is due (:class:`Linger`).
    """

    def __init__(
        self,
        client: S3Client,
        state: S3Location,
        stream: LandingStream,
        handle: BatchHandler,
        *,
        linger_s: float = 1.0,
        max_landings: int = 500,
        on_landing: LandingHook | None = None,
        on_tick: TickHook | None = None,
        catch_up: CatchUp | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.stream = stream
        self.catch_up = catch_up
        self.handle = handle
        self.linger = Linger(linger_s, max_landings)
        self.filter = LandingFilter()
        self.on_landing = on_landing
        self.on_tick = on_tick
        self.status = ListenerStatus()

    def run(self, *, until: Callable[[], bool] = lambda: False) -> ListenerStatus:
        """Listen until ``until()`` is true (checked at every pass).

        A stream that fails (the store restarted under it) is followed again from the
        checkpoint; a batch whose run fails (the Prefect API away) is tried again after a
        pause. Neither loses a landing: the checkpoint never passes one not yet handled.
        """
        pause_s = 1.0
        failures = 0
        while not until():
            checkpoint = Checkpoint.load(self.client, self.state, default_since_ns=time.time_ns())
            try:
                # After two failures in a row the stream starts from now: the catch-up
                # listing has what came before, and a replay that keeps failing cannot.
                self._follow(checkpoint, until, replay=failures < 2 or self.catch_up is None)
                return self.status
            except Exception as error:  # the stream stopped, or a batch's run failed
                failures += 1
                log.warning(
                    "listening again from the checkpoint in %.0f s after %s: %s",
                    pause_s,
                    type(error).__name__,
                    error,
                )
            # What waited is replayed from the checkpoint; forget it so it is taken again.
            self.linger = Linger(self.linger.linger_s, self.linger.max_landings)
            self.filter = LandingFilter()
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 30.0)
        return self.status

    def _follow(self, checkpoint: Checkpoint, until: Callable[[], bool], *, replay: bool) -> None:
        handled = checkpoint.handled_landings
        waiting: list[Landing] = []
        listed_at_ns = time.time_ns()
        listed = self.catch_up(checkpoint.since_ns) if self.catch_up is not None else []
        follow_from = checkpoint.since_ns if replay else max(checkpoint.since_ns, listed_at_ns)
        log.info(
            "checkpoint %s (%d landings handled before): %d listed since, following from %s",
            _utc(checkpoint.since_ns),
            handled,
            len(listed),
            _utc(follow_from),
        )
        for landing in itertools.chain(listed, self.stream(follow_from)):
            now = time.monotonic()
            if landing is not None:
                if self.filter.is_new(landing):
                    self.status.landings += 1
                    self.status.last_landing_ns = landing.landed_ns
                    waiting.append(landing)
                    self.linger.add(landing, now)
                    if self.on_landing is not None:
                        self.on_landing(landing)
                else:
                    self.status.repeats += 1
            batch = self.linger.take_if_due(now)
            if batch:
                self.handle(batch)
                handled += len(batch)
                self.status.batches += 1
                taken = {id(x) for x in batch}
                waiting = [x for x in waiting if id(x) not in taken]
                checkpoint = Checkpoint(_resume_from(batch, waiting), handled)
                checkpoint.save(self.client, self.state)
            self.status.waiting = len(waiting)
            self.status.oldest_waiting_ns = min((x.landed_ns for x in waiting), default=None)
            if self.on_tick is not None:
                self.on_tick(self.status)
            if until():
                return


def _utc(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")


def _resume_from(handled: list[Landing], waiting: list[Landing]) -> int:
    """The checkpoint after a batch: the oldest landing still waiting, else just after the
    newest handled (the change log is ordered by time)."""
    if waiting:
        return min(x.landed_ns for x in waiting)
    return max(x.landed_ns for x in handled) + 1
