"""Reconciliation and retention against the real store, after real exchange runs."""

from __future__ import annotations

import datetime as dt
import json

import botocore.exceptions
import pytest

from exchange_support import Exchange, make_corpus
from manifest_exchange.local.stack import PARTNER_BUCKET, STATE_BUCKET
from manifest_exchange.operations.reconcile import reconcile
from manifest_exchange.operations.retention import purge
from manifest_exchange.storage.ledger import Discovery, Ledger
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects, put_bytes

pytestmark = pytest.mark.integration

LATER = dt.timedelta(hours=1)


def _locations(exchange: Exchange) -> dict[str, S3Location]:
    return {
        "source": exchange.source,
        "state": S3Location(STATE_BUCKET, exchange.name),
        "partner": exchange.partner,
    }


def test_reconcile_after_a_run_finds_everything_consistent(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=3, seed=31))
    report = exchange.run()

    result = reconcile(exchange.pipeline, **_locations(exchange), claim_timeout_s=600)

    assert result.is_consistent, result.as_dict()
    assert result.processed == result.source_objects == report["objects"]["claimed"]
    assert result.drops_verified == 1


def test_reconcile_reports_unprocessed_stuck_orphan_and_mismatch(exchange: Exchange) -> None:
    corpus = make_corpus(flights=3, seed=32)
    exchange.upload(corpus)
    report = exchange.run()
    locations = _locations(exchange)
    # Landed after the run and never picked up:
    exchange.upload_bytes("late/unprocessed.edi", corpus.objects[0].data + b"\n")
    # Claimed by a run that then crashed:
    exchange.upload_bytes("late/stuck.edi", corpus.objects[1].data + b"\n")
    ledger = Ledger(exchange.pipeline, locations["state"], claim_timeout_s=600)
    discovery = ledger.discover(S3Location(exchange.source.bucket, exchange.source.key("late")))
    stuck = [c for c in discovery.candidates if c[0].key.endswith("stuck.edi")]
    ledger.claim(Discovery(1, 0, 0, stuck), "crashed-run")
    # A partner folder whose publish never finished:
    orphan = f"{exchange.name}/v1/drops/20261124T000000Z-orphan/arr_airport=NRT/part-0.parquet"
    put_bytes(exchange.pipeline, PARTNER_BUCKET, orphan, b"PAR1")
    # A ledger outcome that claims more published travellers than the drop holds:
    exchange.edit_outcome(
        lambda outcome: outcome["travellers"].update(
            published=outcome["travellers"]["published"] + 1
        ),
        where=lambda outcome: outcome["travellers"].get("published", 0) > 0,
    )

    result = reconcile(
        exchange.pipeline,
        **locations,
        claim_timeout_s=600,
        now=dt.datetime.now(dt.UTC) + LATER,
    )

    assert not result.is_consistent
    assert result.unprocessed == [exchange.source.key("late/unprocessed.edi")]
    assert result.stuck == [exchange.source.key("late/stuck.edi")]
    assert result.orphan_drops == ["20261124T000000Z-orphan"]
    assert result.row_mismatches == {
        report["drop_ids"][0]: {
            "ledger_published": report["published"] + 1,
            "drop_rows": report["published"],
        }
    }
    assert result.problem_count == 4


def test_retention_purges_processed_manifests_and_quarantine_only(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=4, seed=33, defect_rate=0.1))
    report = exchange.run()
    assert report["quarantined_rows"] > 0, "the corpus must produce quarantine to purge"
    exchange.upload_bytes("late/unprocessed.edi", b"UNA:+.? 'UNB+UNOA:4'")
    locations = _locations(exchange)
    state = locations["state"]
    retention = exchange.stack.client("retention")
    before = {
        "source": len(list(iter_objects(retention, exchange.source))),
        "partner": len(list(iter_objects(exchange.pipeline, exchange.partner))),
    }

    dry = purge(
        retention,
        source=exchange.source,
        state=state,
        older_than=dt.timedelta(0),
        purge_id="dry",
        dry_run=True,
    )
    assert len(list(iter_objects(retention, exchange.source))) == before["source"]
    record = purge(
        retention,
        source=exchange.source,
        state=state,
        older_than=dt.timedelta(0),
        purge_id="test",
    )

    assert record.source_deleted == dry.source_deleted
    assert len(record.source_deleted) == report["objects"]["claimed"]
    assert record.kept_unprocessed == 1
    assert record.quarantine_deleted
    remaining = [info.key for info in iter_objects(retention, exchange.source)]
    assert remaining == [exchange.source.key("late/unprocessed.edi")]
    assert not list(iter_objects(retention, S3Location(STATE_BUCKET, state.key("quarantine"))))
    # The proof of what was exchanged stays: drops, ledger outcomes, the purge record.
    assert len(list(iter_objects(exchange.pipeline, exchange.partner))) == before["partner"]
    assert exchange.outcome_count(retention) == report["objects"]["claimed"]
    assert record.record_uri is not None
    saved = json.loads(get_bytes(retention, STATE_BUCKET, record.record_uri.split("/", 3)[3]))
    assert saved["source_deleted"] == record.source_deleted


def test_the_exchange_identity_cannot_purge_manifests(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=1, seed=34))
    exchange.run()

    with pytest.raises((botocore.exceptions.ClientError, RuntimeError)):
        purge(
            exchange.pipeline,
            source=exchange.source,
            state=S3Location(STATE_BUCKET, exchange.name),
            older_than=dt.timedelta(0),
            purge_id="not-allowed",
        )
    assert list(iter_objects(exchange.pipeline, exchange.source))
