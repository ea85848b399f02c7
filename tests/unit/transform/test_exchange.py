"""Helpers of the exchange transform, and the columns its SQL derives for the suites
(the other SQL steps are tested through the flow)."""

from __future__ import annotations

import datetime as dt
import random

import duckdb
import pyarrow as pa
import pytest

from manifest_exchange.agreements.terms import load_agreement
from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.paxlst.parser import PaxlstParser, SourceObject
from manifest_exchange.transform.exchange import (
    doc_match_hmacs,
    document_shapes,
    exchange_messages,
    exchange_travellers,
)
from manifest_exchange.transform.schemas import empty_issues

# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
RFC_4231_KEY = b"Jefe"
RFC_4231_DATA = "what do ya want for nothing?"
RFC_4231_HMAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_doc_match_hmacs_are_hmac_sha256_in_hex_one_per_input() -> None:
    inputs = [RFC_4231_DATA, None, "P|TWN|A12345678", "P|TWN|A12345679", RFC_4231_DATA]
    digests = doc_match_hmacs(RFC_4231_KEY, inputs)
    # Each input is hashed on its own: the copies of the keyed HMAC do not share state.
    assert digests[0] == digests[4] == RFC_4231_HMAC
    assert digests[1] is None
    assert digests[2] != digests[3]
    assert doc_match_hmacs(RFC_4231_KEY, ["P|TWN|A12345678"]) == [digests[2]]


def _document_numbers() -> list[str | None]:
    rng = random.Random(11)
    alphabet = "AZMaz09 -<.ÄÉßΩ日本" + "\u00a0"
    numbers: list[str | None] = ["", None, "A12345678", "p-1234<<", "ÄB9", "日本12"]
    numbers += ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(2000)]
    return numbers


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_document_shapes_are_what_sql_translate_gives(kind: pa.DataType) -> None:
    """Capitals to A, digits to 9, everything else (lower case, other scripts) kept."""
    numbers = _document_numbers()
    expected = [
        row[0]
        for row in duckdb.execute(
            "select translate(n, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', "
            "'AAAAAAAAAAAAAAAAAAAAAAAAAA9999999999') from unnest(?) with ordinality as t(n, i) "
            "order by i",
            [numbers],
        ).fetchall()
    ]
    # Chunks that are slices, so values start past their buffers' first byte.
    whole = pa.array(["padding", *numbers, "padding"], kind)
    chunked = pa.chunked_array([whole.slice(1, 700), whole.slice(701, len(numbers) - 700)])
    shapes = document_shapes(chunked)
    assert shapes.type == kind
    assert shapes.to_pylist() == expected
    assert shapes.to_pylist()[:6] == ["", None, "A99999999", "p-9999<<", "ÄA9", "日本99"]


def test_document_shapes_refuse_what_is_not_text() -> None:
    with pytest.raises(TypeError, match="must be strings"):
        document_shapes(pa.chunked_array([pa.array([1, 2])]))


CSV_HEADER = (
    "carrier_code,flight_number,dep_airport,arr_airport,sched_departure_local,"
    "sched_arrival_local,traveller_type,surname,given_names,sex,date_of_birth,nationality,"
    "doc_type,doc_number,doc_issuing_state,doc_expiry_date"
)


def _exported_travellers(rows: list[tuple[str, str, str]]) -> pa.Table:
    """``exchange_travellers`` of an airport export: (flight number, nationality, issuer)."""
    lines = [
        f"CI,{flight},TPE,NRT,2026-12-01 08:30,2026-12-01 12:45,PASSENGER,WANG,MING,M,"
        f"1990-01-02,{nationality},P,31234567{number},{issuer},2030-01-01"
        for number, (flight, nationality, issuer) in enumerate(rows)
    ]
    with PaxlstParser() as parser:
        empty = parser.parse([])
    export = "\n".join([CSV_HEADER, *lines]).encode()
    result = airport_csv.read_exports([SourceObject("export.csv", export)], empty)
    objects = result.objects.append_column(
        "receive_order", pa.array(range(result.objects.num_rows), pa.int32())
    ).append_column(
        "received_at",
        pa.array([dt.datetime(2026, 12, 1, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")),
    )
    persons = result.persons.append_column(
        "person_id", pa.array(range(result.persons.num_rows), pa.int64())
    )
    agreement = load_agreement("tw-jp")
    messages = exchange_messages(result.messages, objects, agreement)
    return exchange_travellers(persons, messages, empty_issues(), agreement)


def test_travellers_carry_whether_a_code_is_unknown_and_which_list_they_are_in() -> None:
    """What the traveller suite checks instead of codes and list keys (decision 0020)."""
    travellers = _exported_travellers(
        [
            ("100", "TWN", "TWN"),
            ("100", "TW", "D"),  # alpha-2 and the German D, normalised to alpha-3
            ("100", "ZZQ", "QQQ"),
            ("200", "", ""),  # a missing code is not an unknown one
            ("200", "XXA", "UNO"),  # ICAO 9303 codes that are no ISO country
        ]
    ).sort_by("person_id")
    assert travellers["has_unknown_nationality"].to_pylist() == [False, False, True, False, False]
    assert travellers["has_unknown_issuing_state"].to_pylist() == [False, False, True, False, False]
    keys, ordinals = travellers["list_key"].to_pylist(), travellers["list_ordinal"].to_pylist()
    assert dict(zip(keys, ordinals, strict=True)) == {
        key: number for number, key in enumerate(sorted(set(keys)), start=1)
    }
    assert len(set(ordinals)) == 2
