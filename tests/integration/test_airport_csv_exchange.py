"""Airport CSV exports through the whole exchange: alone, beside the airline's PAXLST, defective.

Real SeaweedFS and a real Prefect server, as in every integration test; counts come from the
generator's ground truth.
"""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus
from manifest_exchange.local.generate.paxlst import Corpus, Traveller
from manifest_exchange.reference.codes import airports

pytestmark = pytest.mark.integration


def _exported_passengers(corpus: Corpus) -> tuple[int, int]:
    """(in scope, out of scope) travellers on the flights' airport exports (passengers only)."""
    table = airports()
    exported = {o.flight_key for o in corpus.objects if o.source_format == "airport_csv"}
    in_scope = out_of_scope = 0
    for flight in corpus.flights:
        if flight.flight_key not in exported:
            continue
        flight_in_scope = table[flight.legs[0].dep].country == "TWN" and any(
            table[leg.arr].country == "JPN" for leg in flight.legs
        )
        for traveller in flight.passengers:
            if flight_in_scope and traveller.nationality != "JPN":
                in_scope += 1
            else:
                out_of_scope += 1
    return in_scope, out_of_scope


def test_exports_alone_publish_their_passengers(exchange: Exchange) -> None:
    corpus = make_corpus(flights=6, seed=71, csv_rate=1.0, csv_only=True)
    assert {o.source_format for o in corpus.objects} == {"airport_csv"}
    exchange.upload(corpus)

    report = exchange.run()

    in_scope, out_of_scope = _exported_passengers(corpus)
    assert report["travellers"] == in_scope + out_of_scope
    assert report["published"] == in_scope
    assert report["out_of_scope"] == out_of_scope
    assert report["duplicates"] == report["quarantined_rows"] == 0
    assert report["per_source_format"] == {
        "airport_csv": {
            "published": in_scope,
            "out_of_scope": out_of_scope,
            "duplicate": 0,
            "quarantined": 0,
        }
    }
    rows = exchange.published_rows()
    assert rows.num_rows == in_scope
    assert set(rows["message_function"].to_pylist()) == {"745"}
    assert all(key.endswith((".csv", ".txt")) for key in rows["source_object"].to_pylist())
    assert exchange.audit().ok


def _flight_with_both(corpus: Corpus) -> tuple[str, list[Traveller]]:
    table = airports()
    for flight in corpus.flights:
        if (
            table[flight.legs[0].dep].country == "TWN"
            and table[flight.legs[-1].arr].country == "JPN"
        ):
            passengers = [t for t in flight.passengers if t.nationality != "JPN"]
            return flight.flight_key, passengers
    raise AssertionError("the corpus has no flight from Taiwan to Japan")


def test_an_export_beside_the_airline_list_adds_no_traveller(exchange: Exchange) -> None:
    corpus = make_corpus(flights=5, seed=72, csv_rate=1.0)
    flight_key, passengers = _flight_with_both(corpus)
    # The airport read a different passport for one traveller, and none for another: name and
    # birth date still match them to the airline's rows.
    other_passport, no_passport = passengers[0], passengers[1]
    for obj in list(corpus.objects):
        if obj.source_format == "airport_csv" and obj.flight_key == flight_key:
            data = obj.data.replace(other_passport.doc_number.encode(), b"Z9988776")
            data = data.replace(f",P,{no_passport.doc_number},".encode(), b",,,")
            corpus.objects[corpus.objects.index(obj)] = obj.__class__(
                **{**obj.__dict__, "data": data}
            )
    exchange.upload(corpus)

    report = exchange.run()

    expected = expected_outcomes(corpus)
    in_scope, out_of_scope = _exported_passengers(corpus)
    assert report["published"] == expected["published"]
    assert report["out_of_scope"] == expected["out_of_scope"] + out_of_scope
    # The export's traveller without a document fails the document check; every other
    # exported traveller is the airline's traveller again.
    assert report["quarantined_rows"] == 1
    assert report["duplicates"] == in_scope - 1
    assert report["per_source_format"] == {
        "airport_csv": {
            "published": 0,
            "out_of_scope": out_of_scope,
            "duplicate": in_scope - 1,
            "quarantined": 1,
        },
        "paxlst": {
            "published": expected["published"],
            "out_of_scope": expected["out_of_scope"],
            "duplicate": 0,
            "quarantined": 0,
        },
    }
    rows = exchange.published_rows()
    assert rows.num_rows == expected["published"]
    assert len(set(rows["record_id"].to_pylist())) == rows.num_rows
    quarantined = exchange.quarantine(report["run_id"], "travellers")
    assert quarantined["record_id"].to_pylist()[0] in set(rows["record_id"].to_pylist())
    assert exchange.audit().ok

    # An untouched export sent again in a later run: the airline's rows were published with
    # the same values, so the partner gets nothing new.
    export = next(
        o for o in corpus.objects if o.source_format == "airport_csv" and o.flight_key != flight_key
    )
    exchange.upload_bytes("resent/" + export.key.rsplit("/", 1)[1], export.data)
    second = exchange.run()
    assert second["travellers"] == export.travellers > 0
    assert second["published"] == second["quarantined_rows"] == 0
    assert exchange.audit().ok


