"""Hostile and broken input: each is quarantined (or scoped out) with a reason, nothing else is
lost, and values that look like SQL or EDIFACT syntax stay data."""

from __future__ import annotations

import datetime as dt
import io
import random

import pyarrow.compute as pc
import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.local.stack import SOURCE_BUCKET
from manifest_exchange.operations.audit import AuditReport
from manifest_exchange.storage.s3 import ArrowDownloader

pytestmark = pytest.mark.integration

# A surname that is SQL in every dialect and EDIFACT syntax once unescaped: ?' ?+ ?: ?? are
# the release character protecting the terminator and separators. 35 characters once read, the
# longest surname PAXLST carries (an..35).
TRICKY_SURNAME_EDI = b"O?'BRIEN?'?); DROP TABLE persons;--?+?:??"
# What the partner receives: the same characters, upper-cased as the contract normalises names.
TRICKY_SURNAME = "O'BRIEN'); DROP TABLE PERSONS;--+:?"

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


class _Repeated(io.RawIOBase):
    """``size`` bytes of ``pattern`` over and over, read in parts (never all in memory)."""

    def __init__(self, pattern: bytes, size: int) -> None:
        self.pattern, self.left, self.at = pattern, size, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        repeats = (self.at + n) // len(self.pattern) + 1
        data = (self.pattern * repeats)[self.at : self.at + n]
        self.at = (self.at + n) % len(self.pattern)
        self.left -= n
        return data


def _print_row(input_tried: str, checked: AuditReport) -> None:
    """One row of the faults table (one run; lost and duplicated as the audit finds them)."""
    lost = sum(m["travellers"] - m["accounted"] for m in checked.miscounted_objects)
    print(
        f"\nFAULTS | {input_tried} | 1 | {checked.source_travellers} | {lost} "
        f"| {len(checked.duplicate_publications)} "
        f"| {len(checked.orphan_drops) + len(checked.drop_problems)} "
        f"| {max(0, checked.ledger_quarantined - checked.quarantine_rows)} |"
    )


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

    def read(name: str) -> dict[str, object]:
        table = exchange.quarantine(report["run_id"], name)
        return dict(zip(table["object_key"].to_pylist(), table.to_pylist(), strict=True))

    errors = read("errors")
    for key in UNREADABLE:
        entry = errors.get(exchange.source.key(key))
        assert entry, f"no quarantine entry for {key!r}"
        assert entry["error_code"], f"no reason for {key!r}"
    huge = read("messages")[exchange.source.key("hostile/huge segment.edi")]
    assert huge["failed_checks"] or huge["parse_error"]
    checked = exchange.audit(later=dt.timedelta(hours=1))
    _print_row("hostile objects, SQL/release tricks, Latin-1, another agreement", checked)
    assert checked.ok, checked.as_dict()


