from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from manifest_exchange.paxlst.parser import (
    BATCH_BYTES,
    ParseResult,
    PaxlstParser,
    SourceObject,
    batch_bytes_for,
    batches,
)

GTAS = Path(__file__).parents[2] / "fixtures" / "gtas"


@pytest.fixture(scope="module")
def parser() -> PaxlstParser:
    return PaxlstParser("TWN", "JPN")


def message(
    *persons: str,
    ref: str = "M1",
    flight: str = (
        "TDT+20+CI100+++CI'LOC+125+TPE'DTM+189:2612010930:201'LOC+87+NRT'DTM+232:2612011350:201'"
    ),
    bgm: str = "745",
    trailer: bool = True,
) -> str:
    body = f"BGM+{bgm}'NAD+MS+++API CENTRE'{flight}{''.join(persons)}CNT+42:{len(persons)}'"
    count = body.count("'") + 2
    return f"UNH+{ref}+PAXLST:D:05B:UN:IATA+CI0100/261201/0930+01:F'{body}" + (
        f"UNT+{count}+{ref}'" if trailer else ""
    )


def interchange(*messages: str) -> bytes:
    return (
        "UNA:+.? 'UNB+UNOA:4+CI:ZZ+TW:ZZ+261201:0830+IC1++APIS'"
        + "".join(messages)
        + f"UNZ+{len(messages)}+IC1'"
    ).encode()


PERSON = (
    "NAD+FL+++O?'NEIL:MARY:JANE'ATT+2++F'DTM+329:850312'LOC+178+TPE'LOC+179+NRT'"
    "LOC+174+USA'NAT+2+USA'RFF+AVF:ABC123'DOC+P:110:111+ 123-456 789'DTM+36:300101'LOC+91+USA'"
)


def parse(parser: PaxlstParser, *objects: bytes) -> ParseResult:
    return parser.parse([SourceObject(f"obj-{i}", data) for i, data in enumerate(objects)])


def test_reads_a_passenger_with_exchange_field_names(parser: PaxlstParser) -> None:
    result = parse(parser, interchange(message(PERSON)))
    assert result.errors.num_rows == 0
    (person,) = result.persons.to_pylist()
    assert person["surname"] == "O'NEIL"
    assert person["given_names"] == "MARY JANE"
    assert person["sex"] == "F"
    assert person["date_of_birth"] == dt.date(1985, 3, 12)
    assert person["nationality"] == "USA"
    assert person["residence_country"] == "USA"
    assert person["doc_type"] == "P"
    assert person["doc_number"] == "123456789"
    assert person["doc_issuing_state"] == "USA"
    assert person["doc_expiry_date"] == dt.date(2030, 1, 1)
    assert (person["carrier_code"], person["flight_number"]) == ("CI", "0100")
    assert (person["dep_airport"], person["arr_airport"]) == ("TPE", "NRT")
    assert person["sched_departure_local"] == dt.datetime(2026, 12, 1, 9, 30)
    assert person["flight_date"] == dt.date(2026, 12, 1)
    assert person["role"] == "passenger"
    assert person["pnr_locator"] == "ABC123"
    assert person["common_access_ref"] == "CI0100/261201/0930"
    assert (person["part_number"], person["part_indicator"]) == (1, "F")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("150301", dt.date(2015, 3, 1)),  # a child: 20yy is not after departure
        ("450301", dt.date(1945, 3, 1)),  # 2045 would be after departure
        ("261201", dt.date(2026, 12, 1)),  # born on the day of departure
        ("261202", dt.date(1926, 12, 2)),  # a day after departure cannot be 2026
        ("19770704", dt.date(1977, 7, 4)),  # CCYYMMDD as sent
        ("871332", None),  # month 13: not a date
        ("870230", None),  # 30 February
        ("00000101", None),  # year 0000: DuckDB's 1 BC, which pyarrow cannot read
    ],
)
def test_two_digit_birth_years_never_after_departure(
    parser: PaxlstParser, raw: str, expected: dt.date | None
) -> None:
    person = PERSON.replace("DTM+329:850312", f"DTM+329:{raw}")
    (row,) = parse(parser, interchange(message(person))).persons.to_pylist()
    assert row["date_of_birth"] == expected
    assert row["date_of_birth_raw"] == raw


@pytest.mark.parametrize(
    ("name", "surname", "given_names"),
    [
        ("DOE:ANNA:BEA:CARA:DINA", "DOE", "ANNA BEA CARA DINA"),  # all four given names
        ("DOE:ANNA:BEA:CARA:DINA:EVA", "DOE", "ANNA BEA CARA DINA EVA"),  # past C080's five
        ("DOE: ANNA ::BEA:", "DOE", "ANNA BEA"),  # stray spaces and empty components
        ("DOE", "DOE", None),
    ],
)
def test_every_given_name_component_is_kept(
    parser: PaxlstParser, name: str, surname: str, given_names: str | None
) -> None:
    person = PERSON.replace("O?'NEIL:MARY:JANE", name)
    (row,) = parse(parser, interchange(message(person))).persons.to_pylist()
    assert (row["surname"], row["given_names"]) == (surname, given_names)


