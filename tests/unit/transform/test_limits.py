"""The exchange's field lengths and plausible dates: one set of limits (transform/limits.py)
that the SQL, the suites and docs/partner-guide.md all follow."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from manifest_exchange.agreements.terms import load_agreement
from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.paths import PROJECT_ROOT, read_sql
from manifest_exchange.paxlst.parser import PaxlstParser, SourceObject
from manifest_exchange.transform import limits
from manifest_exchange.transform.exchange import exchange_messages, exchange_travellers
from manifest_exchange.transform.schemas import empty_issues

GUIDE = PROJECT_ROOT / "docs" / "partner-guide.md"
FLIGHT = "TDT+20+CI100+++CI'LOC+125+TPE'DTM+189:{dep}'LOC+87+NRT'DTM+232:{arr}'"
PERSON = (
    "NAD+FL+++{name}'ATT+2++F'DTM+329:850312'LOC+178+TPE'LOC+179+NRT'LOC+174+{residence}'"
    "NAT+2+USA'DOC+P+123456789'DTM+36:{expiry}'LOC+91+USA'"
)


def _guide_rows() -> list[tuple[str, ...]]:
    """The rows of the guide's table under "Field lengths and plausible dates"."""
    section = GUIDE.read_text(encoding="utf-8").split("## Field lengths and plausible dates")[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [tuple(cell.strip() for cell in line.strip("|").split(" | ")) for line in lines[2:]]


def test_the_partner_guide_lists_the_limits_the_code_applies() -> None:
    assert _guide_rows() == limits.partner_guide_rows()


def test_every_suite_parameter_is_named_by_a_suite() -> None:
    suites = "".join(
        path.read_text() for path in (GUIDE.parents[1] / "expectations").glob("*.json")
    )
    for name in limits.suite_parameters():
        assert f'"$PARAMETER": "{name}"' in suites


def test_every_length_limit_is_applied_by_the_sql_and_checked_by_a_suite() -> None:
    root = GUIDE.parents[1]
    relation = {"message": "exchange_messages", "traveller": "exchange_travellers"}
    for limit in limits.LENGTH_LIMITS:
        sql = read_sql(relation[limit.scope])
        assert f"${limit.parameter}" in sql, limit
    for suite in ("paxlst_messages", "paxlst_travellers"):
        text = (root / "expectations" / f"{suite}.json").read_text()
        assert f'"check": "{limits.LENGTH_CHECK}"' in text


def test_the_windows_stay_readable_in_any_time_zone() -> None:
    # Time zones run from UTC-12 to UTC+14; the window's ends in UTC must still be readable.
    earliest = dt.datetime.combine(limits.FLIGHT_DATE_MIN, dt.time()) - dt.timedelta(hours=14)
    latest = dt.datetime.combine(limits.FLIGHT_DATE_MAX, dt.time(23, 59)) + dt.timedelta(hours=12)
    stamps = pa.array([earliest, latest], pa.timestamp("us", tz="UTC"))
    assert stamps.to_pylist()[0].year >= 1
    assert str(stamps.to_pandas())


def _ingested(objects: pa.Table) -> pa.Table:
    """Parsed objects with what the ingest adds: their receive order and time."""
    objects = objects.append_column("receive_order", pa.array(range(objects.num_rows), pa.int32()))
    received = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return objects.append_column(
        "received_at", pa.array([received] * objects.num_rows, pa.timestamp("us", "UTC"))
    )


def _interchange(*messages: tuple[str, str, list[dict[str, str]]]) -> str:
    """Taipei -> Narita messages of (departure, arrival, persons' fields over the defaults)."""
    body = ""
    for number, (dep, arr, persons) in enumerate(messages, start=1):
        segments = "BGM+745'" + FLIGHT.format(dep=dep, arr=arr)
        defaults = {"name": "DOE:ANNA", "residence": "USA", "expiry": "300101"}
        segments += "".join(PERSON.format(**{**defaults, **person}) for person in persons)
        segments += f"CNT+42:{len(persons)}'"
        count = segments.count("'") + 2
        header = f"UNH+{number}+PAXLST:D:05B:UN:IATA+CI0100/{number}+01:F'"
        body += f"{header}{segments}UNT+{count}+{number}'"
    return f"UNA:+.? 'UNB+UNOA:4+CI:ZZ+TW:ZZ+261201:0830+IC1++APIS'{body}UNZ+{len(messages)}+IC1'"


def _parsed(text: str) -> tuple[pa.Table, ...]:
    """Objects, messages and persons as the ingest hands them to the transform."""
    with PaxlstParser("TWN", "JPN", workers=1) as parser:
        result = parser.parse([SourceObject("obj", text.encode())])
    objects = _ingested(result.objects)
    persons = result.persons.append_column(
        "person_id", pa.array(range(result.persons.num_rows), pa.int64())
    )
    return objects, result.messages, persons


@pytest.mark.parametrize(
    ("dep", "arr", "plausible"),
    [
        ("2612010930:201", "2612011350:201", True),
        ("000101010900:203", "000101011300:203", False),  # 0001-01-01: UTC is before year 1
        ("999912311800:203", "999912312300:203", False),
        ("199912312300:203", "200001010300:203", False),
        ("209912311800:203", "209912312300:203", True),
    ],
)
def test_a_flight_outside_the_window_is_implausible_and_has_no_utc_time(
    dep: str, arr: str, plausible: bool
) -> None:
    objects, messages, _ = _parsed(_interchange((dep, arr, [{}])))
    (row,) = exchange_messages(messages, objects, load_agreement("tw-jp")).to_pylist()
    assert row["is_flight_date_plausible"] is plausible
    assert (row["sched_departure_utc"] is not None) is plausible
    assert row["flight_minutes"] > 0  # the flight's times are present: only its date is wrong


def test_traveller_lengths_and_document_expiry_are_derived_for_the_suite() -> None:
    at_limit = ":".join(["DOE" + "X" * 32, *["Y" * 35] * 4])  # 35 and 4 x 35 + 3: published
    persons = [
        {},
        {"name": at_limit},
        {"name": "DOE:" + "A" * 1_000_000},
        {"name": "DOE:ANNA:BEA:CARA:DINA"},
        {"name": f"{'X' * 36}:ANNA", "residence": "USAX"},  # the first field over is named
        {"residence": "USAX"},
        {"expiry": "99991231"},
    ]
    departure, arrival = "2612010930:201", "2612011350:201"
    objects, parsed_messages, parsed_persons = _parsed(_interchange((departure, arrival, persons)))
    agreement = load_agreement("tw-jp")
    messages = exchange_messages(parsed_messages, objects, agreement)
    rows = exchange_travellers(parsed_persons, messages, empty_issues(), agreement).to_pylist()
    assert [r["oversized_field"] for r in rows] == [
        None,
        None,
        "given_names",
        None,
        "surname",
        "residence_country",
        None,
    ]
    assert [r["is_doc_expiry_plausible"] for r in rows] == [True] * 6 + [False]


@pytest.mark.parametrize(
    ("tdt", "bgm", "oversized"),
    [
        ("TDT+20+CI100+++CI", "BGM+745+CP", None),
        ("TDT+20+CI100+++CIXX", "BGM+745", "carrier_code"),
        ("TDT+20+CI100+++CI", "BGM+745+CPXX", "message_function"),
    ],
)
def test_message_lengths_are_derived_for_the_suite(
    tdt: str, bgm: str, oversized: str | None
) -> None:
    text = _interchange(("2612010930:201", "2612011350:201", [{}]))
    text = text.replace("TDT+20+CI100+++CI'", f"{tdt}'").replace("BGM+745'", f"{bgm}'")
    objects, parsed_messages, _ = _parsed(text)
    (row,) = exchange_messages(parsed_messages, objects, load_agreement("tw-jp")).to_pylist()
    assert row["oversized_field"] == oversized


CSV_HEADER = (
    "carrier_code,flight_number,dep_airport,arr_airport,sched_departure_local,"
    "sched_arrival_local,traveller_type,surname,given_names,sex,date_of_birth,nationality,"
    "doc_type,doc_number,doc_issuing_state,doc_expiry_date,residence_country"
)


def _csv_line(
    departure: str = "2026-12-01 08:30",
    arrival: str = "2026-12-01 12:45",
    surname: str = "WANG",
    given_names: str = "XIAO MING",
    doc: str = "312345678",
    residence: str = "TWN",
    expiry: str = "2030-01-01",
) -> str:
    return (
        f"CI,100,TPE,NRT,{departure},{arrival},PASSENGER,{surname},{given_names},M,1990-01-02,"
        f"TWN,P,{doc},TWN,{expiry},{residence}"
    )


def test_airport_exports_are_held_to_the_same_limits() -> None:
    lines = [
        _csv_line(),
        _csv_line(given_names="A" * 1_000_000, doc="312345679"),
        _csv_line(surname="X" * 36, residence="TWNX", doc="312345680"),
        _csv_line(expiry="9999-12-31", doc="312345681"),
        _csv_line("0001-01-01 08:30", "0001-01-01 12:45", doc="312345682"),
        _csv_line("0000-01-01 08:30", "0000-01-01 12:45", doc="312345683"),
    ]
    with PaxlstParser() as parser:
        empty = parser.parse([])
    export = "\n".join([CSV_HEADER, *lines]).encode()
    result = airport_csv.read_exports([SourceObject("export.csv", export)], empty)
    objects = _ingested(result.objects)
    persons = result.persons.append_column(
        "person_id", pa.array(range(result.persons.num_rows), pa.int64())
    )
    agreement = load_agreement("tw-jp")
    messages = exchange_messages(result.messages, objects, agreement)
    by_date = {m["flight_date"]: m for m in messages.to_pylist()}
    assert by_date[dt.date(2026, 12, 1)]["is_flight_date_plausible"] is True
    assert by_date[dt.date(1, 1, 1)]["is_flight_date_plausible"] is False
    assert by_date[dt.date(1, 1, 1)]["sched_departure_utc"] is None
    assert by_date[None]["sched_departure_local"] is None  # year 0000 is no date
    rows = exchange_travellers(persons, messages, empty_issues(), agreement).to_pylist()
    on_time = [r for r in rows if r["flight_date"] == dt.date(2026, 12, 1)]
    assert [r["oversized_field"] for r in on_time] == [None, "given_names", "surname", None]
    assert [r["is_doc_expiry_plausible"] for r in on_time] == [True, True, True, False]
