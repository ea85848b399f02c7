"""Every identity x bucket x action of the table in ``docs/operations.md``, tried for real.

The table is the documentation and the specification at once: each cell is tried against the
session's SeaweedFS with that identity's own keys, ``yes`` must get through and ``no`` must be
refused with ``AccessDenied``. Requests that change bucket settings carry a body the store
rejects after it has authorized the caller (or are undone), so the shared store is unchanged.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import botocore.exceptions
import pytest

from manifest_exchange.local.stack import BUCKETS, IDENTITY_ACTIONS, EmbeddedStack
from manifest_exchange.storage.s3 import S3Client

pytestmark = pytest.mark.integration

OPERATIONS_DOC = Path(__file__).parents[2] / "docs" / "operations.md"
SECTION = "## Identities and permissions"
ACCESS_DENIED = "AccessDenied"


def _documented_matrix() -> dict[tuple[str, str], dict[str, bool]]:
    """``(identity, bucket) -> {action: allowed}`` from the first table of the section."""
    text = OPERATIONS_DOC.read_text()
    section = text[text.index(SECTION) :]
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]
    assert header[:2] == ["identity", "bucket"], header
    matrix: dict[tuple[str, str], dict[str, bool]] = {}
    for row in body:
        assert set(row[2:]) <= {"yes", "no"}, row
        matrix[(row[0], row[1])] = dict(zip(header[2:], (c == "yes" for c in row[2:]), strict=True))
    return matrix


MATRIX = _documented_matrix()
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
