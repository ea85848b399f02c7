from __future__ import annotations

from pathlib import Path

import pytest

from manifest_exchange.agreements import V1_COLUMNS, AgreementError, load_agreement


def test_default_agreement_is_taiwan_to_japan_passengers() -> None:
    agreement = load_agreement()
    assert (agreement.origin_country, agreement.destination_country) == ("TWN", "JPN")
    assert agreement.traveller_types == ("PASSENGER", "TRANSIT")
    assert agreement.excluded_nationalities == ("JPN",)
    assert agreement.columns == V1_COLUMNS


def test_a_second_partner_is_a_file_not_code(tmp_path: Path) -> None:
    path = tmp_path / "tw-au.toml"
    path.write_text(
        'name = "tw-au"\norigin_country = "twn"\ndestination_country = "AUS"\n'
        'traveller_types = ["passenger"]\nexcluded_nationalities = ["AUS"]\n'
        'extra_columns = ["seat"]\npartner_location = "s3://au-drops/tw-au"\n'
    )
    agreement = load_agreement(str(path))
    assert agreement.origin_country == "TWN"
    assert agreement.columns[-1] == "seat"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('extra_columns = ["home_address"]', "extra_columns"),
        ('traveller_types = ["PILOT"]', "traveller_types"),
        ('destination_country = "JAPAN"', "destination_country"),
        ('partner_location = "/tmp/drops"', "partner_location"),
    ],
)
def test_bad_agreements_are_refused_with_the_reason(
    tmp_path: Path, line: str, message: str
) -> None:
    settings = {
        "name": '"x"',
        "origin_country": '"TWN"',
        "destination_country": '"JPN"',
        "traveller_types": '["PASSENGER"]',
        "partner_location": '"s3://b/p"',
    }
    key = line.split(" = ")[0]
    settings[key] = line.split(" = ", 1)[1]
    path = tmp_path / "bad.toml"
    path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    with pytest.raises(AgreementError, match=message):
        load_agreement(str(path))


def test_unknown_agreement_names_the_known_ones() -> None:
    with pytest.raises(AgreementError, match="tw-jp"):
        load_agreement("xx-yy")
