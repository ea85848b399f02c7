"""Hostile and broken input: each is quarantined (or scoped out) with a reason, nothing else is
lost, and values that look like SQL or EDIFACT syntax stay data."""

from __future__ import annotations

import datetime as dt
import io
import random

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus
from manifest_exchange.agreements import load_agreement
from manifest_exchange.generate.paxlst import Corpus
from manifest_exchange.operations.audit import audit
from manifest_exchange.storage.s3 import S3Location, get_bytes
from manifest_exchange.storage.stack import STATE_BUCKET

pytestmark = pytest.mark.integration

# A surname that is SQL in every dialect and EDIFACT syntax once unescaped: ?' ?+ ?: ?? are
# the release character protecting the terminator and separators.
TRICKY_SURNAME_EDI = b"O?'BRIEN?'?); DROP TABLE persons; --?+?:??"
# What the partner receives: the same characters, upper-cased as the contract normalises names.
TRICKY_SURNAME = "O'BRIEN'); DROP TABLE PERSONS; --+:?"

# A well-formed interchange whose one message has a 2 MB, million-component NAD and no flight.
HUGE_SEGMENT = (
    b"UNA:+.? 'UNB+UNOA:4+X:ZZ+Y:ZZ+261201:0700+1++APIS'UNH+1+PAXLST:D:05B:UN:IATA'"
    b"BGM+745'NAD+FL+++" + b"A:" * 1_000_000 + b"B'UNT+3+1'UNZ+1+1'"
)
UNREADABLE = {
    "hostile/garbage.bin": random.Random(1).randbytes(64 * 1024),
    "hostile/empty.edi": b"",
    "hostile/no terminator.edi": b"NAD+FL+++SMITH:JOHN" * 1_000_000,
    # About 900 bytes of key (S3 allows 1024; SeaweedFS refuses a path part over 255).
    "hostile/ünïcödé ✈ 名前/" + "/".join(["x" * 200] * 4) + ".edi": b"\xff\xfe\x00garbage\x00",
    "hostile/it's; DROP TABLE objects; --.edi": b"'; DROP TABLE objects; --",
}


def _passenger_list(corpus: Corpus) -> int:
    """Index of the first object with a passenger (some objects list only crew)."""
    return next(i for i, o in enumerate(corpus.objects) if b"NAD+FL+++" in o.data)


def _first_surname(data: bytes) -> tuple[int, int]:
    start = data.index(b"NAD+FL+++") + len(b"NAD+FL+++")
    return start, data.index(b":", start)


def _flown_from_japan(corpus: Corpus) -> list[bytes]:
    """Every object of ``corpus`` rewritten as a Japan -> Taiwan flight (another agreement's)."""
    flight = corpus.flights[0]
    dep, arr = flight.legs[0].dep, flight.legs[-1].arr
    swapped = []
    for obj in corpus.objects:
        data = obj.data.replace(f"+{dep}'".encode(), b"+<dep>'")
        data = data.replace(f"+{arr}'".encode(), b"+<arr>'")
        swapped.append(data.replace(b"+<dep>'", b"+NRT'").replace(b"+<arr>'", b"+TPE'"))
    return swapped


def test_hostile_objects_are_quarantined_and_nothing_else_is_lost(exchange: Exchange) -> None:
    clean = make_corpus(flights=3, seed=101)
    tricky = make_corpus(flights=1, seed=102)
    # Seeds whose objects use the default separators, so bytes can be edited in place.
    japan = make_corpus(flights=1, seed=110)
    exchange.upload(clean)
    chosen = _passenger_list(tricky)
    for index, obj in enumerate(tricky.objects):
        data = obj.data
        if index == chosen:
            start, end = _first_surname(data)
            data = data[:start] + TRICKY_SURNAME_EDI + data[end:]
        exchange.upload_bytes(f"tricky/{obj.key}", data)
    for index, data in enumerate(_flown_from_japan(japan)):
        exchange.upload_bytes(f"japan/{index}.edi", data)
    latin1_corpus = make_corpus(flights=1, seed=111)
    latin1 = latin1_corpus.objects[_passenger_list(latin1_corpus)].data
    start, end = _first_surname(latin1)
    exchange.upload_bytes("latin1/names.edi", latin1[:start] + b"M\xdcLLER" + latin1[end:])
    for key, data in UNREADABLE.items():
        exchange.upload_bytes(key, data)
    exchange.upload_bytes("hostile/huge segment.edi", HUGE_SEGMENT)

    report = exchange.run()

    expected = expected_outcomes(clean)["published"] + expected_outcomes(tricky)["published"]
    japan_travellers = sum(expected_outcomes(japan).values())
    rows = exchange.published_rows()
    # The Latin-1 message may be read or refused; either way its travellers are accounted.
    assert rows.num_rows in range(
        expected, expected + 1 + len(make_corpus(flights=1, seed=104).flights[0].passengers)
    )
    assert report["out_of_scope"] >= japan_travellers
    assert not set(rows["dep_airport"].to_pylist()) & {"NRT"}
    hostile_rows = rows.filter(pc.equal(rows["surname"], TRICKY_SURNAME))
    assert hostile_rows.num_rows == 1  # stored verbatim: data, never SQL or syntax
    quarantine = f"{exchange.name}/quarantine/{report['run_id']}"

    def read(name: str) -> dict[str, object]:
        table = pq.read_table(
            io.BytesIO(get_bytes(exchange.pipeline, STATE_BUCKET, f"{quarantine}/{name}"))
        )
        return dict(zip(table["object_key"].to_pylist(), table.to_pylist(), strict=True))

    errors = read("errors.parquet")
    for key in UNREADABLE:
        entry = errors.get(exchange.source.key(key))
        assert entry, f"no quarantine entry for {key!r}"
        assert entry["error_code"], f"no reason for {key!r}"
    huge = read("messages.parquet")[exchange.source.key("hostile/huge segment.edi")]
    assert huge["failed_checks"] or huge["parse_error"]
    checked = audit(
        exchange.pipeline,
        source=exchange.source,
        state=S3Location(STATE_BUCKET, exchange.name),
        partner=exchange.partner,
        agreement=load_agreement("tw-jp"),
        now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    assert checked.ok, checked.as_dict()
