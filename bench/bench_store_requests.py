"""How many small S3 requests a second the pipeline's client gets from the embedded store.

Usage: ``python bench/bench_store_requests.py [--requests 2000] [--threads 16]``.
The ledger used to make two small writes per source object (a claim and a done marker); it now
writes one claim record per run and one outcome sheet per batch, but this rate still bounds the
record index and the drops' small files. It times, from one process, HEAD, plain PUT and conditional
PUT (If-None-Match) of small bodies, with the client's CPU per request, then HEAD from two
processes at once: if two processes together go faster than one, the limit is the client
(botocore under the GIL), not the store. It also times GETs of manifest-sized objects (13 KB)
with boto3 and with Arrow's S3 file system (the run's source reads). The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from manifest_exchange.config import S3Settings
from manifest_exchange.local.stack import STATE_BUCKET, EmbeddedStack, StackPorts
from manifest_exchange.storage.s3 import (
    ArrowDownloader,
    create_if_absent,
    get_bytes,
    make_client,
    put_bytes,
)

BODY = b'{"run_id": "bench", "travellers": {"published": 10, "duplicate": 2}}' * 3
# About one flight's PAXLST message.
MANIFEST = b"NAD+FL+++DOE:JOHN'ATT+2++M'DTM+329:800101'NAT+2+USA'DOC+P:110:111+X1234567'" * 170


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rate(call: Callable[[int], object], requests: int, threads: int) -> tuple[float, float]:
    """Requests per second and client CPU milliseconds per request."""
    cpu, started = _cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(call, range(requests)))
    wall = time.perf_counter() - started
    return requests / wall, (_cpu_s() - cpu) / requests * 1000


def _heads(job: tuple[S3Settings, int, int]) -> float:
    settings, requests, threads = job
    client = make_client(settings)
    client.head_bucket(Bucket=STATE_BUCKET)  # connect before timing
    rate, _ = _rate(lambda _: client.head_bucket(Bucket=STATE_BUCKET), requests, threads)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="mx-bench-")), StackPorts.free())
    stack.up()
    try:
        settings = stack.s3_settings("pipeline")
        client = make_client(settings)
        calls: dict[str, Callable[[int], object]] = {
            "head": lambda _: client.head_bucket(Bucket=STATE_BUCKET),
            "put": lambda i: put_bytes(client, STATE_BUCKET, f"bench/put/{i:07d}.json", BODY),
            "conditional_put": lambda i: create_if_absent(
                client, STATE_BUCKET, f"bench/create/{i:07d}.json", BODY
            ),
        }
        result: dict[str, object] = {"benchmark": "store_requests", "threads": args.threads}
        for i in range(args.requests):
            put_bytes(client, STATE_BUCKET, f"bench/get/{i:07d}.edi", MANIFEST)
        arrow = ArrowDownloader(settings)
        calls["get_boto3"] = lambda i: get_bytes(client, STATE_BUCKET, f"bench/get/{i:07d}.edi")
        calls["get_arrow"] = lambda i: arrow.get(STATE_BUCKET, f"bench/get/{i:07d}.edi")
        for name, call in calls.items():
            rate, cpu_ms = _rate(call, args.requests, args.threads)
            result[f"{name}_per_s"] = round(rate)
            result[f"{name}_client_cpu_ms"] = round(cpu_ms, 2)
        jobs = [(settings, args.requests, args.threads)] * 2
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            rates = pool.map(_heads, jobs)
        result["head_two_processes_per_s"] = round(sum(rates))
    finally:
        stack.down()
    for key, value in result.items():
        print(f"{key}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
