"""The exchange flow end to end on the real stack: SeaweedFS, Prefect, GX, DuckDB.

Each test works under its own prefixes in the three buckets, so tests share one store.
Expected counts come from the generator's ground truth, never from the pipeline itself.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus, revise_one_traveller
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
)
from manifest_exchange.publish.partner import fetch_drops, verify_drops
from manifest_exchange.runs import batches as runs_batches
from manifest_exchange.storage.locks import PublishLock
from manifest_exchange.storage.s3 import get_bytes, iter_objects, put_bytes

pytestmark = pytest.mark.integration

Run = Callable[[], dict[str, Any]]


def _assert_outcomes(report: dict[str, Any], expected: dict[str, int]) -> None:
    actual = {key: report[key] for key in expected}
    assert actual == expected
    assert report["travellers"] == sum(expected.values())


def test_clean_day_publishes_every_foreign_passenger_once(exchange: Exchange) -> None:
    corpus = make_corpus()
    exchange.upload(corpus)

    report = exchange.run()

    _assert_outcomes(report, expected_outcomes(corpus))
    assert len(report["drop_ids"]) == 1
    rows = exchange.published_rows()
    assert rows.num_rows == report["published"]
    assert len(set(rows["record_id"].to_pylist())) == rows.num_rows
    assert "JPN" not in set(rows["nationality"].to_pylist())
    assert set(rows["traveller_type"].to_pylist()) <= {"PASSENGER", "TRANSIT"}
    assert set(rows.column_names) >= {"arr_airport", "flight_date", "doc_match_hmac"}
    verified = verify_drops(exchange.stack.client("partner"), exchange.partner)
    assert verified.is_ok
    assert verified.as_dict()["rows"] == report["published"]


def test_rerun_with_nothing_new_publishes_nothing(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm_ups: list[str] = []
    warm_up = runs_batches.warm_up

    def recording(s3: Any, agreement: Any) -> Any:
        warm_ups.append(agreement.name)
        return warm_up(s3, agreement)

    monkeypatch.setattr(runs_batches, "warm_up", recording)
    exchange.upload(make_corpus(flights=3, seed=12))
    first = exchange.run()
    assert warm_ups == ["tw-jp"]  # objects to check, on this process's threads

    second = exchange.run()
    assert warm_ups == ["tw-jp"]  # nothing new: GX is not even imported for it

    assert first["drop_ids"]
    assert second["drop_ids"] == []
    assert second["objects"]["claimed"] == 0
    assert second["objects"]["already_processed"] == first["objects"]["claimed"]
    assert second["travellers"] == 0


def test_defective_travellers_are_quarantined_with_reasons(exchange: Exchange) -> None:
    corpus = make_corpus(flights=10, seed=13, defect_rate=0.08, flight_defect_rate=0.0)
    planted = sum(bool(t.defects) for f in corpus.flights for t in f.passengers)
    assert planted > 5, "the corpus must plant defects for this test to mean anything"
    exchange.upload(corpus)

    report = exchange.run()

    _assert_outcomes(report, expected_outcomes(corpus))
    quarantine = exchange.quarantine(report["run_id"], "travellers")
    assert quarantine.num_rows == report["quarantined_rows"]
    reasons = {r for row in quarantine["reasons"].to_pylist() for r in row}
    assert reasons <= {
        "date_of_birth_valid",
        "date_of_birth_plausible",
        "document_expired",
        "document_present",
        "document_number_present",
        "document_number_format",
        "sex_code",
        "nationality_code",
    }
    assert "document_expired" in reasons


def test_a_resend_in_a_later_run_publishes_nothing(exchange: Exchange) -> None:
    corpus = make_corpus(flights=4, seed=14)
    exchange.upload(corpus)
    first = exchange.run()
    original = corpus.objects[0]
    # The same payload under a new interchange reference, as airlines resend.
    old_ref = original.key.rsplit("_", 1)[1].removesuffix(".edi")
    resend = original.data.replace(old_ref.encode(), b"9999999999")

    exchange.upload_bytes("resends/again.edi", resend)
    second = exchange.run()

    assert first["published"] > 0
    assert second["objects"]["claimed"] == 1
    assert second["published"] == 0
    assert second["drop_ids"] == []
    assert second["duplicates"] + second["out_of_scope"] == second["travellers"]


def test_a_changed_revision_republishes_that_traveller_only(exchange: Exchange) -> None:
    corpus = make_corpus(flights=6, seed=15)
    exchange.upload(corpus)
    first = exchange.run()
    original, revised = revise_one_traveller(corpus)

    exchange.upload_bytes("revisions/revised.edi", revised)
    second = exchange.run()

    assert second["published"] == 1
    assert second["duplicates"] >= 1
    rows = exchange.published_rows()
    assert rows.num_rows == first["published"] + 1
    newest = rows.filter(pc.equal(rows["manifest_revision"], 2))
    assert newest.num_rows == 1
    (record_id,) = newest["record_id"].to_pylist()
    both = rows.filter(pc.equal(rows["record_id"], record_id))
    assert sorted(both["manifest_revision"].to_pylist()) == [1, 2]
    assert newest["given_names"][0].as_py().endswith(" REVISED")
    assert newest["source_object"][0].as_py().endswith("revisions/revised.edi")
    assert original != revised


def test_two_runs_at_once_publish_each_traveller_once(exchange: Exchange, prefect_api: str) -> None:
    corpus = make_corpus(flights=10, seed=16, resend_rate=0.3)
    assert any(o.is_resend for o in corpus.objects)
    exchange.upload(corpus)
    env = {**os.environ, **exchange.environment(), "PREFECT_API_URL": prefect_api}
    command = [sys.executable, "-m", "manifest_exchange.cli", "run", "--json"]
    for name, value in exchange.locations.items():
        command += [f"--{name}", value]

    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=400) for p in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()[-3000:]
    reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["objects"]["claimed"] for r in reports) == len(corpus.objects)
    expected = expected_outcomes(corpus)
    assert sum(r["published"] for r in reports) == expected["published"]
    rows = exchange.published_rows()
    assert rows.num_rows == expected["published"]
    assert len(set(rows["record_id"].to_pylist())) == rows.num_rows


def test_partner_verify_detects_a_tampered_file(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=3, seed=17))
    exchange.run()
    partner = exchange.stack.client("partner")
    assert verify_drops(partner, exchange.partner).is_ok
    data_file = next(
        info.key
        for info in iter_objects(exchange.pipeline, exchange.partner)
        if info.key.endswith(".parquet")
    )
    original = get_bytes(exchange.pipeline, PARTNER_BUCKET, data_file)
    tampered = pq.read_table(io.BytesIO(original)).slice(1)
    sink = io.BytesIO()
    pq.write_table(tampered, sink, compression="zstd")

    put_bytes(exchange.pipeline, PARTNER_BUCKET, data_file, sink.getvalue())
    result = verify_drops(partner, exchange.partner)

    assert not result.is_ok
    (problems,) = result.as_dict()["problems"].values()
    assert any("sha256" in p for p in problems)


def test_a_crash_before_success_leaves_no_drop_and_the_next_run_completes_it(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    corpus = make_corpus(flights=4, seed=18)
    exchange.upload(corpus)

    def crash(self: PublishLock, generation: int) -> bool:
        raise RuntimeError("injected crash after the data files, before _SUCCESS")

    with monkeypatch.context() as patch:
        patch.setattr(PublishLock, "is_held_by", crash)
        with pytest.raises(RuntimeError, match="injected crash"):
            exchange.run()
    partner = exchange.stack.client("partner")
    pending = verify_drops(partner, exchange.partner)
    assert pending.as_dict()["drops_verified"] == 0
    assert len(pending.pending) == 1
    assert fetch_drops(partner, exchange.partner, tmp_path) == []

    report = exchange.run()

    assert report["recovered_drops"] == pending.pending
    assert report["objects"]["claimed"] == 0
    completed = verify_drops(partner, exchange.partner)
    assert completed.is_ok
    assert completed.as_dict()["rows"] == expected_outcomes(corpus)["published"]
    assert completed.pending == []


def test_the_run_receives_every_traveller_the_generator_wrote(exchange: Exchange) -> None:
    """Ground truth and the run agree to the traveller, truncated transmissions included: what
    a truncation cut off is reported by the generator as cut off, not as sent."""
    corpus = make_corpus(flights=12, seed=29, defect_rate=0.1, flight_defect_rate=0.6)
    generated = corpus.summary()
    assert generated["truncated_objects"] > 0
    assert generated["travellers_cut_off"] > 0
    exchange.upload(corpus)

    report = exchange.run()

    assert report["travellers"] == generated["travellers_in_objects"]
    # The quarantine summary stands for exactly the travellers the report quarantined: an
    # unreadable message counts its NAD segments, other travellers count one each.
    quarantine = report["quarantine"]
    assert quarantine["total"]["travellers"] == report["quarantined_rows"]
    assert quarantine["total"]["messages"] == report["quarantined_messages"]
    assert quarantine["by_reason"]["message_truncated"]["travellers"] > 0
    assert quarantine["settled_by_other_runs"]["travellers"] == 0
