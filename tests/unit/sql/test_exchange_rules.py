"""The exchange rules, each on the one relation of ``sql/exchange/`` that carries it.

Every test runs a single SQL file over a few hand-written rows and checks the rows it returns;
the flow's integration tests run the same files end to end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pytest
from sql_support import run_relation, table

from manifest_exchange.agreements.terms import load_agreement
from manifest_exchange.transform import limits

FLIGHT = "CI0100-TPE-NRT-20261201"
DEPARTURE = dt.datetime(2026, 12, 1, 8, 30)
ARRIVAL = dt.datetime(2026, 12, 1, 12, 45)
RECEIVED_AT = dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC)

ISSUES = pa.schema(
    [("row_id", pa.string()), ("check_name", pa.string()), ("severity", pa.string())]
)
NO_ISSUES = ISSUES.empty_table()

# --- exchange_messages -------------------------------------------------------------------------

PARSED_MESSAGES = pa.schema(
    [
        ("object_key", pa.string()),
        ("message_seq", pa.int64()),
        ("error_code", pa.string()),
        ("person_count", pa.int64()),
        ("message_type", pa.string()),
        ("message_ref", pa.string()),
        ("bgm_code", pa.string()),
        ("bgm_function", pa.string()),
        ("common_access_ref", pa.string()),
        ("part_number", pa.int32()),
        ("part_indicator", pa.string()),
        ("transaction_revision", pa.int32()),
        ("payload_sha256", pa.string()),
        ("carrier_code", pa.string()),
        ("flight_number", pa.string()),
        ("dep_airport", pa.string()),
        ("arr_airport", pa.string()),
        ("sched_departure_local", pa.timestamp("us")),
        ("sched_arrival_local", pa.timestamp("us")),
        ("flight_date", pa.date32()),
        ("cnt_passengers", pa.int32()),
        ("source_format", pa.string()),
        ("unt_segment_count", pa.int32()),
        ("actual_segment_count", pa.int64()),
        ("unt_message_ref", pa.string()),
        ("has_unz", pa.bool_()),
        ("unz_count", pa.int32()),
        ("expected_unz_count", pa.int64()),
        ("unz_ref", pa.string()),
        ("interchange_ref", pa.string()),
    ]
)
PARSED_OBJECTS = pa.schema(
    [
        ("object_key", pa.string()),
        ("receive_order", pa.int32()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source_sha256", pa.string()),
    ]
)
AIRPORTS = pa.table(
    {
        "iata": ["TPE", "NRT"],
        "country": ["TWN", "JPN"],
        "tz": ["Asia/Taipei", "Asia/Tokyo"],
    }
)


def _parsed_message(object_key: str, **values: object) -> dict[str, object]:
    """A readable one-part PAXLST message of flight CI0100 Taipei -> Narita."""
    return {
        "object_key": object_key,
        "message_seq": 1,
        "person_count": 1,
        "message_type": "PAXLST",
        "message_ref": "1",
        "bgm_code": "745",
        "common_access_ref": "CI0100/1",
        "part_number": 1,
        "part_indicator": "F",
        "payload_sha256": "payload-a",
        "carrier_code": "CI",
        "flight_number": "0100",
        "dep_airport": "TPE",
        "arr_airport": "NRT",
        "sched_departure_local": DEPARTURE,
        "sched_arrival_local": ARRIVAL,
        "flight_date": DEPARTURE.date(),
        "cnt_passengers": 1,
        "source_format": "paxlst",
        **values,
    }


def _exchange_messages(messages: Sequence[Mapping[str, object]]) -> list[dict[str, Any]]:
    """exchange_messages over ``messages``, their objects received in the messages' order."""
    keys = list(dict.fromkeys(str(message["object_key"]) for message in messages))
    objects = [
        {"object_key": key, "receive_order": order, "received_at": RECEIVED_AT}
        for order, key in enumerate(keys)
    ]
    agreement = load_agreement("tw-jp")
    return run_relation(
        "exchange_messages",
        {
            "parsed_messages": table(messages, PARSED_MESSAGES),
            "parsed_objects": table(objects, PARSED_OBJECTS),
            "airports": AIRPORTS,
        },
        {
            "origin_country": agreement.origin_country,
            "destination_country": agreement.destination_country,
            **limits.sql_parameters(),
        },
        columns=("message_id", "is_resend", "list_key"),
    )


