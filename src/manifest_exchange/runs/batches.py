"""A run's objects in batches: memory bounded by the batch, and work any task runner can run.

A run's claimed objects are cut, in receive order, into batches of about ``batch_bytes`` by
their listed size. Checking a batch (fetch, parse, transform, validate) needs only the store's
settings and the agreement, both picklable, so the flow's task runner may run it in a thread,
another process or another machine (Dask). Deciding outcomes and publishing stay in the flow,
one batch at a time and in batch order, under the publish lock: a batch behaves exactly as if
its objects had arrived in a run of their own.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.config import S3Settings
from manifest_exchange.ingest.manifests import (
    ObjectToRead,
    ParsedManifests,
    pages,
    read_manifests,
    shared_parser,
)
from manifest_exchange.paxlst.parser import MAX_OBJECT_BYTES
from manifest_exchange.quality.suites import load_suite
from manifest_exchange.quality.validator import SuiteResult, Validator
from manifest_exchange.storage.s3 import ArrowDownloader
from manifest_exchange.transform.exchange import (
    exchange_lists,
    exchange_messages,
    exchange_travellers,
)

# About 60,000 travellers of EDIFACT; the largest size whose overlapping batches keep a
# million-traveller run under 2 GB (decision 0004).
DEFAULT_BATCH_MB = 10.0
DEFAULT_BATCH_BYTES = int(DEFAULT_BATCH_MB * 1024 * 1024)
DEFAULT_BATCH_OBJECTS = 2_000
# Where batches are checked (``manifest_exchange.orchestration.runners``).
RUNNERS = ("threads", "dask")

logger = logging.getLogger(__name__)


@dataclass
class CheckedBatch:
    """One batch parsed, transformed and validated, ready for outcomes and publishing.

    Attributes:
        number: the batch's place in the run (0-based); batches publish in this order.
        objects: the batch's objects, in receive order.
        parsed: what the parser read (``person_id`` is local to the batch).
        messages: ``exchange_messages`` rows.
        travellers: ``exchange_travellers`` rows.
        results: the message, traveller and list suites' results, by suite name.
        timings: seconds spent in parse, transform and validate.
    """

    number: int
    objects: list[ObjectToRead]
    parsed: ParsedManifests
    messages: pa.Table
    travellers: pa.Table
    results: dict[str, SuiteResult]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def message_issues(self) -> pa.Table:
        return self.results["paxlst_messages"].issues

    @property
    def issues(self) -> dict[str, pa.Table]:
        """The suites' issues under the names ``transform.exchange_outcomes`` expects."""
        return {
            "message_issues": self.message_issues,
            "traveller_issues": self.results["paxlst_travellers"].issues,
            "list_issues": self.results["paxlst_lists"].issues,
        }


def plan_batches(
    objects: Sequence[ObjectToRead],
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    batch_objects: int = DEFAULT_BATCH_OBJECTS,
) -> list[list[ObjectToRead]]:
    """Cut ``objects`` (in receive order) into batches by listed size and count."""
    if batch_bytes <= 0 or batch_objects <= 0:
        raise ValueError("batch size and object count must be positive")
    return list(pages(objects, batch_objects, batch_bytes, MAX_OBJECT_BYTES))


def check_batch(
    s3: S3Settings,
    agreement: Agreement,
    objects: list[ObjectToRead],
    number: int,
    validator: Validator | None = None,
) -> CheckedBatch:
    """Fetch, parse, transform and validate one batch.

    Args:
        s3: how to reach the store (a client is made once per process).
        agreement: the run's agreement.
        objects: the batch, in receive order.
        number: the batch's place in the run.
        validator: defaults to one per process.
    """
    validator = validator or _process_validator()
    timings: dict[str, float] = defaultdict(float)
    with _timed(timings, "parse"):
        parsed = read_manifests(_downloader(s3), objects, agreement)
    with _timed(timings, "transform"):
        messages = exchange_messages(parsed.messages, parsed.objects, agreement)
    with _timed(timings, "validate"):
        readable = messages.filter(pc.is_null(messages["parse_error"]))
        message_result = validator.validate(load_suite("paxlst_messages"), readable)
    # Traveller rows need the messages' verdicts, so transform and validate alternate.
    with _timed(timings, "transform"):
        travellers = exchange_travellers(parsed.persons, messages, message_result.issues, agreement)
        lists = exchange_lists(messages, travellers)
    with _timed(timings, "validate"):
        # Travellers already settled (out of scope, in a quarantined message) are not validated.
        # Only the suite's columns are filtered: the wide rows would be copied for nothing.
        traveller_suite = load_suite("paxlst_travellers")
        candidates = travellers.select(traveller_suite.columns).filter(
            pc.is_null(travellers["stage_outcome"])
        )
        traveller_result = validator.validate(traveller_suite, candidates)
        list_result = validator.validate(load_suite("paxlst_lists"), lists)
    results = {r.suite: r for r in (message_result, traveller_result, list_result)}
    return CheckedBatch(
        number=number,
        objects=list(objects),
        parsed=parsed,
        messages=messages,
        travellers=travellers,
        results=results,
        timings=dict(timings),
    )


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] += time.perf_counter() - started


@functools.cache
def _downloader(s3: S3Settings) -> ArrowDownloader:
    """One per process: Arrow's S3 client keeps its connections between batches."""
    return ArrowDownloader(s3)


_VALIDATOR_LOCK = threading.Lock()
_validator: Validator | None = None


def _process_validator() -> Validator:
    """One GX context per process (a Dask worker, or the flow's process for threads).

    Created under a lock: GX's set-up is not safe from two threads at once.
    The validator serialises its own runs, so threads then share it safely.
    """
    global _validator
    with _VALIDATOR_LOCK:
        if _validator is None:
            _validator = Validator()
        return _validator


def warm_up(s3: S3Settings, agreement: Agreement) -> threading.Thread:
    """Set up, on a background thread, what the run's first batch checked in this process
    would otherwise wait for: the downloader, the parser and the validator.

    Importing GX holds the GIL for seconds; done at the first batch's validation, it stalls
    both batches in flight (decision 0016). Started once discovery has found
    something to check, it runs while claiming and the first fetches wait on the store. A
    failure is logged and left to the batch, which sets up again and raises it where the run
    reports it.
    """

    def set_up() -> None:
        try:
            _downloader(s3)
            shared_parser(agreement.origin_country, agreement.destination_country, MAX_OBJECT_BYTES)
            _process_validator()
        except Exception:
            logger.warning("warming up failed; the first batch sets up again", exc_info=True)

    thread = threading.Thread(target=set_up, name="warm-up", daemon=True)
    thread.start()
    return thread
