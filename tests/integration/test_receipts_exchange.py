"""Receipts against the real store: the partner acknowledges with its own keys, reconciliation
reports what is unacknowledged or acknowledged wrongly, retention waits for receipts."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from prefect_aws import AwsClientParameters, AwsCredentials
from pydantic import SecretStr

from exchange_support import Exchange, make_corpus
from manifest_exchange.cli import main
from manifest_exchange.local.commands import upload_corpus
from manifest_exchange.local.stack import STATE_BUCKET
from manifest_exchange.operations.reconcile import Reconciliation, reconcile
from manifest_exchange.operations.retention import carry_out_purge, plan_purge
from manifest_exchange.paths import FLOWS_DIR, PROJECT_ROOT
from manifest_exchange.publish.receipts import (
    Receipt,
    ReceiptCheck,
    confirmed_drops,
    read_receipts,
    write_receipt,
)
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects

pytestmark = pytest.mark.integration

# The partner guide's stock-Python way to write a receipt, run here as the partner runs it.
SNIPPET = PROJECT_ROOT / "docs" / "examples" / "acknowledge_drop.py"
PARTNER_GUIDE = PROJECT_ROOT / "docs" / "partner-guide.md"
LATER = dt.timedelta(hours=2)


@pytest.fixture
def receipts(exchange: Exchange) -> S3Location:
    """This test's receipts, under the prefix the partner may write (``tw-jp/``) but beside the
    agreement's own receipt folders."""
    return S3Location("partner-receipts", f"tw-jp/{exchange.name}")


@contextlib.contextmanager
def partner_keys(exchange: Exchange, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The console script with the partner's own keys, then the pipeline's again."""
    with monkeypatch.context() as partner_env:
        for name, value in exchange.stack.environment("partner").items():
            partner_env.setenv(name, value)
        yield


def _publish_two_drops(exchange: Exchange) -> list[str]:
    """Two runs over two folders: one drop each, in publishing order."""
    drop_ids = []
    for folder, seed in (("first", 61), ("second", 62)):
        where = S3Location(exchange.source.bucket, exchange.source.key(folder))
        upload_corpus(make_corpus(flights=2, seed=seed), where, exchange.stack.client("loader"))
        report = exchange.run()
        assert len(report["drop_ids"]) == 1, report["drop_ids"]
        drop_ids += report["drop_ids"]
    return drop_ids


def _reconcile(exchange: Exchange, receipts: S3Location, later: dt.timedelta) -> Reconciliation:
    """Reconciliation of this test's prefixes and receipts, ``later`` from now."""
    return reconcile(
        exchange.pipeline,
        source=exchange.source,
        state=S3Location(STATE_BUCKET, exchange.name),
        partner=exchange.partner,
        claim_timeout_s=600,
        now=dt.datetime.now(dt.UTC) + later,
        receipts=receipts,
    )


def _receipts_found(exchange: Exchange, receipts: S3Location, later: dt.timedelta) -> ReceiptCheck:
    found = _reconcile(exchange, receipts, later).receipts
    assert found is not None
    return found


def _cli_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, Any]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out)


