"""Settings for a flow run: the environment, overridden by Prefect blocks when named.

A deployment names its blocks as parameters (``s3_credentials_block``, ``hmac_key_block``);
the secrets themselves stay in the blocks (encrypted in Prefect's database) and never appear
in ``prefect.yaml``, in deployment parameters or in git.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from prefect.blocks.system import Secret
from prefect_aws import AwsCredentials

from manifest_exchange.config import HmacKey, S3Settings, Settings

PIPELINE_CREDENTIALS_BLOCK = "mx-pipeline-s3"
RETENTION_CREDENTIALS_BLOCK = "mx-retention-s3"
HMAC_KEY_BLOCK = "mx-hmac-key"


def s3_settings_from_block(name: str) -> S3Settings:
    """S3 settings from an ``AwsCredentials`` block (endpoint from its client parameters)."""
    credentials = cast(AwsCredentials, AwsCredentials.load(name))
    secret = credentials.aws_secret_access_key
    return S3Settings(
        endpoint_url=credentials.aws_client_parameters.endpoint_url,
        region=credentials.region_name or "us-east-1",
        access_key_id=credentials.aws_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
    )


def hmac_keys_from_block(name: str) -> tuple[HmacKey, tuple[HmacKey, ...]]:
    """The default document-matching key and the keys agreements name, from a ``Secret`` block
    holding ``{"key_id", "key", "partner_keys": {id: base64}}`` (``partner_keys`` optional)."""
    value: Any = cast(Secret[Any], Secret.load(name)).get()
    if not isinstance(value, dict) or not {"key_id", "key"} <= value.keys():
        raise ValueError(f"secret block {name!r} must hold a JSON object with key_id and key")
    partner_keys = tuple(
        HmacKey.from_base64(str(key_id), str(encoded))
        for key_id, encoded in dict(value.get("partner_keys") or {}).items()
    )
    return HmacKey.from_base64(str(value["key_id"]), str(value["key"])), partner_keys


def run_settings(s3_credentials_block: str | None, hmac_key_block: str | None) -> Settings:
    """The environment's settings, with the S3 credentials and HMAC key from blocks if named."""
    settings = Settings.from_env()
    if s3_credentials_block:
        settings = dataclasses.replace(settings, s3=s3_settings_from_block(s3_credentials_block))
    if hmac_key_block:
        key, partner_keys = hmac_keys_from_block(hmac_key_block)
        settings = dataclasses.replace(settings, hmac_key=key, partner_keys=partner_keys)
    return settings
