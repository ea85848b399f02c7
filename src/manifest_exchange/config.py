"""Settings: the only reader of the process environment.

Everything else receives values from a :class:`Settings` instance, so logic never reads
``os.environ`` and tests can build settings explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from manifest_exchange.paths import DEFAULT_HOME


@dataclass(frozen=True)
class S3Settings:
    """How to reach an S3-compatible store, from the standard AWS variables."""

    endpoint_url: str | None
    region: str
    access_key_id: str | None
    secret_access_key: str | None

    def __repr__(self) -> str:  # never print the secret
        return (
            f"S3Settings(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"access_key_id={self.access_key_id!r}, secret_access_key=***)"
        )


@dataclass(frozen=True)
class Settings:
    """Process-wide settings.

    Attributes:
        home: local folder for the embedded stack's data, generated credentials and logs.
        s3: connection settings for the S3-compatible store.
    """

    home: Path
    s3: S3Settings

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            home=Path(env.get("MX_HOME", str(DEFAULT_HOME))).resolve(),
            s3=S3Settings(
                # The service-specific variable wins, as in the AWS SDKs.
                endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
                region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
                access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            ),
        )
