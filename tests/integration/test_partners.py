"""Several partners from one run, the reciprocal direction, and format v2 beside v1.

Agreements are the shipped files, copied with this test's own partner prefix (same buckets,
identities and keys as the shipped ones). Counts come from the generator's ground truth.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from exchange_support import FLIGHT_DATE, Exchange, make_corpus
from manifest_exchange.agreements.terms import (
    AGREEMENTS_DIR,
    V1_COLUMNS,
    V2_COLUMNS,
    Agreement,
    load_agreement,
)
from manifest_exchange.cli import load_exchange_flow
from manifest_exchange.local.generate.paxlst import Corpus, GeneratorOptions, generate_day
from manifest_exchange.local.stack import STATE_BUCKET, reader_identity
from manifest_exchange.operations.audit import audit
from manifest_exchange.publish.partner import fetch_drops, verify_drops
from manifest_exchange.reference.codes import airports
from manifest_exchange.storage.s3 import S3Location

pytestmark = pytest.mark.integration

# Eight flights out of Taiwan, among them Japan, Sydney and Brisbane (seed chosen for that mix).
MIXED_SEED = 33


def _agreement_copy(exchange: Exchange, tmp_path: Path, name: str) -> tuple[Agreement, Path]:
    """The shipped agreement with this test's partner prefix in its partner bucket."""
    text = (AGREEMENTS_DIR / f"{name}.toml").read_text()
    shipped = load_agreement(name)
    location = f"s3://{shipped.partner_bucket}/{exchange.name}/{name.removesuffix('-v2')}"
    text = re.sub(r'partner_location = ".*"', f'partner_location = "{location}"', text)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_agreement(str(path)), path


def _expected_published(corpus: Corpus, terms: Agreement) -> int:
    """Travellers the agreement covers, from ground truth (corpus without defects)."""
    table = airports()
    parties = {"PASSENGER": ("FL",), "TRANSIT": ("DDU",), "CREW": ("FM",)}
    wanted = {p for t in terms.traveller_types for p in parties[t]}
    count = 0
    for flight in corpus.flights:
        origin_legs = [leg for leg in flight.legs if table[leg.dep].country == terms.origin_country]
        if not origin_legs or not any(
            table[leg.arr].country == terms.destination_country for leg in flight.legs
        ):
            continue
        for traveller in (*flight.passengers, *flight.crew):
            if traveller.party in wanted and (
                traveller.nationality not in terms.excluded_nationalities
            ):
                count += 1
    return count


def _rows(exchange: Exchange, terms: Agreement, version: str | None = None) -> pa.Table:
    location = S3Location.parse(terms.partner_location)
    prefix = location.key(f"v{version or terms.schema_version}")
    return exchange.published_rows_under(prefix, bucket=location.bucket)


def _audit_ok(exchange: Exchange, terms: Agreement) -> bool:
    report = audit(
        exchange.pipeline,
        source=exchange.source,
        state=S3Location(STATE_BUCKET, f"{exchange.name}/{terms.name}"),
        partner=S3Location.parse(terms.partner_location),
        agreement=terms,
        now=dt.datetime.now(dt.UTC),
    )
    return report.ok


def _run_partners(exchange: Exchange, paths: list[Path]) -> dict[str, Any]:
    flow = load_exchange_flow("exchange_partners")
    result: dict[str, Any] = flow(
        source=exchange.locations["source"],
        state=exchange.locations["state"],
        agreements=[str(path) for path in paths],
    )
    return result["agreements"]


@pytest.fixture
def copies(exchange: Exchange, tmp_path: Path) -> dict[str, tuple[Agreement, Path]]:
    """name -> (the agreement with this test's partner prefix, its file)."""
    return {
        name: _agreement_copy(exchange, tmp_path, name)
        for name in ("tw-jp", "tw-au", "tw-jp-v2", "jp-tw")
    }


def test_one_run_publishes_each_partner_its_own_scope_columns_and_key(
    exchange: Exchange, copies: dict[str, tuple[Agreement, Path]]
) -> None:
    (japan, japan_file), (australia, australia_file) = copies["tw-jp"], copies["tw-au"]
    corpus = make_corpus(flights=8, seed=MIXED_SEED)
    exchange.upload(corpus)

    reports = _run_partners(exchange, [japan_file, australia_file])

    for terms in (japan, australia):
        assert reports[terms.name]["published"] == _expected_published(corpus, terms) > 0
        assert reports[terms.name]["travellers"] == reports["tw-jp"]["travellers"]
        assert _audit_ok(exchange, terms)
    japan_rows, australia_rows = _rows(exchange, japan), _rows(exchange, australia)
    table = airports()
    assert {table[a].country for a in japan_rows["arr_airport"].to_pylist()} == {"JPN"}
    assert {table[a].country for a in australia_rows["arr_airport"].to_pylist()} == {"AUS"}
    # A flight to Tokyo reaches only Japan's bucket, one to Sydney only Australia's.
    assert not set(japan_rows["flight_key"].to_pylist()) & set(
        australia_rows["flight_key"].to_pylist()
    )
    assert tuple(japan_rows.column_names) == japan.columns == V1_COLUMNS
    assert tuple(australia_rows.column_names) == australia.columns
    assert australia_rows.column_names[-1] == "seat"
    assert "CREW" in australia_rows["traveller_type"].to_pylist()
    assert set(japan_rows["traveller_type"].to_pylist()) <= {"PASSENGER", "TRANSIT"}
    assert "JPN" not in japan_rows["nationality"].to_pylist()
    assert "AUS" not in australia_rows["nationality"].to_pylist()
    assert set(australia_rows["hmac_key_id"].to_pylist()) == {"tw-au-1"}
    assert set(japan_rows["hmac_key_id"].to_pylist()).isdisjoint({"tw-au-1"})

    # Each partner reads its own bucket only.
    australia_reader = exchange.stack.client(reader_identity(australia.partner_bucket))
    assert verify_drops(australia_reader, S3Location.parse(australia.partner_location)).is_ok
    japan_location = S3Location.parse(japan.partner_location)
    with pytest.raises(Exception, match="AccessDenied"):
        verify_drops(australia_reader, japan_location)
    with pytest.raises(Exception, match="AccessDenied"):
        verify_drops(exchange.stack.client("partner"), S3Location.parse(australia.partner_location))