@pytest.mark.parametrize(
    ("departure", "expected"),
    [
        ("0001010100:201", dt.datetime(2000, 1, 1, 1, 0)),  # YY is always 20YY
        ("000101010900:203", dt.datetime(1, 1, 1, 9, 0)),  # read; the message suite judges it
        ("999912312300:203", dt.datetime(9999, 12, 31, 23, 0)),
        ("000001010900:203", None),  # year 0000 is no date (1 BC in DuckDB)
    ],
)
def test_departure_times_are_read_as_sent_or_null(
    parser: PaxlstParser, departure: str, expected: dt.datetime | None
) -> None:
    flight = f"TDT+20+CI100+++CI'LOC+125+TPE'DTM+189:{departure}'LOC+87+NRT'DTM+232:2612011350:201'"
    (row,) = parse(parser, interchange(message(PERSON, flight=flight))).messages.to_pylist()
    assert row["sched_departure_local"] == expected


def test_repeated_nationality_and_icao_codes_are_normalised(parser: PaxlstParser) -> None:
    person = PERSON.replace("NAT+2+USA'", "NAT+2+D'NAT+2+JP'").replace("LOC+91+USA", "LOC+91+D")
    (row,) = parse(parser, interchange(message(person))).persons.to_pylist()
    assert row["nationalities"] == ["DEU", "JPN"]
    assert row["nationality"] == "DEU"
    assert row["doc_issuing_state"] == "DEU"


@pytest.mark.parametrize(
    ("party", "role"), [("FL", "passenger"), ("FM", "crew"), ("DDU", "transit"), ("DDT", "crew")]
)
def test_party_qualifier_gives_the_role(parser: PaxlstParser, party: str, role: str) -> None:
    (row,) = parse(
        parser, interchange(message(PERSON.replace("NAD+FL", f"NAD+{party}")))
    ).persons.to_pylist()
    assert row["role"] == role


@pytest.mark.parametrize(
    ("legs", "expected"),
    [
        (("KHH", "TPE", "NRT"), ("TPE", "NRT")),  # domestic first leg: the leg leaving Taiwan
        (("TPE", "NRT", "HNL"), ("TPE", "NRT")),  # enters Japan at NRT, continues
        (("TPE", "OKA", "KIX"), ("TPE", "OKA")),  # first arrival in Japan
        (("ATL", "ORD", "JFK"), ("ATL", "JFK")),  # neither country: whole itinerary
    ],
)
def test_progressive_flight_picks_the_legs_out_of_origin_and_into_destination(
    parser: PaxlstParser, legs: tuple[str, ...], expected: tuple[str, str]
) -> None:
    flight = "".join(
        f"TDT+20+CI10{i}+++CI'LOC+92+{dep}'DTM+189:26120{i + 1}0900:201'"
        f"LOC+92+{arr}'DTM+232:26120{i + 1}1300:201'"
        for i, (dep, arr) in enumerate(itertools.pairwise(legs))
    )
    (row,) = parse(parser, interchange(message(PERSON, flight=flight))).persons.to_pylist()
    assert (row["dep_airport"], row["arr_airport"]) == expected


def test_a_truncated_message_is_an_error_and_its_neighbours_are_still_read(
    parser: PaxlstParser,
) -> None:
    data = interchange(
        message(PERSON, ref="GOOD1"), message(PERSON, ref="CUT"), message(PERSON, ref="GOOD2")
    )
    cut = re.sub(rb"UNT\+\d+\+CUT'", b"", data)
    assert cut != data
    result = parse(parser, cut)
    assert sorted(result.persons.column("message_ref").to_pylist()) == ["GOOD1", "GOOD2"]
    (error,) = result.errors.to_pylist()
    assert error["error_code"] == "message_truncated"
    assert error["object_key"] == "obj-0"
    text = message(PERSON, ref="GOOD1")
    first_message_segments = text.count("'") - text.count("?'")  # O?'NEIL is not a terminator
    assert error["segment_position"] == 1 + first_message_segments + 1  # after UNB and GOOD1
    assert "CUT" in error["reason"]


def test_not_paxlst_is_rejected_per_message(parser: PaxlstParser) -> None:
    other = message(PERSON, ref="X").replace("PAXLST:D:05B", "CUSRES:D:05B")
    result = parse(parser, interchange(other, message(PERSON, ref="OK")))
    assert result.persons.column("message_ref").to_pylist() == ["OK"]
    assert result.errors.column("error_code").to_pylist() == ["not_paxlst"]


