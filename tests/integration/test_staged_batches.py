"""Staged batches on the real store: what recovery completes, what it discards, in what order.

A batch is settled through ``<state>/staging/<batch id>/`` (``manifest_exchange.publish``);
these tests leave staging folders as a crashed run would and let recovery finish them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from manifest_exchange.local.stack import PARTNER_BUCKET, STATE_BUCKET, EmbeddedStack
from manifest_exchange.publish.publisher import STAGED_BATCH, DropPublisher, Settlement
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects

pytestmark = pytest.mark.integration

OUTCOMES = [{"source_key": "paxlst/2026-12-01/a.edi", "travellers": {"quarantined": 2}}]


def _publisher(stack: EmbeddedStack) -> tuple[DropPublisher, S3Location]:
    name = f"t{uuid.uuid4().hex[:10]}"
    state = S3Location(STATE_BUCKET, name)
    return DropPublisher(stack.client("pipeline"), state, S3Location(PARTNER_BUCKET, name)), state


def _settlement(state: S3Location, batch_id: str) -> Settlement:
    return Settlement(
        batch_id=batch_id,
        drop_id=None,
        ledger_outcomes=OUTCOMES,
        quarantine_prefix=state.key("quarantine", "run-1", "batch=00000"),
        quarantine={"travellers.parquet": b"PAR1 rows PAR1", "errors.parquet": b"PAR1 e PAR1"},
    )


def _keys(publisher: DropPublisher, prefix: str) -> list[str]:
    folder = S3Location(STATE_BUCKET, prefix)
    return sorted(info.key for info in iter_objects(publisher.client, folder))


def test_a_staged_batch_without_a_drop_is_finished_quarantine_first(
    embedded_stack: EmbeddedStack,
) -> None:
    publisher, state = _publisher(embedded_stack)
    settlement = _settlement(state, "20261201T000000Z-run1-0000")
    publisher.publish(None, settlement)  # staged; the run dies before finishing it
    calls: list[tuple[Any, ...]] = []

    def finish_ledger(outcomes: list[dict[str, Any]], drop_id: str | None) -> None:
        # Called only once the quarantine is in place.
        calls.append((outcomes, drop_id, _keys(publisher, settlement.quarantine_prefix)))

    recovered = publisher.recover_staged_batches(finish_ledger)

    assert recovered == []  # no drop was completed
    assert len(calls) == 1
    outcomes, drop_id, quarantine_then = calls[0]
    assert outcomes == OUTCOMES
    assert drop_id is None
    assert quarantine_then == [
        f"{settlement.quarantine_prefix}/errors.parquet",
        f"{settlement.quarantine_prefix}/travellers.parquet",
    ]
    written = get_bytes(
        publisher.client, STATE_BUCKET, f"{settlement.quarantine_prefix}/travellers.parquet"
    )
    assert written == settlement.quarantine["travellers.parquet"]
    assert _keys(publisher, state.key("staging")) == []
    assert publisher.recover_staged_batches(finish_ledger) == []
    assert len(calls) == 1


def test_incomplete_staging_is_discarded_and_nothing_is_recorded(
    embedded_stack: EmbeddedStack,
) -> None:
    publisher, state = _publisher(embedded_stack)
    settlement = _settlement(state, "20261201T000000Z-run1-0001")
    publisher.publish(None, settlement)
    # As if the run had died before the batch description, the staging's last write:
    publisher.client.delete_object(
        Bucket=STATE_BUCKET, Key=state.key("staging", settlement.batch_id, STAGED_BATCH)
    )
    calls: list[object] = []

    publisher.recover_staged_batches(lambda outcomes, drop_id: calls.append(drop_id))

    assert calls == []
    assert _keys(publisher, state.key("staging")) == []
    assert _keys(publisher, settlement.quarantine_prefix) == []


def test_a_staged_quarantine_that_changed_is_refused(embedded_stack: EmbeddedStack) -> None:
    publisher, state = _publisher(embedded_stack)
    settlement = _settlement(state, "20261201T000000Z-run1-0002")
    publisher.publish(None, settlement)
    staged = state.key("staging", settlement.batch_id, "quarantine", "errors.parquet")
    publisher.client.put_object(Bucket=STATE_BUCKET, Key=staged, Body=b"changed")
    described = json.loads(
        get_bytes(
            publisher.client, STATE_BUCKET, state.key("staging", settlement.batch_id, STAGED_BATCH)
        )
    )
    assert set(described["quarantine_files"]) == {"errors.parquet", "travellers.parquet"}

    with pytest.raises(RuntimeError, match="corrupt"):
        publisher.recover_staged_batches(lambda outcomes, drop_id: None)


def test_finishing_removes_the_completion_marker_before_the_staged_files(
    embedded_stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash halfway through removing a staging folder must leave it incomplete (then
    discarded), not complete with files gone: recovery would fail on every run (NoSuchKey,
    found by the kill storm)."""
    from manifest_exchange.publish import publisher as publish

    publisher, state = _publisher(embedded_stack)
    settlement = _settlement(state, "20261201T000000Z-run1-0003")
    publisher.publish(None, settlement)
    deleted: list[str] = []
    original = publish.delete_keys

    def recording(client: Any, bucket: str, keys: list[str]) -> None:
        deleted.extend(keys)
        original(client, bucket, keys)

    monkeypatch.setattr(publish, "delete_keys", recording)

    publisher.finish(settlement, lambda outcomes, drop_id: None)

    assert deleted[0] == state.key("staging", settlement.batch_id, STAGED_BATCH)
    assert len(deleted) == 4  # the marker, ledger.json and two quarantine files
