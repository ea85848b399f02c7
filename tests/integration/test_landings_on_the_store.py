"""The filer's change log as a landing source, against the session's real SeaweedFS."""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from boto3.s3.transfer import TransferConfig

from manifest_exchange.ingest.landings import (
    FilerChangeLog,
    Landing,
    LandingFilter,
    listed_landings,
)
from manifest_exchange.local.stack import PARTNER_BUCKET, SOURCE_BUCKET, EmbeddedStack
from manifest_exchange.storage.s3 import S3Location, put_bytes

pytestmark = pytest.mark.integration


class Follower:
    """Follows a prefix in a thread, keeping each new landing with when it was seen."""

    def __init__(self, stack: EmbeddedStack, source: S3Location, since_ns: int) -> None:
        state = stack.read_state()
        assert state is not None
        self.log = FilerChangeLog(f"127.0.0.1:{state.ports.filer}", source)
        self.seen: list[tuple[Landing, int]] = []
        self.filter = LandingFilter()
        self.thread = threading.Thread(target=self._run, args=(since_ns,), daemon=True)
        self.thread.start()

    def _run(self, since_ns: int) -> None:
        try:
            for landing in self.log.follow(since_ns):
                if landing is not None and self.filter.is_new(landing):
                    self.seen.append((landing, time.time_ns()))
        except RuntimeError:
            pass  # closed by the test

    def wait_for(self, count: int, timeout_s: float = 10) -> list[tuple[Landing, int]]:
        deadline = time.monotonic() + timeout_s
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.seen)

    def close(self) -> None:
        self.log.close()
        self.thread.join(timeout=10)


@pytest.fixture
def source() -> S3Location:
    return S3Location(SOURCE_BUCKET, f"landings-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def follower(embedded_stack: EmbeddedStack, source: S3Location) -> Iterator[Follower]:
    follower = Follower(embedded_stack, source, time.time_ns())
    time.sleep(0.5)  # the follower is connected
    yield follower
    follower.close()


def test_each_object_landed_is_seen_once_within_a_second(
    embedded_stack: EmbeddedStack, source: S3Location, follower: Follower
) -> None:
    loader = embedded_stack.client("loader")
    sent = {}
    for n in range(5):
        key = source.key("2026-12-01", "CI", f"{n}.edi")
        put_bytes(loader, source.bucket, key, f"UNA:+.? '{n}".encode())
        sent[key] = time.time_ns()
    put_bytes(loader, source.bucket, f"{source.prefix}-elsewhere/x.edi", b"not watched")
    seen = follower.wait_for(5)
    time.sleep(1)  # a repeat or an object outside the prefix would have arrived by now
    assert sorted(landing.key for landing, _ in follower.seen) == sorted(sent)
    for landing, at in seen:
        assert (at - sent[landing.key]) / 1e9 < 1.0


def test_a_multipart_upload_is_one_landing_of_the_completed_object(
    embedded_stack: EmbeddedStack, source: S3Location, follower: Follower
) -> None:
    key = source.key("big.edi")
    embedded_stack.client("loader").upload_fileobj(
        io.BytesIO(b"a" * (11 * 1024 * 1024)),
        source.bucket,
        key,
        Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20),
        ExtraArgs={"ServerSideEncryption": "AES256"},
    )
    follower.wait_for(1)
    time.sleep(1)
    assert [(x.key, x.size) for x, _ in follower.seen] == [(key, 11 * 1024 * 1024)]


def test_a_follower_started_from_a_checkpoint_replays_what_it_missed(
    embedded_stack: EmbeddedStack, source: S3Location
) -> None:
    checkpoint = time.time_ns()
    loader = embedded_stack.client("loader")
    keys = [source.key(f"missed-{n}.edi") for n in range(3)]
    for key in keys:
        put_bytes(loader, source.bucket, key, key.encode())
    late = Follower(embedded_stack, source, checkpoint)
    try:
        assert sorted(x.key for x, _ in late.wait_for(3)) == sorted(keys)
    finally:
        late.close()


def test_the_listing_since_a_checkpoint_and_the_change_log_name_the_same_landings(
    embedded_stack: EmbeddedStack, source: S3Location
) -> None:
    """A restart catches up from the listing and then drops the change log's replays of the
    same objects: that works only if both spell key and ETag alike."""
    loader = embedded_stack.client("loader")
    put_bytes(loader, source.bucket, source.key("before.edi"), b"landed before")
    time.sleep(1.1)  # the listing's times have whole seconds
    checkpoint = time.time_ns()
    keys = [source.key(f"after-{n}.edi") for n in range(3)]
    for key in keys:
        put_bytes(loader, source.bucket, key, key.encode())
    listed = listed_landings(embedded_stack.client("pipeline"), source, checkpoint)
    assert sorted(x.key for x in listed) == sorted(keys)
    late = Follower(embedded_stack, source, checkpoint)
    try:
        replayed = [x for x, _ in late.wait_for(4)]  # with the margin, before.edi too
    finally:
        late.close()
    assert set(keys) <= {x.key for x in replayed}
    keep = LandingFilter()
    assert all(keep.is_new(x) for x in listed)
    assert not any(keep.is_new(x) for x in replayed if x.key in keys)


def test_in_a_versioned_bucket_an_object_lands_under_its_own_key(
    embedded_stack: EmbeddedStack,
) -> None:
    """The partner bucket keeps versions (object lock): the change log names each version's
    entry, and the landing is the object's key."""
    drops = S3Location(PARTNER_BUCKET, f"landings-{uuid.uuid4().hex[:8]}")
    follower = Follower(embedded_stack, drops, time.time_ns())
    try:
        time.sleep(0.5)
        key = drops.key("drop-1", "_SUCCESS")
        put_bytes(embedded_stack.client("pipeline"), PARTNER_BUCKET, key, b"{}")
        assert [x.key for x, _ in follower.wait_for(1)] == [key]
    finally:
        follower.close()