def test_bad_objects_do_not_stop_the_batch(parser: PaxlstParser) -> None:
    good = interchange(message(PERSON))
    result = parse(parser, b"", bytes(range(256)) * 4, good, b"NOT EDIFACT AT ALL")
    assert result.persons.column("object_key").to_pylist() == ["obj-2"]
    errors = {r["object_key"]: r["error_code"] for r in result.errors.to_pylist()}
    assert errors == {"obj-0": "empty_object", "obj-1": "binary_content", "obj-3": "not_edifact"}
    assert result.objects.num_rows == 4


def test_layout_and_separators_do_not_change_the_result(parser: PaxlstParser) -> None:
    standard = interchange(message(PERSON))
    text = standard.decode()
    laid_out = text.replace("'", "'\r\n    ").replace("?'\r\n    ", "?'").encode()
    custom = (
        "UNA:*.? $"
        + text[9:].replace("?'", "\0").replace("'", "$").replace("+", "*").replace("\0", "'")
    ).encode()
    stray = text.replace("DTM+189:", "DTM+189: ").encode()
    no_una = text[9:].encode()
    results = [parse(parser, data).persons for data in (standard, laid_out, custom, stray, no_una)]
    fields = ["surname", "given_names", "date_of_birth", "doc_number", "sched_departure_local"]
    first = results[0].select(fields).to_pylist()
    for other in results[1:]:
        assert other.select(fields).to_pylist() == first
    # The payload hash ignores layout and separators (values stay as sent), so a resend is
    # recognised whatever UNA or line breaks the sender used the second time.
    layout_only = [results[i] for i in (0, 1, 2, 4)]
    assert len({r.column("payload_sha256")[0].as_py() for r in layout_only}) == 1


def test_a_resend_under_a_new_envelope_has_the_same_payload_hash(parser: PaxlstParser) -> None:
    first = interchange(message(PERSON, ref="A1"))
    resend = first.replace(b"IC1", b"IC2").replace(b"A1", b"B7")
    result = parse(parser, first, resend)
    assert len(set(result.messages.column("payload_sha256").to_pylist())) == 1


def test_large_objects_are_cut_at_message_starts() -> None:
    many = interchange(*(message(PERSON, ref=f"R{i}") for i in range(200)))
    small_chunks = PaxlstParser(chunk_chars=2_000)
    result = small_chunks.parse([SourceObject("big", many)])
    whole = PaxlstParser().parse([SourceObject("big", many)])
    assert result.persons.num_rows == 200
    assert result.errors.num_rows == 0
    assert (
        result.persons.column("segment_position").to_pylist()
        == whole.persons.column("segment_position").to_pylist()
    )


def test_parallel_batches_come_back_in_order_and_equal_to_one_at_a_time() -> None:
    """Workers parse batches on their own cursors; results keep the batches' order."""
    batches = [
        [SourceObject(f"b{b}-o{o}", interchange(message(PERSON * (b + 1), ref=f"R{b}{o}")))]
        for b in range(7)
        for o in range(2)
    ]
    batches.append([SourceObject("broken", b"\x00binary")])
    with PaxlstParser(workers=3) as parallel, PaxlstParser(workers=1) as serial:
        together = list(parallel.parse_batches(batches))
        alone = [serial.parse(batch) for batch in batches]
    assert len(together) == len(batches)
    for mine, reference in zip(together, alone, strict=True):
        for table in ("objects", "messages", "persons", "errors"):
            assert getattr(mine, table).equals(getattr(reference, table)), table
    assert together[-1].errors.column("error_code").to_pylist() == ["binary_content"]


def test_threads_may_share_one_parser() -> None:
    """A process parses every run batch with one parser, from several threads at once."""
    batches = [
        [SourceObject(f"t{b}-o{o}", interchange(message(PERSON * (o + 1), ref=f"T{b}{o}")))]
        for b in range(8)
        for o in range(3)
    ]
    with PaxlstParser(workers=2) as shared, PaxlstParser(workers=1) as serial:
        alone = [serial.parse(batch) for batch in batches]

        def parse(numbered: tuple[int, list[SourceObject]]) -> ParseResult:
            # Half the calls go through the worker pool, half parse the batch directly.
            number, batch = numbered
            if number % 2:
                (result,) = shared.parse_batches([batch])
                return result
            return shared.parse(batch)

        with ThreadPoolExecutor(4) as callers:
            together = list(callers.map(parse, enumerate(batches)))
    for mine, reference in zip(together, alone, strict=True):
        for table in ("objects", "messages", "persons", "errors"):
            assert getattr(mine, table).equals(getattr(reference, table)), table


