"""Bulk reads through Arrow's S3 file system, against the real store: bytes, order, errors."""

from __future__ import annotations

import dataclasses
import os

import pytest

from faulty_proxy import FaultyProxy
from manifest_exchange.local.stack import SOURCE_BUCKET, STATE_BUCKET, EmbeddedStack
from manifest_exchange.storage.s3 import (
    ArrowDownloader,
    is_transient_error,
    make_client,
    put_bytes,
)

pytestmark = pytest.mark.integration

PREFIX = "test-downloads"


@pytest.fixture(scope="module")
def uploaded(embedded_stack: EmbeddedStack) -> dict[str, bytes]:
    """Objects of several sizes (empty, small, a few MB, non-ASCII bytes) in the state bucket."""
    bodies = {
        f"{PREFIX}/empty.edi": b"",
        f"{PREFIX}/small.edi": b"UNA:+.? 'UNB+UNOA:4+CI+TW+261201:0830+1'",
        f"{PREFIX}/latin1.edi": "NAD+FL+++MÜLLER'".encode("latin-1"),
        f"{PREFIX}/big.edi": os.urandom(3 * 1024 * 1024),
        **{f"{PREFIX}/many/{i:03d}.edi": f"object {i}".encode() for i in range(40)},
    }
    client = make_client(embedded_stack.s3_settings("pipeline"))
    for key, body in bodies.items():
        put_bytes(client, STATE_BUCKET, key, body)
    return bodies


def test_bodies_come_back_whole_and_in_the_order_of_the_keys(
    embedded_stack: EmbeddedStack, uploaded: dict[str, bytes]
) -> None:
    downloader = ArrowDownloader(embedded_stack.s3_settings("pipeline"))
    keys = sorted(uploaded, reverse=True)

    assert downloader.get_many(STATE_BUCKET, keys) == [uploaded[key] for key in keys]


def test_a_missing_object_is_not_found_and_not_retried(
    embedded_stack: EmbeddedStack, uploaded: dict[str, bytes]
) -> None:
    downloader = ArrowDownloader(embedded_stack.s3_settings("pipeline"))

    with pytest.raises(FileNotFoundError) as raised:
        downloader.get_many(STATE_BUCKET, [f"{PREFIX}/small.edi", f"{PREFIX}/absent.edi"])
    assert not is_transient_error(raised.value)


@pytest.mark.parametrize("who", ["partner identity", "wrong secret"])
def test_a_denied_read_fails_at_once_and_is_not_retried(
    embedded_stack: EmbeddedStack, uploaded: dict[str, bytes], who: str
) -> None:
    settings = embedded_stack.s3_settings("pipeline")
    if who == "partner identity":
        settings = embedded_stack.s3_settings("partner")
    else:
        settings = dataclasses.replace(settings, secret_access_key="not-the-secret")

    with pytest.raises(OSError, match="ACCESS_DENIED") as raised:
        ArrowDownloader(settings).get(STATE_BUCKET, f"{PREFIX}/small.edi")
    assert not is_transient_error(raised.value)


def test_an_unreachable_store_is_a_transient_connection_error(
    embedded_stack: EmbeddedStack,
) -> None:
    closed = dataclasses.replace(
        embedded_stack.s3_settings("pipeline"), endpoint_url="http://127.0.0.1:9"
    )

    with pytest.raises(ConnectionError, match="NETWORK_CONNECTION") as raised:
        ArrowDownloader(closed).get(SOURCE_BUCKET, "anything")
    assert is_transient_error(raised.value)


def test_error_answers_from_the_store_are_retried_until_the_bytes_arrive(
    embedded_stack: EmbeddedStack, uploaded: dict[str, bytes]
) -> None:
    settings = embedded_stack.s3_settings("pipeline")
    assert settings.endpoint_url
    proxy = FaultyProxy(settings.endpoint_url, refuse=0.15, seed=11).start()
    try:
        downloader = ArrowDownloader(dataclasses.replace(settings, endpoint_url=proxy.endpoint_url))
        keys = sorted(k for k in uploaded if "/many/" in k)
        # One at a time, so the proxy's seeded faults fall on the same requests every run.
        bodies = [downloader.get(STATE_BUCKET, key) for key in keys]
    finally:
        proxy.stop()

    assert bodies == [uploaded[key] for key in keys]
    assert proxy.counts["refused"] > 0
