"""Claimed source objects -> one set of parsed tables for the run.

Each object's format is told by its content: an airport CSV export (its first line is the
layout's header, :mod:`..airport_csv`) or, otherwise, PAXLST (anything that is not EDIFACT
either is refused by the PAXLST parser with a precise reason). Both readers give the same
tables. Bytes are fetched concurrently and parsed in bounded batches (see :mod:`..paxlst.parser`);
the batch-local ``object_id`` is replaced by the object key, which is unique within a run, and
every person gets a run-wide ``person_id`` that validation results refer back to.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.paxlst.parser import (
    BATCH_BYTES,
    MAX_OBJECT_BYTES,
    ParseResult,
    PaxlstParser,
    SourceObject,
    batch_bytes_for,
    batches,
)
from manifest_exchange.storage.s3 import Downloader


@dataclass(frozen=True)
class ObjectToRead:
    """A source object the run claimed, with when the pipeline saw it and its listed size."""

    bucket: str
    key: str
    received_at: dt.datetime
    size: int | None = None


@dataclass(frozen=True)
class ParsedManifests:
    """The run's parsed input.

    Attributes:
        objects: one row per object (key, sha256, bytes, receive_order, received_at, error).
        messages: one row per message (see ``sql/staging/paxlst_messages.sql``).
        persons: one row per person in a readable message, with ``person_id``.
        errors: objects and messages that could not be read, with reasons.
    """

    objects: pa.Table
    messages: pa.Table
    persons: pa.Table
    errors: pa.Table

    @property
    def traveller_count(self) -> int:
        """Every traveller received: parsed persons plus those of unreadable messages."""
        unreadable = self.messages.filter(pc.is_valid(self.messages["error_code"]))
        unreadable_persons = pc.sum(unreadable["person_count"]).as_py() or 0
        return int(self.persons.num_rows + unreadable_persons)


def read_manifests(
    downloader: Downloader,
    objects: Sequence[ObjectToRead],
    agreement: Agreement,
    *,
    fetch_page: int = 64,
    fetch_page_bytes: int = 64 * 1024 * 1024,
    max_object_bytes: int = MAX_OBJECT_BYTES,
) -> ParsedManifests:
    """Fetch and parse ``objects`` (in the given order, which is the receive order).

    Objects listed above ``max_object_bytes`` are not downloaded: the parser refuses them by
    their size. Downloads go in pages of at most ``fetch_page`` objects and, by listed size,
    about ``fetch_page_bytes``, so memory does not grow with the objects' sizes.
    """
    received = {obj.key: obj for obj in objects}
    results: list[ParseResult] = []
    parser = shared_parser(
        agreement.origin_country, agreement.destination_country, max_object_bytes
    )
    sources = fetch_objects(
        downloader,
        objects,
        page=fetch_page,
        page_bytes=fetch_page_bytes,
        max_object_bytes=max_object_bytes,
    )
    csv_exports: list[SourceObject] = []
    # Cut by the listed sizes of what will be parsed (unlisted objects: plain 8 MB batches).
    listed = [obj.size for obj in objects if obj.size is not None]
    sizes = [size for size in listed if size <= max_object_bytes]
    batch_bytes = BATCH_BYTES
    if len(listed) == len(objects):
        batch_bytes = batch_bytes_for(sizes, parser.workers)
    results.extend(parser.parse_batches(batches(_paxlst_only(sources, csv_exports), batch_bytes)))
    if csv_exports:
        results.append(airport_csv.read_exports(csv_exports, parser.parse([])))
    order = {obj.key: index for index, obj in enumerate(objects)}
    return _combine(results, order, received)


_PARSERS: dict[tuple[str, str, int], PaxlstParser] = {}
_PARSERS_LOCK = threading.Lock()


def shared_parser(
    origin_country: str, destination_country: str, max_object_bytes: int
) -> PaxlstParser:
    """The process's parser for one route (a run's batches, a Dask worker's batches).

    Setting a parser up (a DuckDB database with the macros and reference tables) is a sizeable
    part of parsing a batch, so a process keeps one per route (decision 0012). Its batches may
    be parsed from several threads at once: each batch runs on a cursor of its own.
    """
    key = (origin_country, destination_country, max_object_bytes)
    with _PARSERS_LOCK:
        if key not in _PARSERS:
            _PARSERS[key] = PaxlstParser(
                origin_country, destination_country, max_object_bytes=max_object_bytes
            )
        return _PARSERS[key]


def _paxlst_only(
    sources: Iterator[SourceObject], csv_exports: list[SourceObject]
) -> Iterator[SourceObject]:
    """Pass PAXLST on to the parser; set airport CSV exports aside (read once at the end)."""
    for source in sources:
        if source.unfetched_size is None and airport_csv.is_airport_csv(source.data):
            csv_exports.append(source)
        else:
            yield source


def pages(
    objects: Sequence[ObjectToRead], max_objects: int, max_bytes: int, max_object_bytes: int
) -> Iterator[list[ObjectToRead]]:
    """Cut ``objects`` into runs of at most ``max_objects`` and about ``max_bytes`` listed."""
    page: list[ObjectToRead] = []
    size = 0
    for obj in objects:
        # Objects over the limit are not downloaded, so they take no room in a page.
        obj_bytes = obj.size if obj.size is not None and obj.size <= max_object_bytes else 0
        if page and (len(page) >= max_objects or size + obj_bytes > max_bytes):
            yield page
            page, size = [], 0
        page.append(obj)
        size += obj_bytes
    if page:
        yield page


def fetch_objects(
    downloader: Downloader,
    objects: Sequence[ObjectToRead],
    *,
    page: int = 64,
    page_bytes: int = 64 * 1024 * 1024,
    max_object_bytes: int = MAX_OBJECT_BYTES,
) -> Iterator[SourceObject]:
    """Download ``objects`` in order, concurrently within bounded pages; objects listed above
    ``max_object_bytes`` are not downloaded (the parser refuses them by their size)."""
    for chunk in pages(objects, page, page_bytes, max_object_bytes):
        yield from _fetch_page(downloader, chunk, max_object_bytes)


def _fetch_page(
    downloader: Downloader, page: list[ObjectToRead], max_object_bytes: int
) -> Iterator[SourceObject]:
    by_bucket: dict[str, list[str]] = {}
    for obj in page:
        if obj.size is None or obj.size <= max_object_bytes:
            by_bucket.setdefault(obj.bucket, []).append(obj.key)
    fetched: dict[str, bytes] = {}
    for bucket, keys in by_bucket.items():
        fetched.update(zip(keys, downloader.get_many(bucket, keys), strict=True))
    for obj in page:
        if obj.key in fetched:
            yield SourceObject(obj.key, fetched[obj.key])
        else:
            yield SourceObject(obj.key, b"", unfetched_size=obj.size)


def _combine(
    results: list[ParseResult], order: dict[str, int], received: dict[str, ObjectToRead]
) -> ParsedManifests:
    def concat(tables: list[pa.Table]) -> pa.Table:
        combined = pa.concat_tables(tables, promote_options="permissive")
        if "object_id" in combined.column_names:
            combined = combined.drop_columns(["object_id"])
        return combined

    if not results:
        with PaxlstParser() as parser:
            results = [parser.parse([])]
    objects = concat([r.objects for r in results])
    keys = objects.column("object_key").to_pylist()
    objects = objects.append_column(
        "receive_order", pa.array([order[k] for k in keys], pa.int32())
    ).append_column(
        "received_at",
        pa.array([received[k].received_at for k in keys], pa.timestamp("us", tz="UTC")),
    )
    persons = concat([r.persons for r in results])
    persons = persons.append_column("person_id", pa.array(range(persons.num_rows), pa.int64()))
    return ParsedManifests(
        objects=objects,
        messages=concat([r.messages for r in results]),
        persons=persons,
        errors=concat([r.errors for r in results]),
    )
