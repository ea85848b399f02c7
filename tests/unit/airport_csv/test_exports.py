"""The airport CSV reader: detection, header checks, typed reading, rejects with line numbers."""

from __future__ import annotations

import pytest

from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.paxlst.parser import ParseResult, PaxlstParser, SourceObject

HEADER = (
    "carrier_code,flight_number,dep_airport,arr_airport,sched_departure_local,"
    "sched_arrival_local,traveller_type,surname,given_names,sex,date_of_birth,nationality,"
    "doc_type,doc_number,doc_issuing_state,doc_expiry_date"
)
FLIGHT = "CI,100,TPE,NRT,2026-12-01 08:30,2026-12-01 12:45"


def _line(
    surname: str = "WANG",
    dob: str = "1990-01-02",
    traveller_type: str = "PASSENGER",
    doc: str = "312345678",
    nationality: str = "TWN",
) -> str:
    person = f"{traveller_type},{surname},XIAO MING,M,{dob},{nationality}"
    return f"{FLIGHT},{person},P,{doc},TWN,2030-01-01"


def _read(*exports: str | bytes) -> ParseResult:
    with PaxlstParser() as parser:
        empty = parser.parse([])
    payloads = [e.encode() if isinstance(e, str) else e for e in exports]
    sources = [SourceObject(f"export-{i}.csv", data) for i, data in enumerate(payloads)]
    result = airport_csv.read_exports(sources, empty)
    for name in ("objects", "messages", "persons", "errors"):
        assert getattr(result, name).schema == getattr(empty, name).schema
    return result


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (HEADER.encode() + b"\n", True),
        (b"\xef\xbb\xbf" + HEADER.replace(",", '","').join('""').encode() + b"\r\n", True),
        (HEADER.upper().encode() + b"\n", True),
        (b"UNA:+.? 'UNB+UNOA:4+CI+TWN+261201:0830+1'", False),
        (b"\x00\x01binary", False),
        (b"", False),
        (b"name,date\nx,y\n", False),
    ],
)
def test_an_export_is_told_by_its_first_line(data: bytes, expected: bool) -> None:
    assert airport_csv.is_airport_csv(data) is expected


def test_a_header_outside_the_layout_is_refused_with_the_columns_named() -> None:
    with pytest.raises(airport_csv.CsvHeaderError, match=r"missing column.*doc_number") as error:
        airport_csv.check_header(["carrier_code", "flight_number", "surname", "colour", "surname"])
    assert "colour" in str(error.value)
    assert "named twice: surname" in str(error.value)


def test_readable_lines_become_lists_and_travellers_with_normalised_values() -> None:
    export = "\n".join(
        [
            HEADER,
            _line(surname="Wang ", doc="3123 456-78", nationality="TW"),
            _line(surname="CHEN", doc="312345679", traveller_type="TRANSIT"),
            _line(surname="LIN", doc="312345670", traveller_type="CREW"),
        ]
    )
    tables = _read(export)

    lists = tables.messages.to_pylist()
    assert [(m["message_seq"], m["bgm_code"], m["person_count"]) for m in lists] == [
        (2, "745", 2),
        (4, "250", 1),
    ]
    assert {m["flight_number"] for m in lists} == {"0100"}
    assert {m["source_format"] for m in lists} == {"airport_csv"}
    persons = tables.persons.to_pylist()
    assert [p["segment_position"] for p in persons] == [2, 3, 4]
    assert [p["role"] for p in persons] == ["passenger", "transit", "crew"]
    first = persons[0]
    assert (first["surname"], first["given_names"], first["nationality"]) == (
        "WANG",
        "XIAO MING",
        "TWN",
    )
    assert first["doc_number"] == "312345678"
    assert str(first["date_of_birth"]) == "1990-01-02"
    assert tables.errors.num_rows == 0


def test_bad_lines_are_kept_with_their_line_numbers_and_reasons_without_values() -> None:
    export = "\n".join(
        [
            HEADER,
            _line(surname="A", dob="1990-02-30"),  # line 2: no such day
            _line(surname="B", traveller_type=""),  # line 3: no traveller type
            _line(surname="C"),  # line 4: readable
            _line(surname="D", traveller_type="PILOT"),  # line 5: not a traveller type
            _line(surname="E", doc="312345671"),  # line 6: readable
            f"{FLIGHT},PASSENGER,F,X",  # line 7: cut off
        ]
    )
    tables = _read(export)

    assert [p["segment_position"] for p in tables.persons.to_pylist()] == [4, 6]
    errors = tables.errors.to_pylist()
    assert [e["segment_position"] for e in errors] == [2, 3, 5, 7]
    assert {e["error_code"] for e in errors} == {"csv_line_rejected"}
    reasons = [e["reason"] for e in errors]
    assert reasons[0] == "line 2: date_of_birth is not a valid value of its type"
    assert reasons[1] == "line 3: traveller_type is empty"
    assert "traveller_type" in reasons[2]
    assert "fewer values" in reasons[3]
    assert not any("1990-02-30" in r or "PILOT" in r for r in reasons)
    # Each bad line is one unreadable traveller, so it is quarantined and counted.
    unreadable = [m for m in tables.messages.to_pylist() if m["error_code"]]
    assert [(m["message_seq"], m["person_count"]) for m in unreadable] == [
        (2, 1),
        (3, 1),
        (5, 1),
        (7, 1),
    ]


def test_invalid_utf8_rejects_only_its_line() -> None:
    export = f"{HEADER}\n{_line(surname='OK')}\n".encode() + _line(surname="M\xfcLLER").encode(
        "latin-1"
    )
    tables = _read(export)
    assert tables.persons.num_rows == 1
    assert tables.errors["reason"].to_pylist() == ["line 3: not valid UTF-8"]


def test_columns_in_any_order_and_optional_columns_absent() -> None:
    columns = HEADER.split(",")
    values = _line().split(",")
    order = list(reversed(range(len(columns))))
    export = ",".join(columns[i] for i in order) + "\n" + ",".join(values[i] for i in order)
    tables = _read(export, "\n".join([HEADER, _line()]))
    persons = tables.persons.to_pylist()
    assert len(persons) == 2
    assert persons[0]["surname"] == persons[1]["surname"] == "WANG"
    assert persons[0]["residence_country"] is None


def test_a_bad_header_refuses_the_object_and_reads_the_others() -> None:
    tables = _read(
        "carrier_code,flight_number,surname,colour\nCI,1,X,red\n", f"{HEADER}\n{_line()}"
    )
    objects = tables.objects.to_pylist()
    assert [o["error_code"] for o in objects] == ["csv_bad_header", None]
    assert tables.persons.num_rows == 1
    assert tables.errors["error_code"].to_pylist() == ["csv_bad_header"]


def test_an_export_sent_again_in_another_line_order_has_the_same_payload_hash() -> None:
    lines = [_line(surname="A", doc="312345671"), _line(surname="B", doc="312345672")]
    first = _read("\n".join([HEADER, *lines])).messages
    again = _read("\r\n".join([HEADER, *reversed(lines)])).messages
    assert first["payload_sha256"].to_pylist() == again["payload_sha256"].to_pylist()


def test_a_flight_number_that_is_not_digits_is_left_for_the_message_suite() -> None:
    export = f"{HEADER}\n" + _line().replace(",100,", ",CI100,")
    lists = _read(export).messages.to_pylist()
    assert lists[0]["flight_number"] is None
    assert lists[0]["person_count"] == 1
