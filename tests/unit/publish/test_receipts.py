from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

import pytest

from manifest_exchange.publish.receipts import (
    PublishedDrop,
    Receipt,
    ReceiptError,
    StoredReceipt,
    _stored,
    match_receipts,
    receipt_key,
    receipts_from_inbox,
)
from manifest_exchange.storage.s3 import S3Location

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
MANIFEST = b'{"drop_id": "20261201T100000Z-run-0000", "schema_version": "1", "sequence": 7}'
SHA = hashlib.sha256(MANIFEST).hexdigest()


def _receipt(drop_id: str = "20261201T100000Z-run-0000", sha256: str = SHA) -> Receipt:
    return Receipt(drop_id, "1", 7, sha256, NOW)


def test_a_receipt_names_the_manifest_bytes_it_was_made_from() -> None:
    receipt = Receipt.for_manifest(MANIFEST, NOW)

    assert receipt == Receipt("20261201T100000Z-run-0000", "1", 7, SHA, NOW)
    assert json.loads(receipt.to_json()) == {
        "drop_id": "20261201T100000Z-run-0000",
        "schema_version": "1",
        "sequence": 7,
        "manifest_sha256": SHA,
        "received_at": "2026-12-01T12:00:00+00:00",
    }
    assert Receipt.from_json(receipt.to_json()) == receipt


def test_a_drop_published_before_sequencing_gets_a_receipt_without_a_sequence() -> None:
    manifest = b'{"drop_id": "d", "schema_version": "1"}'
    assert Receipt.for_manifest(manifest, NOW).sequence is None


def test_a_receipt_written_by_other_tools_reads_with_a_z_time() -> None:
    body = json.dumps(
        {
            "drop_id": "d",
            "schema_version": "2",
            "sequence": None,
            "manifest_sha256": SHA,
            "received_at": "2026-12-01T21:00:00+09:00",
        }
    ).encode()
    assert Receipt.from_json(body).received_at == NOW


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"drop_id": "d"}', "missing or not text: schema_version, manifest_sha256"),
        (
            b'{"drop_id": "d", "schema_version": "1", "manifest_sha256": "' + SHA.encode() + b'",'
            b' "received_at": "2026-12-01T12:00:00Z", "sequence": "7"}',
            "sequence is not a whole number",
        ),
        (
            b'{"drop_id": "d", "schema_version": "1", "manifest_sha256": "ABC",'
            b' "received_at": "2026-12-01T12:00:00Z"}',
            "manifest_sha256 is not 64 lower-case hex digits",
        ),
        (
            b'{"drop_id": "d", "schema_version": "1", "manifest_sha256": "' + SHA.encode() + b'",'
            b' "received_at": "yesterday"}',
            "received_at is not an ISO 8601 time",
        ),
        (
            b'{"drop_id": "d", "schema_version": "1", "manifest_sha256": "' + SHA.encode() + b'",'
            b' "received_at": "2026-12-01T12:00:00"}',
            "received_at has no time zone",
        ),
    ],
)
def test_bytes_that_are_not_a_receipt_are_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ReceiptError, match=f"^{reason}"):
        Receipt.from_json(body)


def test_receipts_are_kept_by_format_version_under_the_agreements_prefix() -> None:
    location = S3Location("partner-receipts", "tw-jp")
    assert receipt_key(location, "3", "d1") == "tw-jp/v3/d1.json"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_receipt("another-drop").to_json(), "names drop 'another-drop'"),
        (
            Receipt("20261201T100000Z-run-0000", "2", 7, SHA, NOW).to_json(),
            "names format version '2'",
        ),
        (b"{}", "not a receipt: missing or not text"),
    ],
)
def test_a_stored_receipt_must_name_its_own_drop_and_version(body: bytes, problem: str) -> None:
    stored = _stored("20261201T100000Z-run-0000", 1, body, "1")
    assert stored.receipt is None
    assert str(stored.problem).startswith(problem)


def _drop(drop_id: str, completed_minutes_ago: float, sha256: str = SHA) -> PublishedDrop:
    return PublishedDrop(drop_id, sha256, NOW - dt.timedelta(minutes=completed_minutes_ago))


def _stored_receipt(receipt: Receipt, versions: int = 1) -> StoredReceipt:
    return StoredReceipt(receipt.drop_id, versions, receipt)


