"""pyiceberg's file access through the project's own S3 functions.

pyiceberg writes a table's metadata, manifest lists and manifests through a ``FileIO``. Its
Arrow-based one works against the store but sends no SHA-256 checksum (SSE-S3 then comes only
from the bucket's default), and its fsspec one needs s3fs, which the project does not install;
:class:`StoreFileIO` writes every object with :func:`.s3.put_bytes` instead, like every other
upload the pipeline makes, and creates a file pyiceberg asks not to overwrite conditionally
(If-None-Match). It is handed to pyiceberg's writers directly, so it takes the pipeline's own
client rather than pyiceberg's string properties.
"""

from __future__ import annotations

import io
from types import TracebackType

import botocore.exceptions
from pyiceberg.io import FileIO, InputFile, InputStream, OutputFile, OutputStream

from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    create_if_absent,
    get_bytes_if_present,
    put_bytes,
)


class StoreFileIO(FileIO):
    """A pyiceberg ``FileIO`` over the pipeline's S3 functions (checksums, SSE-S3)."""

    def __init__(self, client: S3Client) -> None:
        super().__init__()
        self.client = client

    def new_input(self, location: str) -> InputFile:
        return _StoreInputFile(self.client, location)

    def new_output(self, location: str) -> OutputFile:
        return _StoreOutputFile(self.client, location)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        # Nothing published is ever deleted, and the partner bucket refuses it anyway. A
        # failed commit leaves files no metadata names; readers never see them.
        raise PermissionError(f"not deleting {_url(location)}: published objects stay")


def _url(location: str | InputFile | OutputFile) -> str:
    return location if isinstance(location, str) else location.location


def _size(client: S3Client, location: str) -> int | None:
    where = S3Location.parse(location)
    try:
        head = client.head_object(Bucket=where.bucket, Key=where.prefix)
    except botocore.exceptions.ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return None
        raise
    return int(head["ContentLength"])


class _StoreInputFile(InputFile):
    def __init__(self, client: S3Client, location: str) -> None:
        super().__init__(location)
        self.client = client

    def __len__(self) -> int:
        size = _size(self.client, self.location)
        if size is None:
            raise FileNotFoundError(self.location)
        return size

    def exists(self) -> bool:
        return _size(self.client, self.location) is not None

    def open(self, seekable: bool = True) -> InputStream:
        # Metadata objects are small (kilobytes to a few megabytes): read whole, then seek.
        where = S3Location.parse(self.location)
        data = get_bytes_if_present(self.client, where.bucket, where.prefix)
        if data is None:
            raise FileNotFoundError(self.location)
        return io.BytesIO(data)


class _StoreOutputFile(OutputFile):
    def __init__(self, client: S3Client, location: str) -> None:
        super().__init__(location)
        self.client = client
        self.written: int | None = None

    def __len__(self) -> int:
        if self.written is not None:
            return self.written
        size = _size(self.client, self.location)
        if size is None:
            raise FileNotFoundError(self.location)
        return size

    def exists(self) -> bool:
        return _size(self.client, self.location) is not None

    @property
    def content_type(self) -> str:
        if self.location.endswith(".json"):
            return "application/json"
        return "application/octet-stream"  # Avro has no registered media type

    def to_input_file(self) -> InputFile:
        return _StoreInputFile(self.client, self.location)

    def create(self, overwrite: bool = False) -> OutputStream:
        return _Upload(self, overwrite)

    def upload(self, data: bytes, overwrite: bool) -> None:
        where = S3Location.parse(self.location)
        if overwrite:
            put_bytes(self.client, where.bucket, where.prefix, data, content_type=self.content_type)
        elif not create_if_absent(
            self.client, where.bucket, where.prefix, data, content_type=self.content_type
        ):
            raise FileExistsError(self.location)
        self.written = len(data)


class _Upload:
    """Collects what pyiceberg writes and uploads it in one checksummed request when closed
    (an ``io.BytesIO`` subclass would upload from its finalizer too); a ``with`` block that
    fails uploads nothing."""

    def __init__(self, target: _StoreOutputFile, overwrite: bool) -> None:
        self.buffer = io.BytesIO()
        self.target = target
        self.overwrite = overwrite

    def write(self, data: bytes) -> int:
        return self.buffer.write(data)

    def tell(self) -> int:
        return self.buffer.tell()

    def close(self) -> None:
        if not self.buffer.closed:
            self.target.upload(self.buffer.getvalue(), self.overwrite)
            self.buffer.close()

    def __enter__(self) -> _Upload:
        return self

    def __exit__(
        self,
        exctype: type[BaseException] | None,
        excinst: BaseException | None,
        exctb: TracebackType | None,
    ) -> None:
        if exctype is None:
            self.close()
        else:
            self.buffer.close()
