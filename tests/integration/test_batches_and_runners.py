"""A run in several batches, on threads and on a Dask cluster: same drops, nothing lost.

The Dask runs start a real ``distributed.LocalCluster`` (worker processes on loopback) through
prefect-dask; the workers fetch from the real store and report task runs to the same Prefect.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.local.stack import PARTNER_BUCKET
from manifest_exchange.publish.partner import verify_drops
from manifest_exchange.runs import batches as runs_batches
from manifest_exchange.storage.s3 import get_bytes, iter_objects

pytestmark = pytest.mark.integration

# Set by the pipeline at the time of the run, so they differ between two runs by design.
RUN_TIME_COLUMNS = ("received_at", "published_at")
# A small batch size so a corpus of a few flights makes several batches.
SMALL_BATCH_MB = 0.02


def _corpus() -> Corpus:
    return make_corpus(flights=12, seed=51, defect_rate=0.1, resend_rate=0.2)


def _drops(exchange: Exchange) -> list[tuple[list[tuple[str, int, str]], pa.Table]]:
    """Each drop in id order: its files (key, rows, partition) and its rows, run times aside."""
    manifests = sorted(
        info.key
        for info in iter_objects(exchange.pipeline, exchange.partner)
        if info.key.endswith("/manifest.json")
    )
    drops = []
    for key in manifests:
        manifest = json.loads(get_bytes(exchange.pipeline, PARTNER_BUCKET, key))
        files = [(f["key"], f["rows"], f["flight_date"]) for f in manifest["files"]]
        folder = key.rsplit("/", 1)[0]
        rows = exchange.published_rows_under(folder).drop_columns(list(RUN_TIME_COLUMNS))
        # Each test exchange has its own source prefix; the object keys under it must match.
        relative = pc.replace_substring(rows["source_object"], f"{exchange.name}/", "")
        rows = rows.set_column(
            rows.schema.get_field_index("source_object"), "source_object", relative
        )
        drops.append((files, rows.sort_by("record_id")))
    return drops


def test_several_batches_account_for_every_traveller_once(exchange: Exchange) -> None:
    corpus = make_corpus(flights=10, seed=52)
    exchange.upload(corpus)

    report = exchange.run(batch_mb=SMALL_BATCH_MB)

    assert report["batches"] > 2
    expected = expected_outcomes(corpus)
    assert {key: report[key] for key in expected} == expected
    assert report["drop_rows"] == report["published"]
    assert len(report["drop_ids"]) == len(set(report["drop_ids"])) > 1
    rows = exchange.published_rows()
    assert rows.num_rows == report["published"]
    assert len(set(rows["record_id"].to_pylist())) == rows.num_rows
    assert verify_drops(exchange.stack.client("partner"), exchange.partner).is_ok
    audit = exchange.audit()
    assert audit.ok, audit.as_dict()
    # Every batch's suites add up in the report (no defects: every candidate is published).
    assert report["validation"]["paxlst_travellers"]["rows"] == report["published"]


def test_dask_runner_publishes_the_same_drops_as_threads(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_dask = Exchange(exchange.stack, monkeypatch)
    for target in (exchange, on_dask):
        target.upload(_corpus())

    threads = exchange.run(batch_mb=SMALL_BATCH_MB)
    # The flow's process checks nothing on Dask, so it does not set up (or import GX) for it.
    warm_ups: list[object] = []
    monkeypatch.setattr(runs_batches, "warm_up", lambda *args: warm_ups.append(args))
    dask = on_dask.run(batch_mb=SMALL_BATCH_MB, runner="dask")
    assert warm_ups == []

    assert threads["batches"] == dask["batches"] > 1
    counts = ("travellers", "published", "out_of_scope", "duplicates", "quarantined_rows")
    assert {k: dask[k] for k in counts} == {k: threads[k] for k in counts}
    assert dask["per_flight"] == threads["per_flight"]
    assert dask["validation"] == threads["validation"]
    assert threads["quarantined_rows"] > 0
    assert threads["duplicates"] > 0
    on_threads, on_cluster = _drops(exchange), _drops(on_dask)
    assert len(on_threads) == len(on_cluster) == len(threads["drop_ids"])
    for (files, rows), (dask_files, dask_rows) in zip(on_threads, on_cluster, strict=True):
        assert dask_files == files
        assert [c for c in rows.column_names if not rows[c].equals(dask_rows[c])] == []
        assert dask_rows.equals(rows)
    assert on_dask.audit().ok


def test_unknown_runner_fails_before_claiming_anything(exchange: Exchange) -> None:
    corpus = make_corpus(flights=1, seed=53)
    exchange.upload(corpus)

    with pytest.raises(ValueError, match="'threads' or 'dask'"):
        exchange.run(runner="spark")

    assert exchange.run()["objects"]["claimed"] == corpus.summary()["objects"]
