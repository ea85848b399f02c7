from __future__ import annotations

import base64
from pathlib import Path

import pytest

from manifest_exchange.config import Settings
from manifest_exchange.storage.s3 import S3Location


def test_standard_aws_variables_service_endpoint_wins() -> None:
    settings = Settings.from_env(
        {
            "AWS_ENDPOINT_URL": "http://general:1",
            "AWS_ENDPOINT_URL_S3": "http://s3-only:2",
            "AWS_ACCESS_KEY_ID": "AK",
            "AWS_SECRET_ACCESS_KEY": "very-secret",
            "MX_HOME": "/tmp/mx-test-home",
        }
    )
    assert settings.s3.endpoint_url == "http://s3-only:2"
    assert settings.s3.region == "us-east-1"
    assert settings.home == Path("/tmp/mx-test-home")
    assert "very-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [("s3://b", "b", ""), ("s3://b/", "b", ""), ("s3://b/p/q/", "b", "p/q")],
)
def test_s3_location_parse(url: str, bucket: str, prefix: str) -> None:
    location = S3Location.parse(url)
    assert (location.bucket, location.prefix) == (bucket, prefix)
    assert location.key("x") == (f"{prefix}/x" if prefix else "x")


@pytest.mark.parametrize("url", ["b/p", "s3://", "http://b/p"])
def test_s3_location_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError, match="s3://"):
        S3Location.parse(url)


def test_hmac_key_comes_from_the_environment_and_is_never_printed() -> None:
    encoded = base64.b64encode(b"k" * 32).decode()
    settings = Settings.from_env({"MX_HMAC_KEY_ID": "jp-2026", "MX_HMAC_KEY": encoded})
    assert settings.hmac_key is not None
    assert settings.hmac_key.key_id == "jp-2026"
    assert encoded not in repr(settings)
    assert Settings.from_env({}).hmac_key is None


def test_a_short_or_malformed_hmac_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Settings.from_env({"MX_HMAC_KEY_ID": "k", "MX_HMAC_KEY": "c2hvcnQ="})
    with pytest.raises(ValueError, match="base64"):
        Settings.from_env({"MX_HMAC_KEY_ID": "k", "MX_HMAC_KEY": "not base64!"})


def test_each_agreement_gets_the_key_it_names() -> None:
    default = base64.b64encode(b"d" * 32).decode()
    australia = base64.b64encode(b"a" * 32).decode()
    taiwan = base64.b64encode(b"t" * 32).decode()
    settings = Settings.from_env(
        {
            "MX_HMAC_KEY_ID": "jp-2026",
            "MX_HMAC_KEY": default,
            "MX_HMAC_PARTNER_KEYS": f"tw-au-1:{australia},jp-tw-1:{taiwan}",
        }
    )
    assert settings.hmac_key_for(None).key_id == "jp-2026"
    assert settings.hmac_key_for("tw-au-1").secret == b"a" * 32
    assert settings.hmac_key_for("jp-2026").secret == b"d" * 32
    assert australia not in repr(settings)
    with pytest.raises(ValueError, match="'nz-1' in MX_HMAC_PARTNER_KEYS"):
        settings.hmac_key_for("nz-1")
    with pytest.raises(ValueError, match="MX_HMAC_KEY_ID"):
        Settings.from_env({}).hmac_key_for(None)
    with pytest.raises(ValueError, match="id:base64 pairs"):
        Settings.from_env({"MX_HMAC_PARTNER_KEYS": "no-separator"})
