"""Cutting a run into batches, and adding up what the batches report."""

from __future__ import annotations

import datetime as dt
import logging

import pyarrow as pa
import pytest

from manifest_exchange.agreements.terms import load_agreement
from manifest_exchange.config import S3Settings
from manifest_exchange.ingest.manifests import ObjectToRead
from manifest_exchange.paxlst.parser import MAX_OBJECT_BYTES
from manifest_exchange.runs import batches
from manifest_exchange.runs.batches import plan_batches
from manifest_exchange.runs.outcomes import AccountingError, check_accounting

RECEIVED = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _objects(*sizes: int | None) -> list[ObjectToRead]:
    return [ObjectToRead("src", f"k{n:02d}", RECEIVED, size) for n, size in enumerate(sizes)]


def test_batches_keep_receive_order_and_respect_the_listed_size() -> None:
    objects = _objects(40, 40, 40, 10, 90, 5)

    batches = plan_batches(objects, batch_bytes=100, batch_objects=10)

    assert [[o.key for o in batch] for batch in batches] == [
        ["k00", "k01"],
        ["k02", "k03"],
        ["k04", "k05"],
    ]
    assert [o for batch in batches for o in batch] == objects


def test_batches_respect_the_object_count_and_never_split_or_drop_an_object() -> None:
    # An object larger than a batch is a batch of its own; one without a listed size counts 0.
    objects = _objects(500, None, 1, 1, 1)

    batches = plan_batches(objects, batch_bytes=100, batch_objects=2)

    assert [len(batch) for batch in batches] == [1, 2, 2]
    assert sum(len(batch) for batch in batches) == len(objects)


def test_batch_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan_batches(_objects(1), batch_bytes=0)


def test_accounting_that_does_not_add_up_is_refused() -> None:
    accounting = pa.table(
        {
            "flight_key": ["CI0100-TPE-NRT-20261201"] * 2,
            "outcome": ["published", "quarantined"],
            "travellers": [7, 2],
        }
    )

    assert check_accounting(9, accounting, "batch 0")["published"] == 7
    with pytest.raises(AccountingError, match="batch 3: 10 travellers received but 9"):
        check_accounting(10, accounting, "batch 3")


def _settings() -> S3Settings:
    return S3Settings("http://127.0.0.1:1", "us-east-1", "id", "secret")


def test_warm_up_sets_up_what_a_batch_checked_here_would_wait_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(batches, "_downloader", lambda s3: calls.append(("downloader", s3)))
    monkeypatch.setattr(batches, "shared_parser", lambda *route: calls.append(("parser", *route)))
    monkeypatch.setattr(batches, "_process_validator", lambda: calls.append(("validator",)))
    agreement = load_agreement()
    settings = _settings()

    batches.warm_up(settings, agreement).join()
    assert calls == [
        ("downloader", settings),
        ("parser", agreement.origin_country, agreement.destination_country, MAX_OBJECT_BYTES),
        ("validator",),
    ]


def test_a_failed_warm_up_is_logged_and_left_to_the_first_batch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("GX could not start")

    monkeypatch.setattr(batches, "_downloader", lambda s3: None)
    monkeypatch.setattr(batches, "shared_parser", lambda *route: None)
    monkeypatch.setattr(batches, "Validator", broken)
    monkeypatch.setattr(batches, "_validator", None)
    with caplog.at_level(logging.WARNING, logger=batches.__name__):
        batches.warm_up(_settings(), load_agreement()).join()
    assert "warming up failed" in caplog.text
    assert "GX could not start" in caplog.text
    # Nothing half made is kept: the first batch makes the validator again, and raises there.
    assert batches._validator is None
    with pytest.raises(RuntimeError, match="GX could not start"):
        batches._process_validator()
