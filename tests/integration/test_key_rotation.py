"""Rotating the document-matching key: new drops use the new key id, old drops keep theirs."""

from __future__ import annotations

import base64
import io
import secrets

import pyarrow.parquet as pq
import pytest

from exchange_support import Exchange, make_corpus
from manifest_exchange.local.stack import PARTNER_BUCKET
from manifest_exchange.publish.drops import drops_root
from manifest_exchange.publish.partner import verify_drops
from manifest_exchange.storage.s3 import get_bytes, iter_objects

pytestmark = pytest.mark.integration


def test_rotated_key_applies_to_new_drops_only(
    exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key_id = exchange.environment()["MX_HMAC_KEY_ID"]
    exchange.upload(make_corpus(flights=2, seed=61))
    first = exchange.run()
    # The drops themselves; v1/_latest.json moves with every drop by design.
    drops = drops_root(exchange.partner)
    before = {i.key: i.etag for i in iter_objects(exchange.pipeline, drops)}

    monkeypatch.setenv("MX_HMAC_KEY_ID", "rotated-2027-01")
    monkeypatch.setenv("MX_HMAC_KEY", base64.b64encode(secrets.token_bytes(32)).decode())
    exchange.upload(make_corpus(flights=2, seed=62))
    second = exchange.run()

    by_drop: dict[str, set[str]] = {}
    for info in iter_objects(exchange.pipeline, exchange.partner):
        if info.key.endswith(".parquet"):
            drop_id = info.key.split("/drops/", 1)[1].split("/", 1)[0]
            data = get_bytes(exchange.pipeline, PARTNER_BUCKET, info.key)
            key_ids = pq.read_table(io.BytesIO(data), columns=["hmac_key_id"])["hmac_key_id"]
            by_drop.setdefault(drop_id, set()).update(key_ids.to_pylist())
    assert by_drop == {
        first["drop_ids"][0]: {old_key_id},
        second["drop_ids"][0]: {"rotated-2027-01"},
    }
    after = {i.key: i.etag for i in iter_objects(exchange.pipeline, drops)}
    assert {k: after[k] for k in before} == before  # the old drop was not rewritten
    assert verify_drops(exchange.stack.client("partner"), exchange.partner).is_ok
