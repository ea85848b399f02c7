"""The exactly-once audit (``manifest-exchange audit``) on real runs, then with planted faults."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from exchange_support import Exchange, make_corpus
from manifest_exchange.cli import main
from manifest_exchange.local.stack import PARTNER_BUCKET, STATE_BUCKET
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects, put_bytes

pytestmark = pytest.mark.integration


def test_audit_holds_after_runs_with_defects_and_resends(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=5, seed=51, defect_rate=0.05, resend_rate=0.2))
    first = exchange.run()
    exchange.upload(make_corpus(flights=2, seed=52))
    second = exchange.run()

    report = exchange.audit()

    assert report.ok, report.as_dict()
    assert report.source_objects == report.ledger_outcomes == report.objects_recounted
    assert report.published_rows == first["published"] + second["published"]
    assert report.drops_verified == 2


def test_audit_finds_a_republished_drop_an_orphan_and_a_miscount(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=3, seed=53))
    report = exchange.run()
    root = drops_root(exchange.partner)
    drop = S3Location(root.bucket, root.key(report["drop_ids"][0]))
    # The same records published a second time under another drop id:
    copy = S3Location(root.bucket, root.key("20990101T000000Z-copy"))
    for info in iter_objects(exchange.pipeline, drop):
        relative = info.key[len(drop.prefix) + 1 :]
        data = get_bytes(exchange.pipeline, PARTNER_BUCKET, info.key)
        if relative == "manifest.json":
            data = data.replace(report["drop_ids"][0].encode(), b"20990101T000000Z-copy")
        put_bytes(exchange.pipeline, PARTNER_BUCKET, copy.key(relative), data)
    # A publish that never completed:
    put_bytes(exchange.pipeline, PARTNER_BUCKET, root.key("20990102T000000Z-orphan", "x"), b"x")

    # A ledger outcome that lost a traveller:
    def lose_one(outcome: dict[str, Any]) -> None:
        counts = outcome["travellers"]
        counts[max(counts, key=lambda name: counts[name])] -= 1

    exchange.edit_outcome(lose_one, where=lambda outcome: any(outcome["travellers"].values()))

    found = exchange.audit(later=dt.timedelta(hours=1))

    assert not found.ok
    assert len(found.duplicate_publications) == report["published"]
    assert {tuple(d["drops"]) for d in found.duplicate_publications} == {
        (report["drop_ids"][0], "20990101T000000Z-copy")
    }
    assert found.published_rows == 2 * found.ledger_published
    assert found.orphan_drops == ["20990102T000000Z-orphan"]
    assert len(found.miscounted_objects) == 1
    miscount = found.miscounted_objects[0]
    assert miscount["travellers"] == miscount["accounted"] + 1
    assert copy.key(SUCCESS_MARKER) in [i.key for i in iter_objects(exchange.pipeline, copy)]


def test_audit_command_exits_non_zero_on_an_unprocessed_old_object(
    exchange: Exchange, capsys: pytest.CaptureFixture[str]
) -> None:
    exchange.upload(make_corpus(flights=1, seed=54))
    exchange.run()
    arguments = [
        "audit",
        "--source",
        str(exchange.source),
        "--state",
        f"s3://{STATE_BUCKET}/{exchange.name}",
        "--partner",
        str(exchange.partner),
    ]
    assert main(arguments) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    late = make_corpus(flights=1, seed=55)
    exchange.upload(late)

    assert main([*arguments, "--grace-minutes", "0"]) == 1
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] is False
    assert len(printed["miscounted_objects"]) == len(late.objects)
    assert all(m["accounted"] == 0 for m in printed["miscounted_objects"])


def test_audit_finds_lost_and_doubled_quarantine_records(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=4, seed=56, defect_rate=0.08))
    report = exchange.run()
    assert report["quarantined_rows"] > 0, "the corpus must quarantine someone"
    assert exchange.audit().ok
    quarantine = S3Location(STATE_BUCKET, f"{exchange.name}/quarantine/{report['run_id']}")
    travellers = next(
        info.key
        for info in iter_objects(exchange.pipeline, quarantine)
        if info.key.endswith("/travellers.parquet")
    )
    data = get_bytes(exchange.pipeline, STATE_BUCKET, travellers)
    # The same rows under another run: records written twice.
    doubled = travellers.replace(report["run_id"], "another-run")
    put_bytes(exchange.pipeline, STATE_BUCKET, doubled, data)

    found = exchange.audit()

    assert not found.ok
    assert found.quarantine_rows == found.ledger_quarantined == report["quarantined_rows"]
    assert found.quarantine_mismatches
    assert all(m["other_runs"] for m in found.quarantine_mismatches)

    # The run's own rows gone: the ledger counts travellers the quarantine does not hold.
    exchange.pipeline.delete_object(Bucket=STATE_BUCKET, Key=travellers)
    exchange.pipeline.delete_object(Bucket=STATE_BUCKET, Key=doubled)

    lost = exchange.audit()

    assert not lost.ok
    assert lost.quarantine_rows == 0
    assert lost.ledger_quarantined == report["quarantined_rows"]
    assert (
        sum(m["ledger_quarantined"] for m in lost.quarantine_mismatches)
        == (report["quarantined_rows"])
    )