def test_exact_resend_is_flagged_by_its_payload() -> None:
    """A message whose payload (BGM..UNT) arrived before is a resend, whatever its envelope.

    exchange_travellers turns the flag into the ``duplicate`` outcome (see
    ``test_scope_per_agreement``); the payload hash is computed in ``paxlst/segments.py``.
    """
    rows = _exchange_messages(
        [
            _parsed_message("a"),
            _parsed_message("b", message_ref="7", common_access_ref="CI0100/7"),
            _parsed_message("c", payload_sha256="payload-b"),
            # Unreadable: never a resend, and it does not make the next one a resend either.
            _parsed_message("d", error_code="message_truncated", payload_sha256="payload-c"),
            _parsed_message("e", payload_sha256="payload-c"),
        ]
    )
    assert [(row["message_id"], row["is_resend"]) for row in rows] == [
        ("a#1", False),
        ("b#1", True),
        ("c#1", False),
        ("d#1", False),
        ("e#1", False),
    ]


def test_parts_of_one_list_share_its_list_key() -> None:
    """Parts with one common access reference, function and revision form one list
    (assembled in exchange_lists); a new revision is another list."""
    rows = _exchange_messages(
        [
            _parsed_message("a", part_number=1, part_indicator="C", payload_sha256="p1"),
            _parsed_message("b", part_number=2, part_indicator="F", payload_sha256="p2"),
            _parsed_message("c", transaction_revision=2, payload_sha256="p3"),
        ]
    )
    one_list = f"{FLIGHT}|CI0100/1|745|"
    assert [(row["message_id"], row["list_key"]) for row in rows] == [
        ("a#1", one_list),
        ("b#1", one_list),
        ("c#1", f"{FLIGHT}|CI0100/1|745|2"),
    ]


# --- exchange_travellers -----------------------------------------------------------------------