def test_the_reciprocal_exporter_is_configuration_only(
    exchange: Exchange, copies: dict[str, tuple[Agreement, Path]]
) -> None:
    taiwan, taiwan_file = copies["jp-tw"]
    corpus = generate_day(
        GeneratorOptions(
            FLIGHT_DATE, flights=8, seed=5, defect_rate=0.0, resend_rate=0.0, origin_country="JPN"
        )
    )
    exchange.upload(corpus)

    report = load_exchange_flow()(
        source=exchange.locations["source"],
        state=f"{exchange.locations['state']}/jp-tw",
        agreement=str(taiwan_file),
    )

    expected = _expected_published(corpus, taiwan)
    assert report["published"] == expected > 0
    assert report["quarantined_rows"] == report["duplicates"] == 0
    rows = _rows(exchange, taiwan)
    table = airports()
    assert {table[a].country for a in rows["dep_airport"].to_pylist()} == {"JPN"}
    assert {table[a].country for a in rows["arr_airport"].to_pylist()} == {"TWN"}
    assert "TWN" not in rows["nationality"].to_pylist()
    assert set(rows["hmac_key_id"].to_pylist()) == {"jp-tw-1"}
    assert _audit_ok(exchange, taiwan)


def test_v2_is_published_beside_v1_and_v1_readers_are_untouched(
    exchange: Exchange, copies: dict[str, tuple[Agreement, Path]], tmp_path: Path
) -> None:
    (v1, v1_file), (v2, v2_file) = copies["tw-jp"], copies["tw-jp-v2"]
    assert v1.partner_location == v2.partner_location
    corpus = make_corpus(flights=5, seed=74, csv_rate=0.5)
    exchange.upload(corpus)
    first = _run_partners(exchange, [v1_file])
    # v2 starts later, beside v1, for the same partner.
    reports = _run_partners(exchange, [v1_file, v2_file])

    assert reports["tw-jp"]["travellers"] == 0  # v1 had done everything already
    assert reports["tw-jp-v2"]["published"] == first["tw-jp"]["published"] > 0
    partner = exchange.stack.client("partner")
    location = S3Location.parse(v1.partner_location)
    v1_check = verify_drops(partner, location)
    assert v1_check.is_ok
    assert v1_check.as_dict()["rows"] == first["tw-jp"]["published"]
    assert verify_drops(partner, location, schema_version="2").is_ok
    fetched = fetch_drops(partner, location, tmp_path / "inbox")
    assert fetched == first["tw-jp"]["drop_ids"]
    assert not (tmp_path / "inbox" / "v2").exists()

    v1_rows, v2_rows = _rows(exchange, v1, "1"), _rows(exchange, v2, "2")
    assert tuple(v1_rows.column_names) == V1_COLUMNS
    assert tuple(v2_rows.column_names) == V2_COLUMNS
    assert set(v2_rows["schema_version"].to_pylist()) == {"2"}
    same = ["record_id", "doc_match_hmac", "nationality"]
    assert v1_rows.select(same).sort_by("record_id") == v2_rows.select(same).sort_by("record_id")
    assert set(v2_rows["source_format"].to_pylist()) == {"paxlst"}
    first_nationality = pc.list_element(v2_rows["nationalities"], 0)
    assert pc.all(pc.is_valid(first_nationality)).as_py()
    assert _audit_ok(exchange, v1)
    assert _audit_ok(exchange, v2)


def test_one_partner_failing_does_not_hold_back_the_others(
    exchange: Exchange, copies: dict[str, tuple[Agreement, Path]], tmp_path: Path
) -> None:
    japan, japan_file = copies["tw-jp"]
    broken = tmp_path / "broken" / "tw-au.toml"
    broken.parent.mkdir()
    # A key nobody configured: this partner's run cannot start.
    broken.write_text(copies["tw-au"][1].read_text().replace('"tw-au-1"', '"tw-au-9"'))
    corpus = make_corpus(flights=4, seed=MIXED_SEED)
    exchange.upload(corpus)

    with pytest.raises(Exception, match="1 of 2 agreements failed: tw-au"):
        _run_partners(exchange, [broken, japan_file])

    assert _rows(exchange, japan).num_rows == _expected_published(corpus, japan) > 0
    assert _audit_ok(exchange, japan)
