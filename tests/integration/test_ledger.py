"""Claims and the locks against the real store (conditional creates are the point)."""

from __future__ import annotations

import datetime as dt
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from manifest_exchange.local.stack import SOURCE_BUCKET, STATE_BUCKET, EmbeddedStack
from manifest_exchange.storage import ledger as ledger_module
from manifest_exchange.storage.ledger import (
    COMPACT_AFTER_SHEETS,
    OUTCOME_SHEET_SUFFIX,
    Ledger,
)
from manifest_exchange.storage.locks import LockTimeoutError, PublishLock, StateLock
from manifest_exchange.storage.s3 import S3Location, iter_objects, put_bytes

pytestmark = pytest.mark.integration

HOUR = dt.timedelta(hours=1)


def _setup(stack: EmbeddedStack, objects: int = 5) -> tuple[S3Location, S3Location]:
    name = uuid.uuid4().hex[:8]
    source = S3Location(SOURCE_BUCKET, f"ledger-{name}")
    loader = stack.client("loader")
    for index in range(objects):
        put_bytes(loader, SOURCE_BUCKET, source.key(f"m{index}.edi"), f"UNB{index}".encode())
    return source, S3Location(STATE_BUCKET, f"ledger-{name}")


def test_racing_runs_claim_each_object_exactly_once(embedded_stack: EmbeddedStack) -> None:
    source, state = _setup(embedded_stack, objects=20)
    client = embedded_stack.client("pipeline")
    discoveries = [Ledger(client, state, 600).discover(source) for _ in range(4)]

    with ThreadPoolExecutor(4) as pool:
        claims = list(
            pool.map(
                lambda pair: Ledger(client, state, 600).claim(pair[1], f"run{pair[0]}"),
                enumerate(discoveries),
            )
        )

    keys = [c.source.key for run in claims for c in run]
    assert sorted(keys) == sorted(set(keys))
    assert len(keys) == 20


def test_finished_objects_are_not_discovered_again(embedded_stack: EmbeddedStack) -> None:
    source, state = _setup(embedded_stack)
    ledger = Ledger(embedded_stack.client("pipeline"), state, 600)
    claims = ledger.claim(ledger.discover(source), "run1")
    ledger.finish(claims[0], {"travellers": {}})

    again = ledger.discover(source)

    assert again.done == 1
    assert again.claimed_by_others == 4
    assert again.candidates == []


def test_a_batch_of_outcomes_is_one_sheet_per_folder_and_the_first_outcome_stands(
    embedded_stack: EmbeddedStack,
) -> None:
    source, state = _setup(embedded_stack, objects=0)
    loader = embedded_stack.client("loader")
    keys = [f"day1/a{i}.edi" for i in range(6)] + [f"day2/b{i}.edi" for i in range(4)]
    for key in keys:
        put_bytes(loader, SOURCE_BUCKET, source.key(key), key.encode())
    ledger = Ledger(embedded_stack.client("pipeline"), state, 600)
    claims = ledger.claim(ledger.discover(source), "run1")

    recorded = ledger.finish_many([(c, {"travellers": {"published": 1}}) for c in claims])
    # A recovered publish records the first folder again, with other counts:
    again = [c for c in claims if "/day1/" in c.source.key]
    ledger.finish_many([(c, {"travellers": {"published": 7}}) for c in again])

    sheets = [
        info.key
        for info in iter_objects(ledger.client, state)
        if info.key.endswith(OUTCOME_SHEET_SUFFIX)
    ]
    assert recorded == 10
    assert len(sheets) == 3
    assert sum("/day1/" in key for key in sheets) == 2
    outcomes = ledger.outcomes(source)
    assert sorted(key for key, _ in outcomes) == sorted(source.key(k) for k in keys)
    assert {o.body["travellers"]["published"] for o in outcomes.values()} == {1}
    day2 = ledger.outcomes(S3Location(SOURCE_BUCKET, source.key("day2")))
    assert sorted(key for key, _ in day2) == sorted(source.key(k) for k in keys[6:])
    assert ledger.discover(source).done == 10


def test_discovery_compacts_a_folder_of_many_sheets_and_keeps_each_first_outcome(
    embedded_stack: EmbeddedStack,
) -> None:
    runs = COMPACT_AFTER_SHEETS + 2
    source, state = _setup(embedded_stack, objects=runs)
    ledger = Ledger(embedded_stack.client("pipeline"), state, 600)
    claims = ledger.claim(ledger.discover(source), "run1")
    for claim in claims:  # one run a minute, one object each: a sheet each
        ledger.finish(claim, {"travellers": {"published": 1}})
    ledger.finish(claims[0], {"travellers": {"published": 9}})  # recorded again, later
    before = ledger.outcomes(source)

    discovery = ledger.discover(source)

    sheets = [
        info.key
        for info in iter_objects(ledger.client, state)
        if info.key.endswith(OUTCOME_SHEET_SUFFIX)
    ]
    assert discovery.done == runs
    assert len(sheets) == 1
    assert "-compacted-" in sheets[0]
    after = ledger.outcomes(source)
    assert {ref: o.body["travellers"] for ref, o in after.items()} == {
        ref: o.body["travellers"] for ref, o in before.items()
    }
    assert {ref: o.recorded_at for ref, o in after.items()} == {
        ref: o.recorded_at for ref, o in before.items()
    }
    assert {o.body["travellers"]["published"] for o in after.values()} == {1}
    # A sheet recorded after the compaction, for an object it already holds, changes nothing.
    ledger.finish(claims[1], {"travellers": {"published": 5}})
    assert ledger.outcomes(source)[(claims[1].source.key, claims[1].source.etag)].body[
        "travellers"
    ] == {"published": 1}