PARSED_PERSONS = pa.schema(
    [
        ("person_id", pa.int64()),
        ("object_key", pa.string()),
        ("message_seq", pa.int64()),
        ("role", pa.string()),
        ("surname", pa.string()),
        ("given_names", pa.string()),
        ("sex", pa.string()),
        ("date_of_birth", pa.date32()),
        ("date_of_birth_raw", pa.string()),
        ("nationality", pa.string()),
        ("nationalities", pa.list_(pa.string())),
        ("residence_country", pa.string()),
        ("embark_airport", pa.string()),
        ("debark_airport", pa.string()),
        ("doc_type", pa.string()),
        ("doc_number", pa.string()),
        ("doc_issuing_state", pa.string()),
        ("doc_expiry_date", pa.date32()),
        ("flight_date", pa.date32()),
        ("sched_departure_local", pa.timestamp("us")),
        ("sched_arrival_local", pa.timestamp("us")),
    ]
)
EXCHANGE_MESSAGES = pa.schema(
    [
        ("message_id", pa.string()),
        ("object_key", pa.string()),
        ("message_seq", pa.int64()),
        ("list_key", pa.string()),
        ("flight_key", pa.string()),
        ("message_function", pa.string()),
        ("sched_departure_utc", pa.timestamp("us", tz="UTC")),
        ("receive_order", pa.int32()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("source_sha256", pa.string()),
        ("source_format", pa.string()),
        ("is_resend", pa.bool_()),
        ("is_in_scope_flight", pa.bool_()),
        ("dep_country", pa.string()),
        ("arr_country", pa.string()),
    ]
)


def _message(object_key: str, receive_order: int, **values: object) -> dict[str, object]:
    """exchange_messages' row of an in-scope PAXLST list of the flight."""
    return {
        "message_id": f"{object_key}#1",
        "object_key": object_key,
        "message_seq": 1,
        "list_key": f"{FLIGHT}|{object_key}",
        "flight_key": FLIGHT,
        "message_function": "745",
        "receive_order": receive_order,
        "received_at": RECEIVED_AT,
        "source_format": "paxlst",
        "is_resend": False,
        "is_in_scope_flight": True,
        "dep_country": "TWN",
        "arr_country": "JPN",
        **values,
    }


def _person(person_id: int, object_key: str = "a", **values: object) -> dict[str, object]:
    """A Taiwanese passenger with a passport, on the flight."""
    return {
        "person_id": person_id,
        "object_key": object_key,
        "message_seq": 1,
        "role": "passenger",
        "surname": "TESTER",
        "given_names": "ALPHA",
        "date_of_birth": dt.date(1990, 1, 2),
        "nationality": "TWN",
        "nationalities": ["TWN"],
        "doc_type": "P",
        "doc_number": f"X0000000{person_id}",
        "doc_issuing_state": "TWN",
        "doc_expiry_date": dt.date(2030, 1, 1),
        "flight_date": DEPARTURE.date(),
        "sched_departure_local": DEPARTURE,
        "sched_arrival_local": ARRIVAL,
        **values,
    }


def _exchange_travellers(
    persons: Sequence[Mapping[str, object]],
    messages: Sequence[Mapping[str, object]] = (),
    agreement: str = "tw-jp",
    columns: Sequence[str] = ("person_id", "stage_outcome", "stage_reasons"),
) -> list[dict[str, Any]]:
    terms = load_agreement(agreement)
    return run_relation(
        "exchange_travellers",
        {
            "parsed_persons": table(persons, PARSED_PERSONS),
            "exchange_messages": table(messages or [_message("a", 0)], EXCHANGE_MESSAGES),
            "message_issues": NO_ISSUES,
        },
        {
            "traveller_types": list(terms.traveller_types),
            "excluded_nationalities": list(terms.excluded_nationalities),
            **limits.sql_parameters(),
        },
        columns=columns,
        order_by=("person_id",),
    )


OUT = "out_of_scope"


@pytest.mark.parametrize(
    ("agreement", "expected"),
    [
        # Japan takes no Japanese; a dual national holding the excluded one is out too.
        ("tw-jp", [None, (OUT, ["excluded_nationality"]), (OUT, ["excluded_nationality"])]),
        ("jp-tw", [(OUT, ["excluded_nationality"]), None, (OUT, ["excluded_nationality"])]),
    ],
)
def test_excluded_nationality_per_agreement(
    agreement: str, expected: list[tuple[str, list[str]] | None]
) -> None:
    persons = [
        _person(1, nationality="TWN", nationalities=["TWN"]),
        _person(2, nationality="JPN", nationalities=["JPN"]),
        _person(3, nationality="TWN", nationalities=["JPN", "TWN"]),
    ]
    rows = _exchange_travellers(persons, agreement=agreement)
    assert [
        (row["stage_outcome"], row["stage_reasons"]) if row["stage_outcome"] else None
        for row in rows
    ] == expected


@pytest.mark.parametrize(
    ("agreement", "crew_outcome"),
    [
        ("tw-jp", (OUT, ["traveller_type"])),  # passengers and transit only
        ("tw-au", (None, None)),  # crew lists are exchanged too
    ],
)
def test_crew_and_transit_scope_per_agreement(
    agreement: str, crew_outcome: tuple[str | None, list[str] | None]
) -> None:
    persons = [_person(1, role="passenger"), _person(2, role="transit"), _person(3, role="crew")]
    rows = _exchange_travellers(persons, agreement=agreement)
    assert [(row["person_id"], row["stage_outcome"], row["stage_reasons"]) for row in rows] == [
        (1, None, None),
        (2, None, None),
        (3, *crew_outcome),
    ]


def test_scope_per_agreement_before_message_checks_and_resends() -> None:
    """The first reason that applies decides: flight scope, then traveller, then message."""
    messages = [
        _message("a", 0, is_in_scope_flight=False),
        _message("b", 1, is_resend=True),
        _message("c", 2, is_resend=True),
    ]
    persons = [
        _person(1, "a"),
        _person(2, "b"),
        _person(3, "c", nationality="JPN", nationalities=["JPN"]),
    ]
    assert _exchange_travellers(persons, messages) == [
        {"person_id": 1, "stage_outcome": OUT, "stage_reasons": ["flight_not_in_agreement"]},
        {"person_id": 2, "stage_outcome": "duplicate", "stage_reasons": ["resend"]},
        {"person_id": 3, "stage_outcome": OUT, "stage_reasons": ["excluded_nationality"]},
    ]


def _record_id(doc_match_input: str) -> str:
    return hashlib.sha256(f"{FLIGHT}|doc|{doc_match_input}".encode()).hexdigest()[:32]


def test_csv_and_paxlst_of_the_same_person_are_merged() -> None:
    """An airport export's row of a person already in the airline's list (same name and birth
    date on the flight) takes the record id of the list's document; exchange_outcomes then
    publishes only the newest of them. In one list, two documents stay two people."""
    messages = [
        _message("airline", 0),
        _message("airport", 1, source_format="airport_csv"),
    ]
    persons = [
        _person(1, "airline", doc_number="A1"),
        _person(2, "airport", doc_number=None),  # the export has no document for them
        _person(3, "airport", doc_number="B2"),  # or another one
        _person(4, "airport", surname="OTHER", doc_number="C3"),
        _person(5, "airline", doc_number="D4"),  # same name and birth date, same list
    ]
    rows = _exchange_travellers(persons, messages, columns=("person_id", "record_id"))
    assert rows == [
        {"person_id": 1, "record_id": _record_id("P|TWN|A1")},
        {"person_id": 2, "record_id": _record_id("P|TWN|A1")},
        {"person_id": 3, "record_id": _record_id("P|TWN|A1")},
        {"person_id": 4, "record_id": _record_id("P|TWN|C3")},
        {"person_id": 5, "record_id": _record_id("P|TWN|D4")},
    ]


# --- exchange_lists ----------------------------------------------------------------------------

LIST_MESSAGES = pa.schema(
    [
        ("list_key", pa.string()),
        ("parse_error", pa.string()),
        ("is_resend", pa.bool_()),
        ("part_number", pa.int32()),
        ("part_indicator", pa.string()),
        ("person_count", pa.int64()),
        ("cnt_passengers", pa.int32()),
    ]
)
LIST_TRAVELLERS = pa.schema([("list_key", pa.string()), ("stage_outcome", pa.string())])


def _part(list_key: str, part: int, indicator: str, persons: int, cnt: int) -> dict[str, object]:
    return {
        "list_key": list_key,
        "is_resend": False,
        "part_number": part,
        "part_indicator": indicator,
        "person_count": persons,
        "cnt_passengers": cnt,
    }


def _exchange_lists(
    parts: Sequence[Mapping[str, object]], travellers: Sequence[Mapping[str, object]]
) -> list[dict[str, Any]]:
    return run_relation(
        "exchange_lists",
        {
            "exchange_messages": table(parts, LIST_MESSAGES),
            "exchange_travellers": table(travellers, LIST_TRAVELLERS),
        },
    )


def test_multi_part_lists_are_assembled_from_their_parts() -> None:
    """A list's parts are counted together; only a list with every part up to the final one
    is held against CNT (the list suite, expectations/paxlst_lists.json, warns on the rest)."""
    parts = [
        _part("complete", 1, "C", 3, 6),
        _part("complete", 2, "C", 2, 6),
        _part("complete", 3, "F", 1, 6),
        {**_part("complete", 2, "C", 2, 6), "is_resend": True},  # not counted twice
        _part("gap", 1, "C", 3, 10),
        _part("gap", 3, "F", 1, 10),
        _part("no_final", 1, "C", 4, 8),
        _part("all_out_of_scope", 1, "F", 1, 1),
    ]
    travellers = [
        {"list_key": "complete"},
        {"list_key": "gap"},
        {"list_key": "no_final"},
        {"list_key": "all_out_of_scope", "stage_outcome": "out_of_scope"},
    ]
    assert _exchange_lists(parts, travellers) == [
        {
            "list_key": "complete",
            "part_count": 3,
            "person_count": 6,
            "cnt_passengers": 6,
            "has_final_part": True,
            "count_difference": 0,
        },
        {
            "list_key": "gap",
            "part_count": 2,
            "person_count": 4,
            "cnt_passengers": 10,
            "has_final_part": True,
            "count_difference": None,
        },
        {
            "list_key": "no_final",
            "part_count": 1,
            "person_count": 4,
            "cnt_passengers": 8,
            "has_final_part": False,
            "count_difference": None,
        },
    ]


def test_count_mismatch_is_flagged() -> None:
    """count_difference is travellers received minus CNT; the list suite
    (expectations/paxlst_lists.json, check count_mismatch) flags any value but 0."""
    parts = [
        _part("short", 1, "F", 4, 5),
        _part("over", 1, "F", 6, 5),
        _part("equal", 1, "F", 5, 5),
    ]
    travellers = [{"list_key": "short"}, {"list_key": "over"}, {"list_key": "equal"}]
    rows = _exchange_lists(parts, travellers)
    assert [(row["list_key"], row["count_difference"]) for row in rows] == [
        ("equal", 0),
        ("over", 1),
        ("short", -1),
    ]


# --- exchange_outcomes -------------------------------------------------------------------------

OUTCOME_TRAVELLERS = pa.schema(
    [
        ("person_id", pa.int64()),
        ("message_id", pa.string()),
        ("list_key", pa.string()),
        ("message_seq", pa.int64()),
        ("receive_order", pa.int32()),
        ("transaction_revision", pa.int32()),
        ("content_sha256", pa.string()),
        ("stage_reasons", pa.list_(pa.string())),
        ("stage_outcome", pa.string()),
        ("record_id", pa.string()),
        ("person_key", pa.string()),
    ]
)
PUBLISHED_RECORDS = pa.schema(
    [
        ("record_id", pa.string()),
        ("content_sha256", pa.string()),
        ("manifest_revision", pa.int32()),
        ("sent_revision", pa.int32()),
        ("flight_key", pa.string()),
        ("drop_id", pa.string()),
        ("person_key", pa.string()),
    ]
)


def _traveller(person_id: int, receive_order: int = 0, **values: object) -> dict[str, object]:
    return {
        "person_id": person_id,
        "message_id": f"obj{receive_order}#1",
        "list_key": f"list{receive_order}",
        "message_seq": 1,
        "receive_order": receive_order,
        "content_sha256": "content-1",
        "record_id": "R1",
        **values,
    }


def _exchange_outcomes(
    travellers: Sequence[Mapping[str, object]],
    published: Sequence[Mapping[str, object]] = (),
) -> list[tuple[int, str, list[str], int | None]]:
    rows = run_relation(
        "exchange_outcomes",
        {
            "exchange_travellers": table(travellers, OUTCOME_TRAVELLERS),
            "published_records": table(published, PUBLISHED_RECORDS),
            "message_issues": NO_ISSUES,
            "traveller_issues": NO_ISSUES,
            "list_issues": NO_ISSUES,
        },
        order_by=("person_id",),
    )
    return [
        (row["person_id"], row["outcome"], row["reasons"], row["manifest_revision"]) for row in rows
    ]


def test_newest_revision_wins() -> None:
    """Of one record's rows in a run the highest revision is published, then the latest
    received; an older revision arriving last does not replace a newer one."""
    travellers = [
        _traveller(1, receive_order=0, transaction_revision=1),
        _traveller(2, receive_order=1, transaction_revision=2, content_sha256="content-2"),
        _traveller(3, receive_order=2, transaction_revision=1),
        _traveller(4, receive_order=0, record_id="R2"),
        _traveller(5, receive_order=1, record_id="R2", content_sha256="content-2"),
    ]
    assert _exchange_outcomes(travellers) == [
        (1, "duplicate", ["superseded_in_run"], 1),
        (2, "published", [], 2),
        (3, "duplicate", ["superseded_in_run"], 1),
        (4, "duplicate", ["superseded_in_run"], 1),
        (5, "published", [], 1),
    ]


def test_record_already_published_with_the_same_content_is_a_duplicate() -> None:
    """An exact resend in a later run: the partner has the content already."""
    published = [{"record_id": "R1", "content_sha256": "content-1", "manifest_revision": 1}]
    assert _exchange_outcomes([_traveller(1)], published) == [
        (1, "duplicate", ["already_published"], 2),
    ]


@pytest.mark.parametrize(
    ("published_revision", "sent_revision", "expected"),
    [
        (None, None, 1),  # never published: first revision
        (1, None, 2),
        (3, None, 4),
        (1, 5, 5),  # the sender's own revision is kept when it is ahead
    ],
)
def test_changed_record_gets_the_next_manifest_revision(
    published_revision: int | None, sent_revision: int | None, expected: int
) -> None:
    published = []
    if published_revision is not None:
        published = [
            {
                "record_id": "R1",
                "content_sha256": "content-1",
                "manifest_revision": published_revision,
            }
        ]
    traveller = _traveller(1, content_sha256="content-2", transaction_revision=sent_revision)
    assert _exchange_outcomes([traveller], published) == [(1, "published", [], expected)]


# --- exchange_accounting -----------------------------------------------------------------------

ACCOUNTED_OUTCOMES = pa.schema(
    [("flight_key", pa.string()), ("source_format", pa.string()), ("outcome", pa.string())]
)
ACCOUNTED_MESSAGES = pa.schema(
    [
        ("flight_key", pa.string()),
        ("source_format", pa.string()),
        ("parse_error", pa.string()),
        ("person_count", pa.int64()),
    ]
)


def test_an_unreadable_message_is_counted_from_its_nads() -> None:
    """A message that could not be read counts its travellers as quarantined: person_count is
    its NAD groups (split in paxlst/segments.py, counted in stg_paxlst_messages), or one per
    rejected line of an airport export."""
    outcomes = [
        {"flight_key": FLIGHT, "source_format": "paxlst", "outcome": outcome}
        for outcome in ("published", "published", "out_of_scope", "quarantined")
    ]
    messages = [
        # Readable: its travellers are in the outcomes already.
        {"flight_key": FLIGHT, "source_format": "paxlst", "person_count": 4},
        {
            "flight_key": FLIGHT,
            "source_format": "paxlst",
            "parse_error": "message_truncated",
            "person_count": 3,
        },
        {
            "flight_key": FLIGHT,
            "source_format": "airport_csv",
            "parse_error": "csv_line_rejected",
            "person_count": 1,
        },
    ]
    rows = run_relation(
        "exchange_accounting",
        {
            "exchange_outcomes": table(outcomes, ACCOUNTED_OUTCOMES),
            "exchange_messages": table(messages, ACCOUNTED_MESSAGES),
        },
    )
    assert [(r["source_format"], r["outcome"], r["travellers"]) for r in rows] == [
        ("airport_csv", "quarantined", 1),
        ("paxlst", "out_of_scope", 1),
        ("paxlst", "published", 2),
        ("paxlst", "quarantined", 4),
    ]
    assert {row["flight_key"] for row in rows} == {FLIGHT}
