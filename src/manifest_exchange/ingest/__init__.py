"""Claimed source objects -> one set of parsed tables for the run.

Bytes are fetched concurrently and parsed in bounded batches (see :mod:`..paxlst.parser`);
the batch-local ``object_id`` is replaced by the object key, which is unique within a run, and
every person gets a run-wide ``person_id`` that validation results refer back to.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.agreements import Agreement
from manifest_exchange.paxlst.parser import ParseResult, PaxlstParser, SourceObject, batches
from manifest_exchange.storage.s3 import S3Client, get_many


@dataclass(frozen=True)
class ObjectToRead:
    """A source object the run claimed, with when the pipeline saw it."""

    bucket: str
    key: str
    received_at: dt.datetime


@dataclass(frozen=True)
class ParsedManifests:
    """The run's parsed input.

    Attributes:
        objects: one row per object (key, sha256, bytes, receive_order, received_at, error).
        messages: one row per message (see ``sql/paxlst_messages.sql``).
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
    client: S3Client,
    objects: Sequence[ObjectToRead],
    agreement: Agreement,
    *,
    fetch_page: int = 64,
) -> ParsedManifests:
    """Fetch and parse ``objects`` (in the given order, which is the receive order)."""
    received = {obj.key: obj for obj in objects}
    results: list[ParseResult] = []
    with PaxlstParser(agreement.origin_country, agreement.destination_country) as parser:
        results.extend(parser.parse_batches(batches(_fetch(client, objects, fetch_page))))
    order = {obj.key: index for index, obj in enumerate(objects)}
    return _combine(results, order, received)


def _fetch(client: S3Client, objects: Sequence[ObjectToRead], page: int) -> Iterator[SourceObject]:
    for start in range(0, len(objects), page):
        chunk = objects[start : start + page]
        by_bucket: dict[str, list[str]] = {}
        for obj in chunk:
            by_bucket.setdefault(obj.bucket, []).append(obj.key)
        for bucket, keys in by_bucket.items():
            for key, data in zip(keys, get_many(client, bucket, keys), strict=True):
                yield SourceObject(key, data)


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
