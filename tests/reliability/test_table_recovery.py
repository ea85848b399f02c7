"""A run killed between a v3 drop's ``_SUCCESS`` and its table commit: the next run commits it.

The drop is complete (the partner may already read its folder) but not yet in the table; its
batch is still staged, because the staging goes only after the commit, so the next run's
recovery completes the drop again, and the commit with it, exactly once.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.table import StaticTable

from exchange_support import (
    FLIGHT_DATE,
    Exchange,
    agreement_copy,
    iceberg_properties,
    make_corpus,
)
from fault_support import TAKEOVER_S
from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.cli import main
from manifest_exchange.local.generate.paxlst import GeneratorOptions, generate_day
from manifest_exchange.publish.drop_table import DROP_ID, VERSION_HINT, table_location
from manifest_exchange.publish.drops import SUCCESS_MARKER
from manifest_exchange.publish.partner import list_drops, verify_drops
from manifest_exchange.publish.publisher import DropPublisher
from manifest_exchange.publish.sequence import read_latest
from manifest_exchange.storage.s3 import S3Location, exists

pytestmark = pytest.mark.integration

KILLER = Path(__file__).with_name("kill_at.py")


def _table_drops(exchange: Exchange, terms: Agreement) -> list[str]:
    """The drop ids of the table's snapshots, oldest first, read with the partner's keys."""
    table = table_location(S3Location.parse(terms.partner_location), terms.schema_version)
    if not exists(exchange.pipeline, table.bucket, table.key("metadata", VERSION_HINT)):
        return []
    properties = iceberg_properties(exchange.stack, "partner")
    current = StaticTable.from_metadata(str(table), properties=properties)
    return [str(s.summary[DROP_ID]) for s in current.snapshots() if s.summary is not None]


def _complete_drops(exchange: Exchange, terms: Agreement) -> list[str]:
    drops = list_drops(exchange.pipeline, S3Location.parse(terms.partner_location), "3")
    return sorted(drop_id for drop_id, objects in drops.items() if SUCCESS_MARKER in objects)


def _kill_before_the_table_commit(
    exchange: Exchange, prefect_api: str, terms: Agreement, path: Path
) -> str:
    """Run the exchange and SIGKILL it between its drop's ``_SUCCESS`` and the table commit;
    the orphaned drop's id."""
    command = [sys.executable, str(KILLER), "before-table-commit", "run", "--json"]
    command += ["--source", exchange.locations["source"], "--state", exchange.locations["state"]]
    command += ["--agreement", str(path)]
    environment = {
        **os.environ,
        **exchange.environment(),
        "PREFECT_API_URL": prefect_api,
        "MX_CLAIM_TIMEOUT_S": str(TAKEOVER_S),
        "MX_LOCK_TIMEOUT_S": str(TAKEOVER_S),
    }

    killed_run = subprocess.run(
        command, env=environment, capture_output=True, timeout=600, check=False
    )

    assert killed_run.returncode == -signal.SIGKILL, killed_run.stderr.decode()[-3000:]
    complete = _complete_drops(exchange, terms)
    in_table = _table_drops(exchange, terms)
    # The killed run's drop is complete, but neither in the table nor named by _latest.json.
    assert len(complete) == len(in_table) + 1
    (orphan,) = set(complete) - set(in_table)
    latest = read_latest(exchange.pipeline, S3Location.parse(terms.partner_location), "3")
    assert latest is None or latest.drop_id != orphan
    return orphan


@pytest.mark.parametrize("killed", ["first drop", "second drop"])
def test_a_run_killed_before_the_table_commit_is_committed_by_the_next(
    quick_takeover: Exchange, prefect_api: str, tmp_path: Path, killed: str
) -> None:
    exchange = quick_takeover
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=4, seed=82, defect_rate=0.05, flight_defect_rate=0.0))
    if killed == "second drop":
        exchange.run_agreement(path)
        day = FLIGHT_DATE + dt.timedelta(days=1)
        exchange.upload(generate_day(GeneratorOptions(day, flights=3, seed=83)), under="day2")
    orphan = _kill_before_the_table_commit(exchange, prefect_api, terms, path)

    time.sleep(TAKEOVER_S + 0.5)  # the killed run's lock and claims expire
    report = exchange.run_agreement(path)

    assert report["recovered_drops"] == [orphan]
    assert report["drop_ids"] == []  # nothing new: the killed run's batch was all there was
    complete = _complete_drops(exchange, terms)
    assert _table_drops(exchange, terms) == complete  # one snapshot per complete drop, in order
    latest = read_latest(exchange.pipeline, S3Location.parse(terms.partner_location), "3")
    assert latest is not None
    assert latest.drop_id == complete[-1]
    audited = [
        *("audit", "--source", exchange.locations["source"]),
        *("--state", exchange.locations["state"], "--agreement", str(path)),
    ]
    assert main(audited) == 0  # manifest-exchange audit
    partner = verify_drops(
        exchange.stack.client("partner"),
        S3Location.parse(terms.partner_location),
        schema_version="3",
    )
    assert partner.is_ok


def test_a_run_past_its_recovery_completes_the_orphan_before_numbering_its_own_drop(
    quick_takeover: Exchange,
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run that takes the lock after a crash may have done its recovery before the crash
    (it was waiting for the lock): its drop must not take the orphan's sequence number."""
    exchange = quick_takeover
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=3, seed=84))
    orphan = _kill_before_the_table_commit(exchange, prefect_api, terms, path)
    day = FLIGHT_DATE + dt.timedelta(days=1)
    exchange.upload(generate_day(GeneratorOptions(day, flights=3, seed=85)), under="day2")
    # The run's own first step recovers nothing, as if it had run before the crash.
    calls: list[str] = []
    recover = DropPublisher.recover_staged_batches

    def recovered_already_at_the_start(publisher: DropPublisher, *args: Any) -> list[str]:
        calls.append("called")
        return [] if len(calls) == 1 else recover(publisher, *args)

    monkeypatch.setattr(DropPublisher, "recover_staged_batches", recovered_already_at_the_start)
    time.sleep(TAKEOVER_S + 0.5)  # the killed run's lock and claims expire

    report = exchange.run_agreement(path)

    assert report["recovered_drops"] == []
    assert len(report["drop_ids"]) == 1
    assert len(calls) >= 2  # the settling step recovered the orphan
    partner = verify_drops(
        exchange.stack.client("partner"),
        S3Location.parse(terms.partner_location),
        schema_version="3",
    )
    assert partner.is_ok, partner.as_dict()
    assert partner.sequence.last == 2
    assert _table_drops(exchange, terms) == [orphan, report["drop_ids"][0]]
