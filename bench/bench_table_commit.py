"""What a drop's Iceberg table commit costs, and how that grows with the table.

Usage: ``python bench/bench_table_commit.py [--drops 1000] [--files 4] [--every 100]
[--via writers|transaction]``.
Starts the embedded store, publishes ``--drops`` small format-v3 drops of ``--files`` files
each (data files, ``_manifest.json`` with their chain, ``_SUCCESS``), and commits each to the
table, timing every commit from one process: the first (which creates the table), then the
median and worst of each ``--every`` commits, with the current metadata file's size. A commit
of a drop the table has is timed too (the no-op of a recovered drop). The last line is one
JSON object.

``--via writers`` commits as the publisher does (:class:`DropTable`); ``--via transaction``
as pyiceberg's own API would (decision 0025): the current metadata file registered in an
in-memory SQL catalog, a ``fast_append`` in a ``Transaction``, through pyiceberg's Arrow
FileIO (which works against the store, without checksums), then the hint moved.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from manifest_exchange.local.stack import PARTNER_BUCKET, EmbeddedStack, StackPorts
from manifest_exchange.publish.drops import HIDDEN_MANIFEST, SUCCESS_MARKER, parquet_bytes
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    get_bytes,
    iter_objects,
    put_bytes,
    put_many,
)

AIRPORTS = ("NRT", "HND", "KIX", "OKA", "FUK", "NGO", "CTS", "TAK")


def _files(count: int) -> list[tuple[str, bytes, str]]:
    """(folder key, Parquet bytes, arrival airport) of one drop's files: 50 rows each."""
    rows = pa.table(
        {
            "record_id": [f"{i:032x}" for i in range(50)],
            "surname": ["BENCH"] * 50,
            "manifest_revision": pa.array([1] * 50, pa.int32()),
        }
    )
    data = parquet_bytes(rows)
    return [
        (f"arr_airport={AIRPORTS[i % 8]}/flight_date=2026-12-01", data, AIRPORTS[i % 8])
        for i in range(count)
    ]


def _publish(
    client: S3Client,
    root: S3Location,
    sequence: int,
    previous: tuple[str, str] | None,
    files: list[tuple[str, bytes, str]],
) -> tuple[dict[str, Any], str]:
    """Write one complete drop; its manifest and the manifest's SHA-256."""
    drop_id = f"20261201T{sequence:06d}Z-bench-0000"
    folder = S3Location(root.bucket, root.key(drop_id))
    entries: list[dict[str, Any]] = [
        {
            "key": f"{partition}/part-{i:05d}.parquet",
            "rows": 50,
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "arr_airport": airport,
            "flight_date": "2026-12-01",
        }
        for i, (partition, data, airport) in enumerate(files)
    ]
    put_many(
        client,
        folder.bucket,
        [(folder.key(e["key"]), data) for e, (_, data, _) in zip(entries, files, strict=True)],
    )
    manifest = {
        "drop_id": drop_id,
        "schema_version": "3",
        "sequence": sequence,
        "previous_drop_id": previous[0] if previous else None,
        "previous_manifest_sha256": previous[1] if previous else None,
        "published_at": dt.datetime.now(dt.UTC).isoformat(),
        "files": entries,
    }
    body = json.dumps(manifest).encode()
    put_bytes(client, folder.bucket, folder.key(HIDDEN_MANIFEST), body)
    put_bytes(client, folder.bucket, folder.key(SUCCESS_MARKER), b"{}")
    return manifest, hashlib.sha256(body).hexdigest()


def _commit_in_transaction(
    client: S3Client, properties: dict[str, str], table: S3Location, drop: Any
) -> None:
    """One drop through pyiceberg's catalog and transaction API (the alternative measured)."""
    from pyiceberg.catalog.sql import SqlCatalog

    catalog = SqlCatalog("bench", uri="sqlite:///:memory:", **properties)
    catalog.create_namespace("bench")
    hint = table.key("metadata", "version-hint.text")
    name = get_bytes(client, table.bucket, hint).decode()
    location = f"s3://{table.bucket}/{table.key('metadata', name)}.metadata.json"
    current = catalog.register_table(("bench", "drops"), location)
    transaction = current.transaction()
    with transaction.update_snapshot(snapshot_properties=drop.summary()).fast_append() as add:
        for file in drop.files:
            add.append_data_file(file.data_file())
    transaction.commit_transaction()
    written = current.metadata_location.rsplit("/", 1)[1].removesuffix(".metadata.json")
    put_bytes(client, table.bucket, hint, written.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drops", type=int, default=1000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--via", choices=["writers", "transaction"], default="writers")
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="mx-bench-")), StackPorts.free())
    stack.up()
    result: dict[str, Any] = {
        "benchmark": "table_commit",
        "via": args.via,
        "files_per_drop": args.files,
    }
    try:
        client = stack.client("pipeline")
        partner = S3Location(PARTNER_BUCKET, "bench/tw-jp")
        root = S3Location(PARTNER_BUCKET, partner.key("v3", "drops"))
        files = _files(args.files)
        started = time.perf_counter()
        # Imported as the publisher imports it, on the first v3 drop of a process.
        from manifest_exchange.publish.drop_table import (
            DropTable,
            TableDrop,
            files_schema,
            table_location,
        )

        result["import_s"] = round(time.perf_counter() - started, 3)
        table = DropTable(client, partner, "3")
        settings = stack.s3_settings("pipeline")
        properties = {
            "s3.endpoint": str(settings.endpoint_url),
            "s3.region": settings.region,
            "s3.access-key-id": str(settings.access_key_id),
            "s3.secret-access-key": str(settings.secret_access_key),
        }
        schema = files_schema([data for _, data, _ in files])
        previous: tuple[str, str] | None = None
        window: list[float] = []
        drop = None
        for sequence in range(1, args.drops + 1):
            manifest, sha256 = _publish(client, root, sequence, previous, files)
            folder = S3Location(root.bucket, root.key(manifest["drop_id"]))
            drop = TableDrop.from_manifest(manifest, sha256, schema, folder)
            started = time.perf_counter()
            if args.via == "transaction" and sequence > 1:
                _commit_in_transaction(client, properties, table.location, drop)
            else:
                table.commit(drop)
            elapsed = time.perf_counter() - started
            previous = (manifest["drop_id"], sha256)
            if sequence == 1:
                result["first_commit_s"] = round(elapsed, 3)
                continue
            window.append(elapsed)
            if sequence % args.every == 0:
                location = table_location(partner, "3")
                metadata = max(
                    (i for i in iter_objects(client, location) if i.key.endswith(".json")),
                    key=lambda info: info.key,
                )
                row = {
                    "median_s": round(statistics.median(window), 3),
                    "max_s": round(max(window), 3),
                    "metadata_kb": round(metadata.size / 1024),
                }
                result[f"commits_to_{sequence}"] = row
                print(f"commits {sequence - len(window) + 1}-{sequence}: {row}", flush=True)
                window = []
        assert drop is not None
        started = time.perf_counter()
        table.commit(drop)
        result["repeated_commit_s"] = round(time.perf_counter() - started, 3)
    finally:
        stack.down()
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