def test_a_reader_whose_sheets_are_compacted_away_reads_them_again(
    embedded_stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = COMPACT_AFTER_SHEETS + 1
    source, state = _setup(embedded_stack, objects=objects)
    client = embedded_stack.client("pipeline")
    ledger = Ledger(client, state, 600)
    for claim in ledger.claim(ledger.discover(source), "run1"):
        ledger.finish(claim, {"travellers": {}})
    real_get_many = ledger_module.get_many
    compactions = []

    def compacted_after_listing(*args: Any, **kwargs: Any) -> list[bytes]:
        if not compactions:  # another run compacts between this reader's listing and reads
            compactions.append(True)
            with monkeypatch.context() as inner:
                inner.setattr(ledger_module, "get_many", real_get_many)
                Ledger(client, state, 600).outcomes(source, compact=True)
        return real_get_many(*args, **kwargs)

    monkeypatch.setattr(ledger_module, "get_many", compacted_after_listing)

    assert len(ledger.outcomes(source)) == objects
    assert compactions


def test_outcomes_of_other_folders_are_not_read(embedded_stack: EmbeddedStack) -> None:
    source, state = _setup(embedded_stack, objects=0)
    loader = embedded_stack.client("loader")
    for key in ("day1/a.edi", "day2/b.edi"):
        put_bytes(loader, SOURCE_BUCKET, source.key(key), key.encode())
    ledger = Ledger(embedded_stack.client("pipeline"), state, 600)
    claims = ledger.claim(ledger.discover(source), "run1")
    ledger.finish_many([(c, {"travellers": {}}) for c in claims])

    only_day2 = ledger.outcomes(source, folders={source.key("day2")})

    assert [key for key, _ in only_day2] == [source.key("day2/b.edi")]


def test_an_abandoned_claim_is_taken_over_once(embedded_stack: EmbeddedStack) -> None:
    source, state = _setup(embedded_stack, objects=1)
    client = embedded_stack.client("pipeline")
    Ledger(client, state, 600).claim(Ledger(client, state, 600).discover(source), "crashed")
    expired = Ledger(client, state, 0)

    first = expired.claim(expired.discover(source), "rescuer")
    assert [c.is_takeover for c in first] == [True]
    records = expired.claim_records(source.bucket, since=dt.datetime.now(dt.UTC) - HOUR)
    assert [r.run_id for r in records] == ["crashed", "rescuer"]
    assert first[0].claim_key == records[1].key


def test_one_claim_record_per_run_whatever_its_size(embedded_stack: EmbeddedStack) -> None:
    source, state = _setup(embedded_stack, objects=30)
    ledger = Ledger(embedded_stack.client("pipeline"), state, 600)
    claims = ledger.claim(ledger.discover(source), "run1")

    now = dt.datetime.now(dt.UTC)
    records = ledger.claim_records(source.bucket, since=now - HOUR)
    assert len(claims) == 30
    assert len(records) == 1
    assert {c.claim_key for c in claims} == {records[0].key}
    assert sorted(r.key for r in records[0].objects) == sorted(c.source.key for c in claims)
    # Records are named by time: discovery lists only those recent enough to be live.
    assert ledger.claim_records(source.bucket, since=now + HOUR) == []


def test_a_claim_made_while_the_lock_was_taken_over_is_withdrawn(
    embedded_stack: EmbeddedStack,
) -> None:
    source, state = _setup(embedded_stack, objects=3)
    client = embedded_stack.client("pipeline")
    slow = Ledger(client, state, 600)
    discovery = slow.discover(source)
    check = slow.claim_lock.is_held_by

    def taken_over_before_the_check(generation: int) -> bool:
        # The slow run wrote its record; meanwhile its lease expired and another run took it.
        with StateLock(client, state, "claim", timeout_s=0).hold("impatient"):
            pass
        return check(generation)

    slow.claim_lock.is_held_by = taken_over_before_the_check  # type: ignore[method-assign]
    assert slow.claim(discovery, "slow") == []

    assert slow.claim_records(source.bucket, since=dt.datetime.now(dt.UTC) - HOUR) == []
    later = Ledger(client, state, 600)
    assert len(later.claim(later.discover(source), "next")) == 3


def test_a_lock_folder_keeps_only_the_latest_generations(embedded_stack: EmbeddedStack) -> None:
    _, state = _setup(embedded_stack, objects=0)
    client = embedded_stack.client("pipeline")
    lock = StateLock(client, state, "claim", timeout_s=600)
    for number in range(5):
        with lock.hold(f"run{number}") as generation:
            assert lock.is_held_by(generation)
    assert generation == 5
    files = [info.key.rsplit("/", 1)[1] for info in iter_objects(client, lock.prefix)]
    assert sorted(files) == ["00000005.json", "00000005.released"]


def test_publish_lock_excludes_and_can_be_taken_over(embedded_stack: EmbeddedStack) -> None:
    _, state = _setup(embedded_stack, objects=0)
    client = embedded_stack.client("pipeline")
    lock = PublishLock(client, state, timeout_s=600)
    with lock.hold("first") as generation:
        assert lock.is_held_by(generation)
        with pytest.raises(LockTimeoutError), lock.hold("second", wait_s=0.5):
            pass
        impatient = PublishLock(client, state, timeout_s=0)
        with impatient.hold("rescuer") as taken:
            assert taken == generation + 1
            assert not lock.is_held_by(generation)
    with lock.hold("third") as later:
        assert later > generation