def test_parallel_batches_read_at_most_one_batch_per_worker_ahead() -> None:
    consumed: list[int] = []

    def feed() -> Iterator[list[SourceObject]]:
        for index in range(6):
            consumed.append(index)
            yield [SourceObject(f"o{index}", interchange(message(PERSON, ref=f"R{index}")))]

    with PaxlstParser(workers=2) as parser:
        results = parser.parse_batches(feed())
        first = next(results)
        # The first result is out once batch 0 is done: batches 1 and 2 at most are taken.
        assert len(consumed) <= 3
        assert first.objects.column("object_key").to_pylist() == ["o0"]
        rest = list(results)
    assert [r.objects.column("object_key")[0].as_py() for r in rest] == [
        f"o{i}" for i in range(1, 6)
    ]


def test_objects_over_the_size_limit_are_refused_and_the_rest_of_the_batch_is_read() -> None:
    small = interchange(message(PERSON, ref="S1"))
    big = interchange(*(message(PERSON, ref=f"R{i}") for i in range(50)))
    limited = PaxlstParser(max_object_bytes=len(small))
    result = limited.parse(
        [
            SourceObject("big", big),
            SourceObject("small", small),
            SourceObject("listed too large", b"", unfetched_size=10**9),
        ]
    )
    assert result.persons.column("object_key").to_pylist() == ["small"]
    refused = {row["object_key"]: row for row in result.errors.to_pylist()}
    assert {key: row["error_code"] for key, row in refused.items()} == {
        "big": "object_too_large",
        "listed too large": "object_too_large",
    }
    assert "1,000,000,000 bytes" in refused["listed too large"]["reason"]
    objects = {row["object_key"]: row for row in result.objects.to_pylist()}
    assert objects["listed too large"]["bytes"] == 10**9
    assert objects["listed too large"]["source_sha256"] is None
    assert objects["big"]["bytes"] == len(big)


# file -> (persons read, error codes): every GTAS sample is parsed or rejected precisely.
GTAS_EXPECTED = {
    "Test1.txt": (8, []),  # crew list, no UNA, UNG group
    "Test3.txt": (260, []),  # Latin-1 bytes, wrong UNT count and swapped CNT 41 (data, not syntax)
    "airline2.edi": (10, []),  # UNA:*.? $ with line breaks; 'UNG *' with a stray space
    "apisMessage.txt": (2, []),  # indented lines, LOC 92 legs only, no documents
    "multiple_flight_leg_apis.txt": (2, ["segments_outside_message"]),  # text after UNZ
}


@pytest.mark.parametrize(("name", "expected"), sorted(GTAS_EXPECTED.items()))
def test_gtas_samples(parser: PaxlstParser, name: str, expected: tuple[int, list[str]]) -> None:
    result = parser.parse([SourceObject(name, (GTAS / name).read_bytes())])
    persons, errors = expected
    assert result.persons.num_rows == persons
    assert result.errors.column("error_code").to_pylist() == errors
    assert all(result.persons.column("surname").to_pylist())


def test_gtas_multi_leg_flight_uses_the_marked_legs(parser: PaxlstParser) -> None:
    data = (GTAS / "multiple_flight_leg_apis.txt").read_bytes()
    rows = parser.parse([SourceObject("m", data)]).persons.to_pylist()
    assert {(r["dep_airport"], r["arr_airport"], r["flight_number"]) for r in rows} == {
        ("JFK", "CDG", "0827")
    }
    assert {r["nationality"] for r in rows} == {"FRA", "ESP"}


def _objects(sizes: list[int]) -> list[SourceObject]:
    return [SourceObject(f"o{i}", b"x" * size) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "workers", "expected_batches"),
    [
        ([13_000] * 1_399, 2, 4),  # 18 MB: two rounds of two, not 8 + 8 + 2 MB
        ([12_500] * 830, 2, 2),  # a run's 10 MB batch: 5 + 5 MB, not 8 + 2
        ([12_500] * 830, 4, 4),
        ([300_000, 10_000, 10_000], 2, 1),  # one object outweighs the rest: no cut helps
        ([13_000], 2, 1),
    ],
)
def test_batches_are_cut_so_that_every_worker_has_one_in_the_last_round(
    sizes: list[int], workers: int, expected_batches: int
) -> None:
    size = batch_bytes_for(sizes, workers)
    cut = list(batches(_objects(sizes), size))
    assert len(cut) == expected_batches
    assert [o.key for batch in cut for o in batch] == [f"o{i}" for i in range(len(sizes))]
    assert max(sum(len(o.data) for o in batch) for batch in cut) <= BATCH_BYTES


def test_batch_size_never_exceeds_the_limit_and_falls_back_to_it() -> None:
    assert batch_bytes_for([], 2) == BATCH_BYTES
    assert batch_bytes_for([7 * 1024 * 1024, 7 * 1024 * 1024], 2) == BATCH_BYTES
    assert batch_bytes_for([1_000] * 100_000, 2, max_bytes=4_000_000) <= 4_000_000