def test_each_drop_is_acknowledged_awaiting_overdue_or_mismatched() -> None:
    drops = [
        _drop("d1-acknowledged", 300),
        _drop("d2-awaiting", 30),
        _drop("d3-overdue", 61),
        _drop("d4-other-bytes", 300),
        _drop("d5-rewritten", 300),
        _drop("d6-unreadable", 300),
    ]
    receipts = {
        "d1-acknowledged": _stored_receipt(_receipt("d1-acknowledged")),
        "d4-other-bytes": _stored_receipt(_receipt("d4-other-bytes", "0" * 64)),
        "d5-rewritten": _stored_receipt(_receipt("d5-rewritten"), versions=2),
        "d6-unreadable": StoredReceipt("d6-unreadable", 1, None, "names drop 'x'"),
        "d0-older-drop": _stored_receipt(_receipt("d0-older-drop")),
        "d9-no-such-drop": _stored_receipt(_receipt("d9-no-such-drop")),
    }

    check = match_receipts(drops, receipts, now=NOW, due=HOUR, complete_drop_ids=["d0-older-drop"])

    assert check.drops_checked == 6
    assert check.acknowledged == ["d1-acknowledged", "d5-rewritten"]
    assert check.awaiting == ["d2-awaiting"]
    assert check.unacknowledged == {"d3-overdue": (NOW - dt.timedelta(minutes=61)).isoformat()}
    assert check.mismatched == {
        "d4-other-bytes": {"receipt_sha256": "0" * 64, "manifest_sha256": SHA}
    }
    assert check.rewritten == ["d5-rewritten"]
    assert check.unreadable == {"d6-unreadable": "names drop 'x'"}
    assert check.without_drop == ["d9-no-such-drop"]
    assert check.problem_count == 5
    assert check.as_dict()["problems"] == 5


def test_a_drop_exactly_at_its_due_time_is_still_awaited() -> None:
    check = match_receipts([_drop("d", 60)], {}, now=NOW, due=HOUR)
    assert (check.awaiting, check.unacknowledged) == (["d"], {})


def _fetched(inbox: Path, drop_id: str, version: str = "1", manifest: bytes | None = None) -> Path:
    folder = inbox / f"v{version}" / "drops" / drop_id
    folder.mkdir(parents=True)
    name = "_manifest.json" if int(version) >= 3 else "manifest.json"
    body = manifest or json.dumps({"drop_id": drop_id, "schema_version": version}).encode()
    (folder / name).write_bytes(body)
    marker = folder / "_SUCCESS"
    marker.write_bytes(b"")
    os.utime(marker, (NOW.timestamp(), NOW.timestamp()))
    return folder


def test_the_inbox_acknowledges_complete_drops_as_fetched(tmp_path: Path) -> None:
    _fetched(tmp_path, "d2", manifest=b'{"drop_id": "d2", "schema_version": "1", "sequence": 2}')
    _fetched(tmp_path, "d1")
    (tmp_path / "v1" / "drops" / "d3-interrupted").mkdir()

    receipts = receipts_from_inbox(tmp_path, "1")

    assert [r.drop_id for r in receipts] == ["d1", "d2"]
    assert receipts[1].sequence == 2
    assert (
        receipts[1].manifest_sha256
        == hashlib.sha256(b'{"drop_id": "d2", "schema_version": "1", "sequence": 2}').hexdigest()
    )
    assert receipts[1].received_at == NOW
    assert [r.drop_id for r in receipts_from_inbox(tmp_path, "1", ["d2"])] == ["d2"]


def test_version_3_drops_are_acknowledged_by_their_hidden_manifest(tmp_path: Path) -> None:
    _fetched(tmp_path, "d1", version="3")
    assert [r.schema_version for r in receipts_from_inbox(tmp_path, "3")] == ["3"]


def test_a_named_drop_must_have_been_fetched(tmp_path: Path) -> None:
    _fetched(tmp_path, "d1")
    with pytest.raises(ValueError, match=r"not fetched into .*: d7$"):
        receipts_from_inbox(tmp_path, "1", ["d1", "d7"])


def test_a_manifest_of_another_drop_in_a_drops_folder_is_refused(tmp_path: Path) -> None:
    _fetched(tmp_path, "d1", manifest=b'{"drop_id": "d2", "schema_version": "1"}')
    with pytest.raises(ValueError, match="describes another drop or version"):
        receipts_from_inbox(tmp_path, "1")
