"""Settings: the only reader of the process environment.

Everything else receives values from a :class:`Settings` instance, so logic never reads
``os.environ`` and tests can build settings explicitly.
"""

from __future__ import annotations

import base64
import binascii
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
class HmacKey:
    """The key shared with the partner for ``doc_match_hmac``, and its id."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # never print the secret
        return f"HmacKey(key_id={self.key_id!r}, secret=***)"

    @classmethod
    def from_base64(cls, key_id: str, encoded: str) -> HmacKey:
        try:
            secret = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise ValueError("MX_HMAC_KEY is not valid base64") from None
        if len(secret) < 32:
            raise ValueError("MX_HMAC_KEY must hold at least 32 bytes")
        return cls(key_id=key_id, secret=secret)


@dataclass(frozen=True)
class Settings:
    """Process-wide settings.

    Attributes:
        home: local folder for the embedded stack's data, generated credentials and logs.
        s3: connection settings for the S3-compatible store.
        hmac_key: the document-matching key (``MX_HMAC_KEY_ID`` and base64 ``MX_HMAC_KEY``);
            None when not configured (a run then refuses to start).
        partner_keys: the keys of agreements that name their own ``hmac_key_id``
            (``MX_HMAC_PARTNER_KEYS``: ``id:base64,id:base64``).
        claim_timeout_s: after this long a claim on a source object left by a crashed run
            may be taken over (``MX_CLAIM_TIMEOUT_S``).
        lock_timeout_s: the same for the publish lock (``MX_LOCK_TIMEOUT_S``).
    """

    home: Path
    s3: S3Settings
    hmac_key: HmacKey | None = None
    partner_keys: tuple[HmacKey, ...] = ()
    claim_timeout_s: float = 600.0
    lock_timeout_s: float = 300.0

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
            hmac_key=(
                HmacKey.from_base64(env["MX_HMAC_KEY_ID"], env["MX_HMAC_KEY"])
                if env.get("MX_HMAC_KEY_ID") and env.get("MX_HMAC_KEY")
                else None
            ),
            partner_keys=parse_partner_keys(env.get("MX_HMAC_PARTNER_KEYS", "")),
            claim_timeout_s=float(env.get("MX_CLAIM_TIMEOUT_S", "600")),
            lock_timeout_s=float(env.get("MX_LOCK_TIMEOUT_S", "300")),
        )

    def hmac_key_for(self, key_id: str | None) -> HmacKey:
        """The key an agreement names (None: the default key), or a clear error."""
        keys = {key.key_id: key for key in (*self.partner_keys, self.hmac_key) if key}
        if key_id is None and self.hmac_key is not None:
            return self.hmac_key
        if key_id is not None and key_id in keys:
            return keys[key_id]
        wanted = f"key {key_id!r} in MX_HMAC_PARTNER_KEYS" if key_id else "MX_HMAC_KEY_ID"
        raise ValueError(
            f"no document-matching {wanted} (the embedded stack writes the keys to "
            ".local/stack/pipeline.env)"
        )


def parse_partner_keys(text: str) -> tuple[HmacKey, ...]:
    """``id:base64,id:base64`` -> keys (ids and base64 hold neither ``:`` nor ``,``)."""
    keys = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key_id, separator, encoded = item.partition(":")
        if not separator or not key_id:
            raise ValueError("MX_HMAC_PARTNER_KEYS must be id:base64 pairs separated by commas")
        keys.append(HmacKey.from_base64(key_id, encoded))
    return tuple(keys)
