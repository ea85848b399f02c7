from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow.compute as pc
import pytest

from manifest_exchange.airport_csv.exports import is_airport_csv, read_exports
from manifest_exchange.local.generate.paxlst import (
    Corpus,
    GeneratorOptions,
    _Generator,
    generate_day,
)
from manifest_exchange.paxlst.parser import PaxlstParser, SourceObject
from manifest_exchange.reference.codes import airports

DAY = dt.date(2026, 12, 1)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_day(
        GeneratorOptions(DAY, flights=40, seed=11, defect_rate=0.05, resend_rate=0.1)
    )


def test_same_seed_same_bytes(corpus: Corpus) -> None:
    again = generate_day(corpus.options)
    assert [(o.key, o.data) for o in again.objects] == [(o.key, o.data) for o in corpus.objects]
    other = generate_day(GeneratorOptions(DAY, flights=40, seed=12))
    assert [o.data for o in other.objects] != [o.data for o in corpus.objects]


def test_traffic_is_mostly_to_japan_with_crew_transit_and_japanese(corpus: Corpus) -> None:
    summary = corpus.summary()
    parties = summary["travellers_by_party"]
    assert isinstance(parties, dict)
    assert set(parties) == {"FL", "FM", "DDU"}
    countries = Counter(f.legs[-1].arr for f in corpus.flights)
    japan = {
        "NRT",
        "HND",
        "KIX",
        "NGO",
        "FUK",
        "CTS",
        "OKA",
        "SDJ",
        "HIJ",
        "OKJ",
        "KMJ",
        "KOJ",
        "TAK",
        "ISG",
    }
    assert sum(n for a, n in countries.items() if a in japan) > len(corpus.flights) / 2
    nationalities = Counter(t.nationality for f in corpus.flights for t in f.passengers)
    assert 0.1 < nationalities["JPN"] / sum(nationalities.values()) < 0.4


def test_keys_carry_no_personal_data(corpus: Corpus) -> None:
    names = {t.surname for f in corpus.flights for t in f.passengers}
    numbers = {t.doc_number for f in corpus.flights for t in f.passengers}
    for obj in corpus.objects:
        assert not any(n in obj.key for n in numbers)
        assert not any(f"/{n}" in obj.key or f"_{n}" in obj.key for n in names)


def test_variety_of_syntax_and_planted_defects(corpus: Corpus) -> None:
    assert len({o.syntax for o in corpus.objects}) >= 4
    assert any(o.is_resend for o in corpus.objects)
    assert any(len(f.passengers) > corpus.options.part_size for f in corpus.flights)
    defects = corpus.summary()["traveller_defects"]
    assert isinstance(defects, dict)
    assert {"impossible_dob", "expired_doc", "missing_doc"} <= set(defects)


def test_parser_reads_back_what_was_generated(corpus: Corpus) -> None:
    result = PaxlstParser().parse([SourceObject(o.key, o.data) for o in corpus.objects])
    complete = sum(o.travellers for o in corpus.objects if not o.is_truncated)
    assert result.persons.num_rows == complete
    truncated = sum(o.is_truncated for o in corpus.objects)
    assert Counter(result.errors.column("error_code").to_pylist())["message_truncated"] >= truncated
    truth = {t.doc_number: (f, t) for f in corpus.flights for t in (*f.passengers, *f.crew)}
    checked = 0
    for row in result.persons.to_pylist():
        flight, traveller = truth.get(row["doc_number"], (None, None))
        if traveller is None or traveller.defects:
            continue
        checked += 1
        assert row["surname"] == traveller.surname
        assert row["given_names"] == traveller.given_names
        assert row["date_of_birth"] == traveller.date_of_birth
        assert row["doc_expiry_date"] == traveller.doc_expiry
        assert row["doc_issuing_state"] == {"D": "DEU"}.get(
            traveller.doc_issuer, traveller.doc_issuer
        )
        assert row["flight_number"] == f"{flight.number:04d}"
        assert row["sched_departure_local"].date() == DAY
    assert checked > 0.8 * complete