def test_the_partner_acknowledges_what_it_fetched_and_nothing_is_left_unacknowledged(
    exchange: Exchange,
    receipts: S3Location,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    drop_ids = _publish_two_drops(exchange)
    inbox = tmp_path / "inbox"
    partner = str(exchange.partner)

    with partner_keys(exchange, monkeypatch):
        code, fetched = _cli_json(
            capsys,
            ["partner", "fetch", partner, "--to", str(inbox), "--ack", "--receipts", str(receipts)],
        )
        again_code, again = _cli_json(
            capsys, ["partner", "ack", partner, "--receipts", str(receipts), "--to", str(inbox)]
        )

    assert code == 0
    assert fetched["fetched"] == drop_ids
    assert fetched["receipts"]["acknowledged"] == drop_ids
    assert (again_code, again["acknowledged"], again["already_acknowledged"]) == (0, [], drop_ids)
    stored = read_receipts(exchange.pipeline, receipts, "1")
    for drop_id in drop_ids:
        manifest = (inbox / "v1" / "drops" / drop_id / "manifest.json").read_bytes()
        receipt = stored[drop_id].receipt
        assert receipt is not None
        assert receipt == Receipt.for_manifest(manifest, receipt.received_at)
    result = _reconcile(exchange, receipts, LATER)
    assert result.is_consistent, result.as_dict()
    assert result.receipts is not None
    assert result.receipts.acknowledged == drop_ids
    assert exchange.audit().ok


def test_the_partner_can_name_the_drops_it_acknowledges(
    exchange: Exchange,
    receipts: S3Location,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exchange.upload(make_corpus(flights=1, seed=63))
    (drop_id,) = exchange.run()["drop_ids"]
    ack = ["partner", "ack", str(exchange.partner), "--receipts", str(receipts), "--drop"]

    with partner_keys(exchange, monkeypatch):
        never_published = main([*ack, "19990101T000000Z-none-0000"])
        refusal = capsys.readouterr().err
        code, named = _cli_json(capsys, [*ack, drop_id])

    assert never_published == 2
    assert f"not complete under s3://{exchange.partner.bucket}" in refusal
    assert (code, named["acknowledged"]) == (0, [drop_id])
    assert _receipts_found(exchange, receipts, LATER).acknowledged == [drop_id]


def test_reconcile_reports_a_drop_left_unacknowledged_and_a_receipt_for_other_bytes(
    exchange: Exchange, receipts: S3Location
) -> None:
    acknowledged_wrongly, left_alone = _publish_two_drops(exchange)
    partner = exchange.stack.client("partner")
    wrong = Receipt(acknowledged_wrongly, "1", 1, "0" * 64, dt.datetime.now(dt.UTC))
    assert write_receipt(partner, receipts, wrong)

    in_time = _reconcile(exchange, receipts, dt.timedelta(0))
    overdue = _reconcile(exchange, receipts, LATER)

    assert in_time.receipts is not None
    assert overdue.receipts is not None
    assert in_time.receipts.awaiting == [left_alone]
    assert list(in_time.receipts.mismatched) == [acknowledged_wrongly]
    assert in_time.problem_count == 1
    assert list(overdue.receipts.unacknowledged) == [left_alone]
    assert overdue.receipts.mismatched[acknowledged_wrongly]["receipt_sha256"] == "0" * 64
    assert (overdue.problem_count, overdue.is_consistent) == (2, False)
    # The daily flow fails on them, which is what alerts (a due time short enough to be past).
    operations = _load_flows("operations")
    with pytest.raises(operations.ReconciliationProblemsError, match="1 drops not acknowledged"):
        operations.reconcile_exchange(
            **exchange.locations, receipts=str(receipts), receipt_due_minutes=1e-6
        )


def test_retention_waits_for_the_receipts_of_the_drops_its_sources_went_into(
    exchange: Exchange, receipts: S3Location
) -> None:
    acknowledged, unacknowledged = _publish_two_drops(exchange)
    assert write_receipt(
        exchange.stack.client("partner"), receipts, _receipt_as_published(exchange, acknowledged)
    )
    retention = exchange.stack.client("retention")
    state = S3Location(STATE_BUCKET, exchange.name)

    plan = plan_purge(retention, source=exchange.source, state=state, older_than=dt.timedelta(0))
    confirmed = confirmed_drops(
        exchange.pipeline,
        partner=exchange.partner,
        receipts=receipts,
        schema_version="1",
        drop_ids=plan.drops_to_confirm,
    )
    record = carry_out_purge(
        retention,
        plan,
        source=exchange.source,
        state=state,
        purge_id="t",
        confirmed_drops=confirmed,
    )

    assert plan.drops_to_confirm == [acknowledged, unacknowledged]
    assert confirmed == {acknowledged}
    waiting = sorted(s.info.key for s in plan.expired_sources if s.drop_id == unacknowledged)
    assert waiting, "the unacknowledged drop holds travellers of some source objects"
    assert (record.kept_unacknowledged, record.unacknowledged_drops) == (
        len(waiting),
        [unacknowledged],
    )
    assert sorted(info.key for info in iter_objects(retention, exchange.source)) == waiting
    assert all(key.startswith(exchange.source.key("second")) for key in waiting)
    # Once the partner acknowledges the second drop, the next purge takes the rest.
    assert write_receipt(
        exchange.stack.client("partner"), receipts, _receipt_as_published(exchange, unacknowledged)
    )
    operations = _load_flows("operations")
    result = operations.purge_retention(
        source=str(exchange.source),
        state=str(state),
        retain_days=0,
        require_receipt=True,
        partner=str(exchange.partner),
        receipts=str(receipts),
        **_credentials_blocks(exchange),
    )
    assert (result["kept_unacknowledged"], sorted(result["source_deleted"])) == (0, waiting)
    assert not list(iter_objects(retention, exchange.source))
    assert exchange.audit().ok


def test_a_receipt_written_with_stock_boto3_is_one_the_pipeline_accepts(
    exchange: Exchange, receipts: S3Location, tmp_path: Path
) -> None:
    exchange.upload(make_corpus(flights=1, seed=64))
    (drop_id,) = exchange.run()["drop_ids"]
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(
        get_bytes(
            exchange.pipeline,
            exchange.partner.bucket,
            f"{exchange.name}/v1/drops/{drop_id}/manifest.json",
        )
    )
    # The partner's shell: its own keys in the standard AWS variables, nothing of ours.
    environment = {"PATH": "/usr/bin:/bin", **exchange.stack.environment("partner")}

    written = [
        subprocess.run(
            [sys.executable, str(SNIPPET), str(manifest), str(receipts)],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for _ in range(2)
    ]

    assert written == ["acknowledged\n", "already acknowledged\n"]
    assert _receipts_found(exchange, receipts, LATER).acknowledged == [drop_id]


def test_the_partner_guide_shows_the_snippet_the_test_runs() -> None:
    guide = PARTNER_GUIDE.read_text()
    assert "## Receipts" in guide
    section = guide[guide.index("## Receipts") :]
    block = section[section.index("```python\n") + len("```python\n") :]
    assert block[: block.index("```")] == SNIPPET.read_text()


def _receipt_as_published(exchange: Exchange, drop_id: str) -> Receipt:
    key = f"{exchange.name}/v1/drops/{drop_id}/manifest.json"
    manifest = get_bytes(exchange.pipeline, exchange.partner.bucket, key)
    return Receipt.for_manifest(manifest, dt.datetime.now(dt.UTC))


def _load_flows(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"manifest_exchange_flows.{name}", FLOWS_DIR / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _credentials_blocks(exchange: Exchange) -> dict[str, str]:
    """Blocks for the purge's two identities, as a deployment names them."""
    names = {}
    for parameter, identity in (
        ("s3_credentials_block", "retention"),
        ("receipts_credentials_block", "pipeline"),
    ):
        s3 = exchange.stack.s3_settings(identity)
        name = f"mx-test-{identity}-{uuid.uuid4().hex[:8]}"
        AwsCredentials(
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=SecretStr(s3.secret_access_key or ""),
            region_name=s3.region,
            aws_client_parameters=AwsClientParameters(endpoint_url=s3.endpoint_url),
        ).save(name)
        names[parameter] = name
    return names
