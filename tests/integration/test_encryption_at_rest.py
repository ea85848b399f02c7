"""Encryption at rest does not depend on the writer, and the store's files are its own."""

from __future__ import annotations

import os
import secrets
import stat

import pytest

from manifest_exchange.local.stack import (
    PARTNER_BUCKETS,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
)

pytestmark = pytest.mark.integration

# Who writes each bucket in the exchange; none of them is made to ask for encryption here.
WRITERS = {SOURCE_BUCKET: "loader", STATE_BUCKET: "pipeline"} | {
    bucket: "pipeline" for bucket in PARTNER_BUCKETS
}


def _files_under(folder: os.PathLike[str]) -> list[str]:
    return [
        os.path.join(parent, name)
        for parent, _, names in os.walk(folder)
        for name in names
        if stat.S_ISREG(os.lstat(os.path.join(parent, name)).st_mode)
    ]


def test_a_plain_put_is_stored_encrypted_in_every_bucket(embedded_stack: EmbeddedStack) -> None:
    """An airline's PUT carries no SSE header: the bucket's default encrypts it anyway, so the
    bytes it sent are nowhere on disk, in volumes or metadata."""
    token = secrets.token_hex(16).encode()
    for bucket, writer in WRITERS.items():
        # Random bytes do not compress, so only encryption can hide the token.
        body = secrets.token_bytes(4096) + token + secrets.token_bytes(4096)
        key = f"encryption-at-rest/{secrets.token_hex(8)}"  # the key is stored in clear
        embedded_stack.client(writer).put_object(Bucket=bucket, Key=key, Body=body)
        head = embedded_stack.client("admin").head_object(Bucket=bucket, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", bucket
    holding = []
    for path in _files_under(embedded_stack.data_dir):
        with open(path, "rb") as handle:
            if token in handle.read():
                holding.append(path)
    assert holding == []


def test_nobody_else_can_read_the_stores_files(embedded_stack: EmbeddedStack) -> None:
    assert stat.S_IMODE(embedded_stack.data_dir.stat().st_mode) == 0o700
    readable = [
        str(path.relative_to(embedded_stack.data_dir))
        for path in embedded_stack.data_dir.rglob("*")
        if stat.S_IMODE(path.lstat().st_mode) & 0o007
        # SeaweedFS writes a volume's settings file (no object data) as 0644 whatever the
        # umask; the 0700 folder above keeps others out of it.
        and path.suffix != ".vif"
    ]
    assert readable == []
