"""pyiceberg's file access over the pipeline's S3 functions, on the real store."""

from __future__ import annotations

import uuid

import pytest

from manifest_exchange.local.stack import PARTNER_BUCKET, EmbeddedStack
from manifest_exchange.storage.table_io import StoreFileIO

pytestmark = pytest.mark.integration


@pytest.fixture
def folder() -> str:
    return f"s3://{PARTNER_BUCKET}/t{uuid.uuid4().hex[:10]}/v3/table/metadata"


def test_a_written_file_is_checksummed_encrypted_and_reads_back(
    embedded_stack: EmbeddedStack, folder: str
) -> None:
    io = StoreFileIO(embedded_stack.client("pipeline"))
    output = io.new_output(f"{folder}/00000-a.metadata.json")

    with output.create() as stream:
        stream.write(b'{"format-version": ')
        stream.write(b"2}")

    assert len(output) == 21
    with io.new_input(output.location).open() as stream:
        assert stream.read() == b'{"format-version": 2}'
    bucket, key = output.location.removeprefix("s3://").split("/", 1)
    head = embedded_stack.client("pipeline").head_object(
        Bucket=bucket, Key=key, ChecksumMode="ENABLED"
    )
    assert head["ServerSideEncryption"] == "AES256"
    assert head["ChecksumSHA256"]
    assert head["ContentType"] == "application/json"


def _fail_halfway(io: StoreFileIO, location: str) -> None:
    with io.new_output(location).create() as stream:
        stream.write(b"half a manifest")
        raise RuntimeError("half written")


def test_a_file_is_not_created_over_another_and_a_failed_write_leaves_nothing(
    embedded_stack: EmbeddedStack, folder: str
) -> None:
    io = StoreFileIO(embedded_stack.client("pipeline"))
    location = f"{folder}/00001-b.metadata.json"
    with io.new_output(location).create() as stream:
        stream.write(b"first")

    with pytest.raises(FileExistsError), io.new_output(location).create() as stream:
        stream.write(b"second")
    with pytest.raises(RuntimeError, match="half"):
        _fail_halfway(io, f"{folder}/m.avro")

    with io.new_input(location).open() as stream:
        assert stream.read() == b"first"
    assert not io.new_input(f"{folder}/m.avro").exists()
    with pytest.raises(FileNotFoundError):
        io.new_input(f"{folder}/missing.avro").open()
    with pytest.raises(PermissionError):
        io.delete(location)  # nothing published is ever deleted
