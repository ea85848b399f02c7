from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from manifest_exchange.ingest import listener as listener_module
from manifest_exchange.ingest.landings import Landing
from manifest_exchange.ingest.listener import (
    CHECKPOINT,
    CatchUp,
    LandingListener,
    LandingStream,
    ListenerStatus,
    batch_prefix,
)
from manifest_exchange.storage.s3 import S3Location

STATE = S3Location("exchange-state", "tw-jp")


class StateBucket:
    """Holds the objects the listener writes: its checkpoint, nothing else."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        if Key not in self.objects:
            raise botocore.exceptions.ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:  # noqa: N803
        self.objects[Key] = Body

    def checkpoint(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.objects[STATE.key(CHECKPOINT)])
        return loaded


def _landing(n: int, folder: str = "paxlst/2026-12-01/CI") -> Landing:
    return Landing("airport-manifests", f"{folder}/{n}.edi", f"etag{n}", 10, 1_000 + n)


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listener_module.time, "sleep", lambda s: None)


def test_landings_are_run_in_lingered_batches_and_the_checkpoint_follows() -> None:
    state = StateBucket()
    ran: list[list[str]] = []
    clock = iter(range(100))

    def stream(since_ns: int) -> Iterator[Landing | None]:
        assert since_ns > 0
        yield _landing(1)
        yield _landing(1)  # a repeat
        yield _landing(2)
        yield None
        yield None

    listener = LandingListener(
        state, STATE, stream, lambda batch: ran.append([x.key for x in batch]), linger_s=0.0
    )
    status = listener.run(until=lambda: next(clock) > 6)
    assert ran == [["paxlst/2026-12-01/CI/1.edi"], ["paxlst/2026-12-01/CI/2.edi"]]
    assert (status.landings, status.repeats, status.batches) == (2, 1, 2)
    assert state.checkpoint()["since_ns"] == 1_003  # just after the newest handled
    assert state.checkpoint()["handled_landings"] == 2


def test_a_failed_run_is_tried_again_and_the_checkpoint_never_passes_it() -> None:
    state = StateBucket()
    attempts: list[list[str]] = []
    follows: list[int] = []

    def stream(since_ns: int) -> Iterator[Landing | None]:
        follows.append(since_ns)
        yield _landing(1)
        while True:
            yield None

    def handle(batch: list[Landing]) -> None:
        attempts.append([x.key for x in batch])
        if len(attempts) == 1:
            raise ConnectionError("the Prefect API is away")

    listener = LandingListener(state, STATE, stream, handle, linger_s=0.0)
    listener.run(until=lambda: len(attempts) >= 2)
    assert attempts == [["paxlst/2026-12-01/CI/1.edi"]] * 2
    assert len(follows) == 2  # followed again, from the checkpoint it had
    assert state.checkpoint()["since_ns"] == 1_002


def test_a_stream_that_stops_is_followed_again_from_the_checkpoint() -> None:
    state = StateBucket()
    follows: list[int] = []
    ran: list[str] = []

    def stream(since_ns: int) -> Iterator[Landing | None]:
        follows.append(since_ns)
        if len(follows) == 1:
            yield _landing(1)
            yield None
            raise RuntimeError("the filer change log follower stopped")
        yield _landing(1)  # replayed from the checkpoint: the ledger skips it in a real run
        yield _landing(2)
        yield None

    listener = LandingListener(
        state, STATE, stream, lambda b: ran.extend(x.key for x in b), linger_s=0.0
    )
    listener.run(until=lambda: len(ran) >= 3)
    assert follows[1] == 1_002
    assert ran[-1] == "paxlst/2026-12-01/CI/2.edi"


def test_a_first_start_saves_its_checkpoint_before_any_batch() -> None:
    state = StateBucket()

    def stream(since_ns: int) -> Iterator[Landing | None]:
        assert state.checkpoint()["since_ns"] == since_ns  # a kill from here on resumes there
        yield _landing(1)
        raise KeyboardInterrupt  # killed before the batch ran

    listener = LandingListener(state, STATE, stream, lambda b: None, linger_s=5.0)
    with pytest.raises(KeyboardInterrupt):
        listener.run()
    assert state.checkpoint()["handled_landings"] == 0


def _restart_with_catch_up(
    stream: LandingStream, catch_up: CatchUp, runs: int
) -> tuple[list[str], ListenerStatus]:
    """A listener restarted from a checkpoint at 1_001 with a catch-up listing, run until
    ``runs`` landings were handled; the keys it ran, in order, and its status."""
    state = StateBucket()
    state.objects[STATE.key(CHECKPOINT)] = json.dumps({"since_ns": 1_001}).encode()
    ran: list[str] = []
    listener = LandingListener(
        state,
        STATE,
        stream,
        lambda b: ran.extend(x.key for x in b),
        linger_s=0.0,
        catch_up=catch_up,
    )
    status = listener.run(until=lambda: len(ran) >= runs)
    return ran, status


def test_a_restart_takes_what_the_listing_shows_then_drops_its_repeats_in_the_stream() -> None:

    def stream(since_ns: int) -> Iterator[Landing | None]:
        assert since_ns == 1_001  # the change log replays from the same checkpoint
        yield _landing(2)  # replayed: listed already
        yield _landing(3)
        while True:
            yield None

    ran, status = _restart_with_catch_up(stream, lambda since_ns: [_landing(1), _landing(2)], 3)
    assert ran == [f"paxlst/2026-12-01/CI/{n}.edi" for n in (1, 2, 3)]
    assert (status.landings, status.repeats) == (3, 1)


def test_a_replay_that_keeps_failing_is_given_up_for_the_listing() -> None:
    follows: list[int] = []
    listed: list[int] = []

    def catch_up(since_ns: int) -> list[Landing]:
        listed.append(since_ns)
        return [x for x in (_landing(1), _landing(2)) if x.landed_ns >= since_ns]

    def stream(since_ns: int) -> Iterator[Landing | None]:
        follows.append(since_ns)
        if len(follows) <= 2:
            raise RuntimeError("the filer change log follower stopped (exit 0): reading failed")
        yield _landing(3)
        while True:
            yield None

    ran, _ = _restart_with_catch_up(stream, catch_up, 3)
    assert ran == [f"paxlst/2026-12-01/CI/{n}.edi" for n in (1, 2, 3)]
    assert listed == [1_001, 1_003, 1_003]  # each time from the checkpoint it had
    assert follows[:2] == [1_001, 1_003]  # the replay, tried twice
    assert follows[2] > 1_000_000_000  # then from the time of the listing


def test_a_batch_runs_over_the_folder_its_landings_share() -> None:
    assert batch_prefix([_landing(1), _landing(2)]) == "paxlst/2026-12-01/CI"
    mixed = [_landing(1), _landing(2, "paxlst/2026-12-01/BR")]
    assert batch_prefix(mixed) == "paxlst/2026-12-01"
