from __future__ import annotations

import datetime as dt

from manifest_exchange.operations.retention import (
    ExpiredSource,
    PurgePlan,
    _drop_published_into,
    split_by_receipts,
)
from manifest_exchange.storage.s3 import ObjectInfo

LANDED = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _expired(key: str, drop_id: str | None) -> ExpiredSource:
    return ExpiredSource(ObjectInfo(key, 10, "etag", LANDED), drop_id)


EXPIRED = [_expired("a.edi", "d1"), _expired("b.edi", "d2"), _expired("c.edi", None)]


def test_without_receipts_required_every_expired_object_goes() -> None:
    deletable, waiting = split_by_receipts(EXPIRED, None)
    assert [info.key for info in deletable] == ["a.edi", "b.edi", "c.edi"]
    assert waiting == []


def test_an_object_waits_for_the_receipt_of_the_drop_it_went_into() -> None:
    deletable, waiting = split_by_receipts(EXPIRED, {"d1"})
    # c.edi published nothing, so no drop of it needs confirming.
    assert [info.key for info in deletable] == ["a.edi", "c.edi"]
    assert waiting == [EXPIRED[1]]


def test_with_no_drop_confirmed_only_objects_that_published_nothing_go() -> None:
    deletable, waiting = split_by_receipts(EXPIRED, set())
    assert [info.key for info in deletable] == ["c.edi"]
    assert [w.info.key for w in waiting] == ["a.edi", "b.edi"]


def test_the_drops_to_confirm_are_those_the_expired_objects_went_into() -> None:
    plan = PurgePlan(LANDED, LANDED, expired_sources=[*EXPIRED, _expired("d.edi", "d1")])
    assert plan.drops_to_confirm == ["d1", "d2"]


def test_an_object_whose_travellers_were_not_published_went_into_no_drop() -> None:
    # The ledger names the batch's drop for every object of the batch.
    assert _drop_published_into({"drop_id": "d1", "travellers": {"published": 2}}) == "d1"
    assert _drop_published_into({"drop_id": "d1", "travellers": {"duplicates": 2}}) is None
    assert _drop_published_into({"drop_id": None, "travellers": {"published": 0}}) is None