def test_export_defects_are_quarantined_with_line_numbers(exchange: Exchange) -> None:
    corpus = make_corpus(
        flights=8, seed=73, csv_rate=1.0, csv_only=True, defect_rate=0.08, flight_defect_rate=0.4
    )
    assert any(o.is_truncated for o in corpus.objects)
    exchange.upload(corpus)

    report = exchange.run()

    sent = sum(o.travellers for o in corpus.objects)
    assert report["travellers"] == sent
    outcomes = ("published", "out_of_scope", "duplicates", "quarantined_rows")
    assert sum(report[key] for key in outcomes) == sent
    assert sum(report["per_source_format"]["airport_csv"].values()) == sent
    errors = exchange.quarantine(report["run_id"], "errors")
    rejected = errors.filter(pc.equal(errors["error_code"], "csv_line_rejected"))
    dob_defects = sum(
        "impossible_dob" in t.defects
        for f in corpus.flights
        for t in f.passengers
        if f.defects != ["truncated"]
    )
    assert rejected.num_rows >= dob_defects > 0
    reasons = rejected["reason"].to_pylist()
    assert all(reason.startswith("line ") for reason in reasons)
    assert any("date_of_birth" in reason for reason in reasons)
    # Reasons name the column, never its value.
    birth_dates = {str(t.date_of_birth) for f in corpus.flights for t in f.passengers}
    assert not any(date in reason for reason in reasons for date in birth_dates)
    assert exchange.audit().ok


def test_an_export_with_another_document_in_a_later_run_revises_the_same_record(
    exchange: Exchange,
) -> None:
    corpus = make_corpus(flights=4, seed=75, csv_rate=1.0)
    flight_key, passengers = _flight_with_both(corpus)
    airline = [o for o in corpus.objects if o.source_format == "paxlst"]
    export = next(
        o for o in corpus.objects if o.source_format == "airport_csv" and o.flight_key == flight_key
    )
    traveller = passengers[0]
    for obj in airline:
        exchange.upload_bytes(obj.key, obj.data)
    first = exchange.run()
    records_before = set(exchange.published_rows()["record_id"].to_pylist())

    # Later, the airport's export of that flight, with another passport for one traveller.
    exchange.upload_bytes(
        export.key, export.data.replace(traveller.doc_number.encode(), b"Z9988776")
    )
    second = exchange.run()

    assert first["published"] == expected_outcomes(corpus)["published"]
    # Name and birth date match the published record: a new revision of it, not a new record.
    assert second["published"] == 1
    rows = exchange.published_rows()
    assert set(rows["record_id"].to_pylist()) == records_before
    revised = rows.filter(pc.equal(rows["doc_number"], "Z9988776"))
    assert revised.num_rows == 1
    assert revised["manifest_revision"].to_pylist() == [2]
    assert exchange.audit().ok
