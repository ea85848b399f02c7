"""S3 access shared by every stage: locations, clients, listing and checksummed writes."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import random
import re
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import boto3
import botocore.exceptions
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.config import Config

from manifest_exchange.config import S3Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

__all__ = [
    "ArrowDownloader",
    "BotoDownloader",
    "Downloader",
    "ObjectInfo",
    "S3Client",
    "S3Location",
    "create_if_absent",
    "delete_keys",
    "delete_many",
    "exists",
    "get_bytes",
    "get_bytes_if_present",
    "get_many",
    "is_transient_error",
    "iter_objects",
    "make_client",
    "put_bytes",
    "put_many",
    "read_parquet",
    "sha256_b64",
]


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix, written ``s3://bucket/prefix``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        if not url.startswith("s3://"):
            raise ValueError(f"expected an s3://bucket/prefix URL, got {url!r}")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}")
        return cls(bucket=bucket, prefix=prefix.strip("/"))

    def key(self, *parts: str) -> str:
        """Join the prefix and ``parts`` into an object key."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: dt.datetime


def make_client(settings: S3Settings, *, max_pool_connections: int = 32) -> S3Client:
    """Build an S3 client for ``settings`` (SigV4, path-style, standard retries)."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"mode": "standard", "max_attempts": 5},
        max_pool_connections=max_pool_connections,
        # Checksums are asked for explicitly on the writes that need them.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client: S3Client = boto3.client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        aws_access_key_id=settings.access_key_id,
        aws_secret_access_key=settings.secret_access_key,
        config=config,
    )
    return client


def sha256_b64(data: bytes) -> str:
    """The base64 SHA-256 digest S3 expects in ``x-amz-checksum-sha256``."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def put_bytes(
    client: S3Client,
    bucket: str,
    key: str,
    data: bytes,
    *,
    if_none_match: bool = False,
    content_type: str = "application/octet-stream",
) -> None:
    """Upload ``data`` with a SHA-256 checksum the store verifies on receipt, encrypted at rest
    by the store (SSE-S3): manifests, quarantine and drops all hold personal data.

    With ``if_none_match`` the write is a conditional create: it fails with
    ``PreconditionFailed`` (412) if the key already exists.
    """
    extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_none_match else {}
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ChecksumSHA256=sha256_b64(data),
        ContentType=content_type,
        ServerSideEncryption="AES256",
        **extra,
    )


def create_if_absent(
    client: S3Client,
    bucket: str,
    key: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
) -> bool:
    """Conditionally create ``key``; False if it already exists (the store answered 412)."""
    try:
        put_bytes(client, bucket, key, data, if_none_match=True, content_type=content_type)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # 409 is what S3 answers when a concurrent conditional write to the same key wins.
        if code in {"PreconditionFailed", "ConditionalRequestConflict"} or status in {409, 412}:
            return False
        raise
    return True


def exists(client: S3Client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
    return True


def delete_keys(client: S3Client, bucket: str, keys: list[str]) -> None:
    """Delete ``keys`` one request each (SeaweedFS and S3 both accept plain deletes)."""
    for key in keys:
        client.delete_object(Bucket=bucket, Key=key)


def delete_many(client: S3Client, bucket: str, keys: list[str], *, batch: int = 1000) -> None:
    """Delete ``keys`` with multi-object deletes, 1,000 a request; fail if any is refused."""
    for start in range(0, len(keys), batch):
        chunk = keys[start : start + batch]
        answer = client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
        )
        refused = answer.get("Errors", [])
        if refused:
            first = refused[0]
            raise RuntimeError(
                f"{len(refused)} of {len(chunk)} deletes refused in {bucket}, e.g. "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )


def json_bytes(body: Mapping[str, object]) -> bytes:
    """A state record as the pipeline writes it: JSON with sorted keys, times as strings."""
    return json.dumps(body, sort_keys=True, default=str).encode("utf-8")


