"""Every identity x bucket x action of the tables in ``docs/operations.md``, tried for real.

The tables are the documentation and the specification at once: each cell is tried against the
session's SeaweedFS with that identity's own keys, ``yes`` must get through and ``no`` must be
refused with ``AccessDenied``. Requests that change bucket settings carry a body the store
rejects after it has authorized the caller (or are undone), so the shared store is unchanged.
The second table does the same for receipts: only the partner creates them, nobody replaces or
deletes one, the pipeline reads them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import botocore.exceptions
import pytest

from manifest_exchange.local.stack import (
    BUCKETS,
    IDENTITY_ACTIONS,
    RECEIPTS_BUCKETS,
    EmbeddedStack,
)
from manifest_exchange.publish.receipts import Receipt, read_receipts, write_receipt
from manifest_exchange.storage.s3 import S3Client, S3Location

pytestmark = pytest.mark.integration

OPERATIONS_DOC = Path(__file__).parents[2] / "docs" / "operations.md"
SECTION = "## Identities and permissions"
RECEIPTS_SECTION = "### Receipts"
ACCESS_DENIED = "AccessDenied"
PRECONDITION_FAILED = "PreconditionFailed"


def _documented_matrix(heading: str) -> dict[tuple[str, str], dict[str, bool]]:
    """``(identity, bucket) -> {action: allowed}`` from the first table after ``heading``."""
    text = OPERATIONS_DOC.read_text()
    lines = text[text.index(heading) :].splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith("|"))
    table = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        table.append(line)
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")] for line in table
    ]
    header, body = rows[0], rows[2:]
    assert header[:2] == ["identity", "bucket"], header
    matrix: dict[tuple[str, str], dict[str, bool]] = {}
    for row in body:
        assert set(row[2:]) <= {"yes", "no"}, row
        matrix[(row[0], row[1])] = dict(zip(header[2:], (c == "yes" for c in row[2:]), strict=True))
    return matrix


MATRIX = _documented_matrix(SECTION)
RECEIPTS_MATRIX = _documented_matrix(RECEIPTS_SECTION)
RUN = secrets.token_hex(4)


def _outcome(action: Callable[[], object]) -> bool:
    """True if the store let the request through (any answer but AccessDenied)."""
    try:
        action()
    except botocore.exceptions.ClientError as exc:
        return str(exc.response["Error"]["Code"]) != ACCESS_DENIED
    return True


def _multi_delete(client: S3Client, bucket: str, key: str) -> None:
    # DeleteObjects answers 200 and reports a refusal per key.
    answer = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    for error in answer.get("Errors", []):
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": error["Code"], "Message": error.get("Message", "")}},
            "DeleteObjects",
        )


def _put_lifecycle(client: S3Client, admin: S3Client, bucket: str) -> None:
    # The store takes any lifecycle document, so an allowed caller's (disabled) rule is undone.
    client.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "access-matrix",
                    "Status": "Disabled",
                    "Filter": {"Prefix": f"access-matrix/{RUN}/never/"},
                    "Expiration": {"Days": 1},
                }
            ]
        },
    )
    admin.delete_bucket_lifecycle(Bucket=bucket)


def _try_all(client: S3Client, admin: S3Client, bucket: str) -> dict[str, bool]:
    key = f"access-matrix/{RUN}/{secrets.token_hex(4)}"
    actions: dict[str, Callable[[], object]] = {
        "get": lambda: client.get_object(Bucket=bucket, Key=key),
        "list": lambda: client.list_objects_v2(Bucket=bucket, Prefix=key),
        "put": lambda: client.put_object(Bucket=bucket, Key=key, Body=b"matrix"),
        # Deleting a key that is not there: allowed answers 204, refused answers 403.
        "delete": lambda: client.delete_object(Bucket=bucket, Key=f"{key}-absent"),
        "multi-delete": lambda: _multi_delete(client, bucket, f"{key}-absent"),
        "get-policy": lambda: client.get_bucket_policy(Bucket=bucket),
        # Malformed on purpose: the store authorizes before it reads the body.
        "put-policy": lambda: client.put_bucket_policy(Bucket=bucket, Policy="{not a policy"),
        "put-versioning": lambda: client.put_bucket_versioning(
            Bucket=bucket,
            VersioningConfiguration=cast(Any, {"Status": "NotAStatus"}),
        ),
        "put-lifecycle": lambda: _put_lifecycle(client, admin, bucket),
        "put-object-lock": lambda: client.put_object_lock_configuration(
            Bucket=bucket,
            ObjectLockConfiguration=cast(Any, {"ObjectLockEnabled": "NotAState"}),
        ),
    }
    return {name: _outcome(action) for name, action in actions.items()}


def test_the_table_covers_every_identity_and_bucket() -> None:
    assert set(MATRIX) == {(i, b) for i in IDENTITY_ACTIONS for b in BUCKETS}


@pytest.mark.parametrize(("identity", "bucket"), sorted(MATRIX))
def test_identity_may_do_exactly_what_the_table_says(
    embedded_stack: EmbeddedStack, identity: str, bucket: str
) -> None:
    tried = _try_all(embedded_stack.client(identity), embedded_stack.client("admin"), bucket)
    assert tried == MATRIX[(identity, bucket)]


# Receipts of this module, in a folder of their own under each bucket's receipts prefix, so no
# reconciliation of a real agreement location ever lists them.
def _receipts_location(bucket: str) -> S3Location:
    prefix = RECEIPTS_BUCKETS[bucket].prefixes[0]
    return S3Location(bucket, f"{prefix}/access-matrix-{RUN}")


def _receipt(drop_id: str) -> Receipt:
    manifest = f'{{"drop_id": "{drop_id}", "schema_version": "1", "sequence": 1}}'.encode()
    return Receipt.for_manifest(manifest, dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def existing_receipts(embedded_stack: EmbeddedStack) -> dict[str, str]:
    """Bucket -> the key of a receipt its partner created."""
    keys = {}
    for bucket, receipts in RECEIPTS_BUCKETS.items():
        location = _receipts_location(bucket)
        writer = embedded_stack.client(receipts.writer)
        assert write_receipt(writer, location, _receipt("20261201T000000Z-existing-0000"))
        keys[bucket] = location.key("v1", "20261201T000000Z-existing-0000.json")
    return keys


def _refused(action: Callable[[], object]) -> bool:
    """True if the store refused the request for want of permission, or because a conditional
    create found the receipt there; any other failure is the test's own."""
    try:
        action()
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response["Error"]["Code"])
        if code in {ACCESS_DENIED, PRECONDITION_FAILED}:
            return True
        raise
    return False


