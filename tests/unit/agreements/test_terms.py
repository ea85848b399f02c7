from __future__ import annotations

from pathlib import Path

import pytest

from manifest_exchange.agreements.terms import (
    AGREEMENTS_DIR,
    V1_COLUMNS,
    V2_COLUMNS,
    AgreementError,
    list_agreements,
    load_agreement,
)


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
        ('receipts_location = "s3://b/receipts"', "receipts_location must be a bucket of its own"),
        ('receipts_location = "partner-receipts"', "receipts_location must be an s3://"),
        ("receipt_due_minutes = 0", "receipt_due_minutes"),
        ('require_receipt = "false"', "require_receipt must be true or false"),
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


def test_every_shipped_agreement_loads_and_names_its_file() -> None:
    agreements = {a.name: a for a in list_agreements()}
    assert {"tw-jp", "tw-au", "jp-tw", "tw-jp-v2"} <= set(agreements)
    reciprocal = agreements["jp-tw"]
    assert (reciprocal.origin_country, reciprocal.destination_country) == ("JPN", "TWN")
    assert reciprocal.excluded_nationalities == ("TWN",)
    assert agreements["tw-au"].hmac_key_id == "tw-au-1"
    assert agreements["tw-au"].partner_bucket == "partner-drops-au"


def test_v2_adds_columns_after_v1_and_changes_none() -> None:
    v2 = load_agreement("tw-jp-v2")
    assert v2.columns[: len(V1_COLUMNS)] == V1_COLUMNS
    assert v2.columns == V2_COLUMNS
    assert load_agreement("tw-jp").partner_location == v2.partner_location


def test_a_file_whose_name_differs_from_its_agreement_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tw-xx.toml"
    path.write_text((AGREEMENTS_DIR / "tw-au.toml").read_text())
    with pytest.raises(AgreementError, match="differs from the file name"):
        load_agreement(str(path))


def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tw-au.toml"
    text = (AGREEMENTS_DIR / "tw-au.toml").read_text()
    path.write_text(text.replace('schema_version = "1"', 'schema_version = "9"'))
    with pytest.raises(AgreementError, match="schema_version '9'"):
        load_agreement(str(path))


def test_each_partner_acknowledges_drops_in_a_receipts_bucket_of_its_own() -> None:
    agreements = {a.name: a for a in list_agreements()}
    assert agreements["tw-jp"].receipts_location == "s3://partner-receipts/tw-jp"
    assert agreements["tw-jp-v3"].receipts_location == "s3://partner-receipts/tw-jp"
    assert agreements["tw-au"].receipts_bucket == "partner-receipts-au"
    for agreement in agreements.values():
        assert agreement.receipts_bucket not in {a.partner_bucket for a in agreements.values()}
        assert agreement.receipt_due_minutes == 60
        assert agreement.require_receipt is False


def test_receipts_default_to_a_bucket_beside_the_partners(tmp_path: Path) -> None:
    path = tmp_path / "tw-xx.toml"
    path.write_text(
        'name = "tw-xx"\norigin_country = "TWN"\ndestination_country = "KOR"\n'
        'traveller_types = ["PASSENGER"]\npartner_location = "s3://kr-drops/tw-xx"\n'
        "require_receipt = true\nreceipt_due_minutes = 15\n"
    )
    agreement = load_agreement(str(path))
    assert agreement.receipts_location == "s3://kr-drops-receipts/tw-xx"
    assert (agreement.require_receipt, agreement.receipt_due_minutes) == (True, 15)