def get_bytes(client: S3Client, bucket: str, key: str) -> bytes:
    body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def get_bytes_if_present(client: S3Client, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None where there is no such key."""
    try:
        return get_bytes(client, bucket, key)
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise


def read_parquet(data: bytes, *, columns: list[str] | None = None) -> pa.Table:
    """A Parquet object's bytes (from :func:`get_bytes` or :func:`get_many`) as a table.

    Use this, not ``pq.read_table``, for Parquet held in memory. ``read_table`` goes through
    Arrow's dataset scanner, which finishes tearing the scan down on its own threads after it
    has returned (apache/arrow#33975, #34314); the last of that releases the Python object the
    bytes are read from (a ``BytesIO`` or the ``bytes`` themselves), which takes the GIL. When
    the process exits right after such a read (``audit`` prints its report and ends), the
    interpreter is already finalizing: Python ends the Arrow thread inside a C++ destructor
    and the process aborts, "terminate called without an active exception" (exit 134), in a
    third of the runs. ``ParquetFile`` reads before it returns and leaves nothing running.
    """
    table: pa.Table = pq.ParquetFile(pa.BufferReader(data)).read(columns=columns)
    return table


def iter_objects(
    client: S3Client, location: S3Location, *, start_after: str | None = None
) -> Iterator[ObjectInfo]:
    """List every object under ``location`` (1,000 keys a request), in key order; with
    ``start_after``, only the keys that sort after it."""
    prefix = f"{location.prefix}/" if location.prefix else ""
    paginator = client.get_paginator("list_objects_v2")
    pages = (
        paginator.paginate(Bucket=location.bucket, Prefix=prefix, StartAfter=start_after)
        if start_after
        else paginator.paginate(Bucket=location.bucket, Prefix=prefix)
    )
    for page in pages:
        for item in page.get("Contents", []):
            yield ObjectInfo(
                key=item["Key"],
                size=item["Size"],
                etag=item["ETag"].strip('"'),
                last_modified=item["LastModified"],
            )


def get_many(
    client: S3Client, bucket: str, keys: list[str], *, concurrency: int = 16
) -> list[bytes]:
    """Download ``keys`` concurrently, returning bodies in the order of ``keys``."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda k: get_bytes(client, bucket, k), keys))


class Downloader(Protocol):
    """Downloads many objects at once, returning bodies in the order of the keys."""

    def get_many(self, bucket: str, keys: list[str]) -> list[bytes]: ...


@dataclass(frozen=True)
class BotoDownloader:
    """:func:`get_many` through a boto3 client (for callers that hold only a client)."""

    client: S3Client
    concurrency: int = 16

    def get_many(self, bucket: str, keys: list[str]) -> list[bytes]:
        return get_many(self.client, bucket, keys, concurrency=self.concurrency)


# AWS C++ SDK error names (as Arrow reports them) worth retrying, like _TRANSIENT_CODES.
_TRANSIENT_AWS_ERRORS = frozenset(
    {
        "INTERNAL_FAILURE",
        "NETWORK_CONNECTION",
        "REQUEST_TIMEOUT",
        "REQUEST_TIME_TOO_SKEWED",
        "SERVICE_UNAVAILABLE",
        "SLOW_DOWN",
        "THROTTLING",
    }
)
_GET_ATTEMPTS = 8
_GET_PAUSE_S = 0.05
_GET_MAX_PAUSE_S = 1.0
_AWS_ERROR = re.compile(r"AWS Error (?P<name>[A-Z_]+)(?: \(HTTP status (?P<status>\d{3})\))?")


class ArrowDownloader:
    """Downloads objects through Arrow's S3 file system (the AWS C++ SDK).

    A run reads every source object once, thousands of small GETs, and the C++ SDK spends less
    CPU on each than botocore, outside the GIL (decision 0005). Writes stay on boto3: they need
    checksums and conditional creates that Arrow does not expose.

    A failure the store or network caused is raised as :class:`ConnectionError` (retried by
    the flow, see :func:`is_transient_error`); a missing object as ``FileNotFoundError``.
    """

    def __init__(self, settings: S3Settings, *, concurrency: int = 16) -> None:
        options: dict[str, Any] = {
            "region": settings.region,
            "access_key": settings.access_key_id,
            "secret_key": settings.secret_access_key,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=5),
        }
        if settings.endpoint_url:
            endpoint = urlsplit(settings.endpoint_url)
            options["endpoint_override"] = endpoint.netloc
            options["scheme"] = endpoint.scheme or "https"
        self.filesystem = pafs.S3FileSystem(**options)
        self.concurrency = concurrency

    def get_many(self, bucket: str, keys: list[str]) -> list[bytes]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda key: self.get(bucket, key), keys))

    def get(self, bucket: str, key: str) -> bytes:
        """One object's bytes, retried here when the store answered with an error.

        The SDK retries failed connections itself but, here, not an error answer: a ``503``
        to a HEAD has no body to name it (``UNKNOWN``), and an error document too large for
        the buffer Arrow sized for the object ends as ``INTERNAL_FAILURE`` ("Failed to flush
        response stream", known from other users of the SDK). So those get a few more tries
        here, with growing jittered pauses, before they reach the flow's task retries.
        """
        for attempt in range(1, _GET_ATTEMPTS + 1):
            try:
                with self.filesystem.open_input_stream(f"{bucket}/{key}") as stream:
                    body: bytes = stream.read()
                    return body
            except (FileNotFoundError, PermissionError):
                raise
            except OSError as error:
                name = _transient_aws_error(str(error))
                if name is None:
                    raise
                if name == "NETWORK_CONNECTION" or attempt == _GET_ATTEMPTS:
                    raise ConnectionError(
                        f"reading s3://{bucket}/{key} failed ({attempt} tries): {error}"
                    ) from error
                pause = min(_GET_MAX_PAUSE_S, _GET_PAUSE_S * 2 ** (attempt - 1))
                time.sleep(pause * (0.5 + random.random()))
        raise AssertionError("unreachable")  # the loop returns or raises


def _transient_aws_error(message: str) -> str | None:
    """The AWS error name in an Arrow error message if it is worth retrying, else None."""
    match = _AWS_ERROR.search(message)
    if match is None:
        return None
    transient = match["name"] in _TRANSIENT_AWS_ERRORS or int(match["status"] or 0) >= 500
    return match["name"] if transient else None


def put_many(
    client: S3Client,
    bucket: str,
    items: list[tuple[str, bytes]],
    *,
    concurrency: int = 16,
    content_type: str = "application/octet-stream",
) -> None:
    """Upload ``(key, data)`` pairs concurrently with checksums."""

    def put(item: tuple[str, bytes]) -> None:
        put_bytes(client, bucket, item[0], item[1], content_type=content_type)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(put, items))


# Error codes S3-compatible stores answer when they are overloaded or briefly unavailable.
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
    }
)


def is_transient_error(error: BaseException) -> bool:
    """True if ``error`` (or what caused it) is a store or network hiccup worth retrying.

    Connection failures, timeouts, 5xx answers and throttling are transient; anything else
    (access denied, a missing key, bad data, a bug) fails the same way on every attempt.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(
            current,
            botocore.exceptions.ConnectionError
            | botocore.exceptions.HTTPClientError
            | ConnectionError
            | TimeoutError,
        ):
            return True
        if isinstance(current, botocore.exceptions.ClientError):
            code = current.response.get("Error", {}).get("Code", "")
            status = current.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            return code in _TRANSIENT_CODES or int(status) >= 500
        current = current.__cause__ or current.__context__
    return False