def test_an_object_over_the_size_limit_is_refused_without_being_downloaded(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = make_corpus(flights=2, seed=120)
    exchange.upload(clean)
    big_key = exchange.source.key("hostile/500 MB.edi")
    size = 500 * 1024 * 1024
    # Valid interchanges end to end: refused for its size, not for its content.
    exchange.stack.client("loader").upload_fileobj(
        _Repeated(clean.objects[0].data, size),
        SOURCE_BUCKET,
        big_key,
        ExtraArgs={"ServerSideEncryption": "AES256"},
    )
    downloaded: list[str] = []
    real_get_many = ArrowDownloader.get_many

    def spy(self: ArrowDownloader, bucket: str, keys: list[str]) -> list[bytes]:
        downloaded.extend(keys)
        return real_get_many(self, bucket, keys)

    monkeypatch.setattr(ArrowDownloader, "get_many", spy)

    report = exchange.run()

    assert big_key not in downloaded
    assert len(downloaded) == len(clean.objects)
    assert exchange.published_rows().num_rows == expected_outcomes(clean)["published"]
    errors = exchange.quarantine(report["run_id"], "errors")
    refused = errors.filter(pc.equal(errors["object_key"], big_key)).to_pylist()
    assert [row["error_code"] for row in refused] == ["object_too_large"]
    assert f"{size:,} bytes" in refused[0]["reason"]
    checked = exchange.audit(later=dt.timedelta(hours=1))
    _print_row("500 MB object beside a clean corpus", checked)
    assert checked.ok, checked.as_dict()


def _interchange(flight: str, departure: str, arrival: str, names: list[str]) -> bytes:
    """One Taipei -> Narita passenger list of well-formed travellers named ``names``.

    ``departure`` and ``arrival`` are DTM values with their format (``...:203`` for CCYY).
    Every traveller has a document of its own (``flight`` and its place keep them apart).
    """
    persons = "".join(
        f"NAD+FL+++{name}'ATT+2++F'DTM+329:850312'LOC+178+TPE'LOC+179+NRT'NAT+2+USA'"
        f"DOC+P+{flight[2:]}{index:05d}'DTM+36:300101'LOC+91+USA'"
        for index, name in enumerate(names)
    )
    body = (
        f"BGM+745'NAD+MS+++API CENTRE'TDT+20+{flight}+++{flight[:2]}'LOC+125+TPE'"
        f"DTM+189:{departure}'LOC+87+NRT'DTM+232:{arrival}'{persons}CNT+42:{len(names)}'"
    )
    count = body.count("'") + 2
    return (
        f"UNA:+.? 'UNB+UNOA:4+CI:ZZ+TW:ZZ+261201:0830+{flight}++APIS'"
        f"UNH+1+PAXLST:D:05B:UN:IATA+{flight}/1+01:F'{body}UNT+{count}+1'UNZ+1+{flight}'"
    ).encode()


ONE_MB_GIVEN_NAME = "DOE:" + "A" * 1024 * 1024
FIVE_NAME_COMPONENTS = "DOE:ANNA:BEA:CARA:DINA"
# key -> (flight, departure, arrival, travellers' names)
HOSTILE_DATES_AND_NAMES = {
    "dates/year 0001.edi": ("CI0901", "000101010900:203", "000101011300:203", ["ROE:ANN"]),
    "dates/year 9999.edi": ("CI0902", "999912311800:203", "999912312300:203", ["ROE:BEN"]),
    "names/long and many.edi": (
        "CI0903",
        "2612010930:201",
        "2612011350:201",
        ["ROE:CARL", ONE_MB_GIVEN_NAME, FIVE_NAME_COMPONENTS],
    ),
}


def test_implausible_dates_and_oversized_names_are_quarantined_and_the_rest_is_readable(
    exchange: Exchange,
) -> None:
    clean = make_corpus(flights=2, seed=130)
    exchange.upload(clean)
    for key, (flight, departure, arrival, names) in HOSTILE_DATES_AND_NAMES.items():
        exchange.upload_bytes(key, _interchange(flight, departure, arrival, names))

    report = exchange.run()

    rows = exchange.published_rows()
    # What the partner gets reads in pyarrow and pandas, value by value.
    published = rows.to_pylist()
    assert rows.to_pandas().to_string()
    assert len(published) == expected_outcomes(clean)["published"] + 2
    hostile = {r["given_names"]: r for r in published if r["flight_number"] == "0903"}
    assert set(hostile) == {"CARL", "ANNA BEA CARA DINA"}  # every given name kept
    assert not {r["flight_number"] for r in published} & {"0901", "0902"}

    quarantined = exchange.quarantine(report["run_id"], "travellers")
    reasons = {
        key.rsplit("/", 2)[-2] + "/" + key.rsplit("/", 1)[-1]: found
        for key, found in zip(
            quarantined["object_key"].to_pylist(), quarantined["reasons"].to_pylist(), strict=True
        )
    }
    assert "flight_date_plausible" in reasons["dates/year 0001.edi"]
    assert "flight_date_plausible" in reasons["dates/year 9999.edi"]
    assert reasons["names/long and many.edi"] == ["field_too_long"]
    # The pipeline's own quarantine files read as well (the UTC time of 0001-01-01 in Taipei
    # would fall before year 1).
    for name in ("travellers", "messages"):
        assert exchange.quarantine(report["run_id"], name).to_pylist()
    checked = exchange.audit(later=dt.timedelta(hours=1))
    _print_row("flights dated 0001 and 9999, a 1 MB given name, five name components", checked)
    assert checked.ok, checked.as_dict()