def test_resends_repeat_the_payload_under_a_new_reference(corpus: Corpus) -> None:
    result = PaxlstParser().parse([SourceObject(o.key, o.data) for o in corpus.objects])
    messages = result.messages.to_pylist()
    by_hash = Counter(m["payload_sha256"] for m in messages)
    resent_messages = sum(len(o.bgm_codes) for o in corpus.objects if o.is_resend)
    assert sum(n - 1 for n in by_hash.values()) >= resent_messages
    refs_per_hash: dict[str, set[str]] = {}
    for m in messages:
        refs_per_hash.setdefault(m["payload_sha256"], set()).add(m["message_ref"])
    assert all(len(refs) == by_hash[h] for h, refs in refs_per_hash.items())


def test_a_carrier_with_more_flights_than_three_digits_goes_on_to_four() -> None:
    # A benchmark's million travellers is thousands of flights, many of one carrier.
    generator = _Generator(GeneratorOptions(dt.date(2026, 12, 1), flights=1, seed=3))

    numbers = [generator._flight_number("CI") for _ in range(2_000)]

    assert len(set(numbers)) == len(numbers)
    assert max(numbers[:800]) <= 999
    assert min(numbers[800:]) >= 1000


def test_airport_exports_list_the_airline_passengers_and_keep_the_paxlst_bytes(
    corpus: Corpus,
) -> None:
    with_exports = generate_day(
        GeneratorOptions(DAY, flights=40, seed=11, defect_rate=0.05, resend_rate=0.1, csv_rate=0.3)
    )
    exports = [o for o in with_exports.objects if o.source_format == "airport_csv"]
    assert 5 < len(exports) < 25
    assert all(is_airport_csv(o.data) for o in exports)
    assert not any(is_airport_csv(o.data) for o in corpus.objects)
    by_flight = {f.flight_key: f for f in with_exports.flights}
    for export in exports:
        if not export.is_truncated and not export.is_resend:
            assert export.travellers == len(by_flight[export.flight_key].passengers)
            assert export.data.count(b"\n") == export.travellers + 1
    assert {k.rsplit(".", 1)[1] for k in (o.key for o in exports)} <= {"csv", "txt"}

    alone = generate_day(GeneratorOptions(DAY, flights=10, seed=5, csv_rate=1.0, csv_only=True))
    assert {o.source_format for o in alone.objects} == {"airport_csv"}
    assert generate_day(alone.options).objects == alone.objects


def test_departures_from_japan_for_the_reciprocal_direction() -> None:
    corpus = generate_day(GeneratorOptions(DAY, flights=30, seed=4, origin_country="JPN"))
    table = airports()
    assert {table[f.legs[0].dep].country for f in corpus.flights} == {"JPN"}
    arrivals = Counter(table[f.legs[-1].arr].country for f in corpus.flights)
    assert arrivals["TWN"] > len(corpus.flights) / 2
    assert len(arrivals) > 1
    with pytest.raises(ValueError, match="no routes for origin country 'KOR'"):
        generate_day(GeneratorOptions(DAY, flights=1, origin_country="KOR"))


@pytest.mark.parametrize("seed", [3, 8, 21])
def test_travellers_in_objects_are_what_the_readers_count(seed: int) -> None:
    """Truncated PAXLST and CSV objects count only the travellers left in their bytes."""
    corpus = generate_day(
        GeneratorOptions(
            dt.date(2026, 12, 1), flights=12, seed=seed, csv_rate=0.4, flight_defect_rate=0.6
        )
    )
    received = 0
    with PaxlstParser("TWN", "JPN") as parser:
        empty = parser.parse([])
        for obj in corpus.objects:
            source = SourceObject(obj.key, obj.data)
            is_export = obj.source_format == "airport_csv"
            result = read_exports([source], empty) if is_export else parser.parse([source])
            unreadable = result.messages.filter(pc.is_valid(result.messages["error_code"]))
            counted = result.persons.num_rows + (pc.sum(unreadable["person_count"]).as_py() or 0)
            assert counted == obj.travellers, obj.key
            received += counted
    summary = corpus.summary()
    assert summary["truncated_objects"] > 0
    assert received == summary["travellers_in_objects"]