def _try_receipts(client: S3Client, bucket: str, existing: str) -> dict[str, bool]:
    location = _receipts_location(bucket)
    fresh = _receipt(f"20261201T000000Z-{secrets.token_hex(6)}-0000")
    actions: dict[str, Callable[[], object]] = {
        "create": lambda: client.put_object(
            Bucket=bucket,
            Key=location.key("v1", f"{fresh.drop_id}.json"),
            Body=fresh.to_json(),
            IfNoneMatch="*",
        ),
        "create-over": lambda: client.put_object(
            Bucket=bucket, Key=existing, Body=b"{}", IfNoneMatch="*"
        ),
        "read": lambda: client.get_object(Bucket=bucket, Key=existing),
        "list": lambda: client.list_object_versions(Bucket=bucket, Prefix=existing),
        "delete": lambda: client.delete_object(Bucket=bucket, Key=existing),
    }
    return {name: not _refused(action) for name, action in actions.items()}


def test_the_receipts_table_covers_every_identity_and_receipts_bucket() -> None:
    assert set(RECEIPTS_MATRIX) == {(i, b) for i in IDENTITY_ACTIONS for b in RECEIPTS_BUCKETS}


@pytest.mark.parametrize(("identity", "bucket"), sorted(RECEIPTS_MATRIX))
def test_identity_may_do_exactly_what_the_receipts_table_says(
    embedded_stack: EmbeddedStack,
    existing_receipts: dict[str, str],
    identity: str,
    bucket: str,
) -> None:
    tried = _try_receipts(embedded_stack.client(identity), bucket, existing_receipts[bucket])
    assert tried == RECEIPTS_MATRIX[(identity, bucket)]


def test_a_receipt_written_over_keeps_its_first_version(embedded_stack: EmbeddedStack) -> None:
    """The store takes a partner's plain PUT over a receipt as a new version (its policies
    cannot ask for If-None-Match); the pipeline still reads the receipt as first written."""
    bucket = "partner-receipts"
    location = _receipts_location(bucket)
    partner = embedded_stack.client(RECEIPTS_BUCKETS[bucket].writer)
    first = _receipt("20261201T000000Z-overwritten-0000")
    assert write_receipt(partner, location, first)
    assert not write_receipt(partner, location, first)
    key = location.key("v1", f"{first.drop_id}.json")
    partner.put_object(Bucket=bucket, Key=key, Body=b'{"drop_id": "something else"}')

    stored = read_receipts(embedded_stack.client("pipeline"), location, "1")

    assert stored[first.drop_id].receipt == first
    assert stored[first.drop_id].versions == 2
