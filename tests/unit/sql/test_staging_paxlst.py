"""PAXLST staging rules, each on the one relation of ``sql/staging/`` that carries it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from sql_support import run_relation, table

# Canonical EDIFACT (paxlst/syntax.py): elements end at chr(29), components at chr(31).
E, C = "\x1d", "\x1f"

STG_MESSAGES = pa.schema(
    [
        ("object_id", pa.int32()),
        ("message_seq", pa.int64()),
        ("unh_position", pa.int64()),
        ("message_ref", pa.string()),
        ("message_type", pa.string()),
        ("message_version", pa.string()),
        ("common_access_ref", pa.string()),
        ("part_number", pa.int32()),
        ("part_indicator", pa.string()),
        ("has_unt", pa.bool_()),
        ("unt_segment_count", pa.int32()),
        ("actual_segment_count", pa.int64()),
        ("unt_message_ref", pa.string()),
        ("bgm_code", pa.string()),
        ("bgm_function", pa.string()),
        ("transaction_ref", pa.string()),
        ("transaction_revision", pa.int32()),
        ("cnt_passengers", pa.int32()),
        ("cnt_crew", pa.int32()),
        ("person_count", pa.int64()),
        ("payload_sha256", pa.string()),
    ]
)
STG_INTERCHANGES = pa.schema(
    [
        ("object_id", pa.int32()),
        ("interchange_ref", pa.string()),
        ("sender_id", pa.string()),
        ("prepared_date", pa.date32()),
        ("has_unz", pa.bool_()),
        ("unz_count", pa.int32()),
        ("unz_ref", pa.string()),
        ("message_count", pa.int64()),
        ("expected_unz_count", pa.int64()),
    ]
)
STG_LEGS = pa.schema(
    [
        ("object_id", pa.int32()),
        ("message_seq", pa.int64()),
        ("leg_seq", pa.int64()),
        ("carrier_code", pa.string()),
        ("flight_digits", pa.string()),
        ("flight_suffix", pa.string()),
        ("dep_airport", pa.string()),
        ("dep_qualifier", pa.string()),
        ("arr_airport", pa.string()),
        ("arr_qualifier", pa.string()),
        ("departure_raw", pa.string()),
        ("arrival_raw", pa.string()),
        ("sched_departure_local", pa.timestamp("us")),
        ("sched_arrival_local", pa.timestamp("us")),
    ]
)
AIRPORTS = pa.table(
    {
        "iata": ["KHH", "TPE", "HKG", "NRT", "KIX", "HNL"],
        "country": ["TWN", "TWN", "HKG", "JPN", "JPN", "USA"],
    }
)


def _leg(
    message_seq: int, leg_seq: int, dep: str, arr: str, hour: int, **values: object
) -> dict[str, object]:
    """A leg of flight CI100 (LOC 92 at both ends, as a progressive flight sends them)."""
    return {
        "object_id": 0,
        "message_seq": message_seq,
        "leg_seq": leg_seq,
        "carrier_code": "CI",
        "flight_digits": "100",
        "flight_suffix": "",
        "dep_airport": dep,
        "dep_qualifier": "92",
        "arr_airport": arr,
        "arr_qualifier": "92",
        "sched_departure_local": dt.datetime(2026, 12, 1, hour),
        "sched_arrival_local": dt.datetime(2026, 12, 1, hour + 1),
        **values,
    }


def test_multi_leg_flight_is_the_leg_out_of_origin_to_the_first_arrival_in_destination() -> None:
    """Taiwan -> Japan: the last leg leaving Taiwan to the first later leg landing in Japan;
    legs the sender marks (LOC 125/87) are taken as marked."""
    messages = [
        {"object_id": 0, "message_seq": seq, "message_type": "PAXLST", "has_unt": True}
        for seq in (1, 2, 3)
    ]
    legs = [
        _leg(1, 1, "KHH", "TPE", 6),
        _leg(1, 2, "TPE", "HKG", 8),
        _leg(1, 3, "HKG", "NRT", 11),
        _leg(1, 4, "NRT", "HNL", 16),
        _leg(2, 1, "KHH", "TPE", 6, dep_qualifier="125"),
        _leg(2, 2, "TPE", "NRT", 8),
        _leg(2, 3, "NRT", "KIX", 10, arr_qualifier="87"),
        # A landing in Japan before the flight leaves Taiwan is not its arrival.
        _leg(3, 1, "HKG", "KIX", 6),
        _leg(3, 2, "KIX", "TPE", 8),
        _leg(3, 3, "TPE", "NRT", 11),
    ]
    rows = run_relation(
        "paxlst_messages",
        {
            "stg_paxlst_messages": table(messages, STG_MESSAGES),
            "stg_paxlst_interchanges": table([{"object_id": 0}], STG_INTERCHANGES),
            "stg_paxlst_legs": table(legs, STG_LEGS),
            "airports": AIRPORTS,
        },
        {"origin_country": "TWN", "destination_country": "JPN"},
        columns=(
            "message_seq",
            "leg_count",
            "flight_number",
            "dep_airport",
            "arr_airport",
            "sched_departure_local",
            "sched_arrival_local",
            "flight_date",
        ),
    )
    assert rows == [
        {
            "message_seq": 1,
            "leg_count": 4,
            "flight_number": "0100",
            "dep_airport": "TPE",
            "arr_airport": "NRT",
            "sched_departure_local": dt.datetime(2026, 12, 1, 8),
            "sched_arrival_local": dt.datetime(2026, 12, 1, 12),
            "flight_date": dt.date(2026, 12, 1),
        },
        {
            "message_seq": 2,
            "leg_count": 3,
            "flight_number": "0100",
            "dep_airport": "KHH",
            "arr_airport": "KIX",
            "sched_departure_local": dt.datetime(2026, 12, 1, 6),
            "sched_arrival_local": dt.datetime(2026, 12, 1, 11),
            "flight_date": dt.date(2026, 12, 1),
        },
        {
            "message_seq": 3,
            "leg_count": 3,
            "flight_number": "0100",
            "dep_airport": "TPE",
            "arr_airport": "NRT",
            "sched_departure_local": dt.datetime(2026, 12, 1, 11),
            "sched_arrival_local": dt.datetime(2026, 12, 1, 12),
            "flight_date": dt.date(2026, 12, 1),
        },
    ]


STG_SEGMENTS = pa.schema(
    [
        ("object_id", pa.int32()),
        ("position", pa.int64()),
        ("segment_index", pa.int64()),
        ("segment", pa.string()),
        ("tag", pa.string()),
        ("message_seq", pa.int64()),
        ("qualifier", pa.string()),
    ]
)


def test_an_unreadable_message_keeps_the_count_of_its_nads() -> None:
    """A message cut off before UNT still counts its travellers: paxlst/segments.py splits its
    NAD groups into raw_persons and this relation counts them, so exchange_accounting can
    report them as quarantined."""
    unh = f"UNH{E}{{ref}}{E}PAXLST{C}D{C}05B{C}UN{C}IATA"
    segments = [
        (1, 1, unh.format(ref=1), "UNH"),
        (1, 2, f"BGM{E}745", "BGM"),
        (1, 5, f"UNT{E}5{E}1", "UNT"),
        (2, 6, unh.format(ref=2), "UNH"),
        (2, 7, f"BGM{E}745", "BGM"),
    ]
    rows = run_relation(
        "stg_paxlst_messages",
        {
            "stg_paxlst_segments": table(
                [
                    {
                        "object_id": 0,
                        "message_seq": seq,
                        "position": position,
                        "segment_index": position,
                        "segment": segment,
                        "tag": tag,
                    }
                    for seq, position, segment, tag in segments
                ],
                STG_SEGMENTS,
            ),
            "raw_persons": pa.table({"message_seq": pa.array([1, 1, 2, 2, 2], pa.int64())}),
            "raw_payloads": pa.table(
                {"message_seq": pa.array([1, 2], pa.int64()), "payload_sha256": ["p1", "p2"]}
            ),
        },
        columns=("message_seq", "message_ref", "has_unt", "person_count"),
        order_by=("message_seq",),
    )
    assert rows == [
        {"message_seq": 1, "message_ref": "1", "has_unt": True, "person_count": 2},
        {"message_seq": 2, "message_ref": "2", "has_unt": False, "person_count": 3},
    ]
