"""Acknowledge one drop with stock boto3: write its receipt, never replacing one.

    python acknowledge_drop.py <the drop's manifest file as fetched> s3://<bucket>/<prefix>

The store is reached through the standard AWS variables (AWS_ENDPOINT_URL_S3,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION), with the partner's own keys.
"""

import datetime
import hashlib
import json
import sys
from pathlib import Path

import boto3
import botocore.exceptions


def acknowledge(manifest_bytes: bytes, receipts_url: str) -> bool:
    """Write the receipt of the drop whose manifest is ``manifest_bytes``; False if the drop
    was acknowledged before."""
    manifest = json.loads(manifest_bytes)
    receipt = {
        "drop_id": manifest["drop_id"],
        "schema_version": manifest["schema_version"],
        "sequence": manifest.get("sequence"),
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "received_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    bucket, _, prefix = receipts_url.removeprefix("s3://").partition("/")
    key = f"{prefix}/v{receipt['schema_version']}/{receipt['drop_id']}.json"
    try:
        boto3.client("s3").put_object(
            Bucket=bucket,
            Key=key,
            Body=json.dumps(receipt).encode("utf-8"),
            ContentType="application/json",
            IfNoneMatch="*",  # create only: a receipt is never replaced
        )
    except botocore.exceptions.ClientError as error:
        if error.response["Error"]["Code"] == "PreconditionFailed":
            return False
        raise
    return True


if __name__ == "__main__":
    manifest_file, receipts_url = sys.argv[1], sys.argv[2]
    written = acknowledge(Path(manifest_file).read_bytes(), receipts_url)
    print("acknowledged" if written else "already acknowledged")
