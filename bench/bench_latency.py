"""Landing-to-partner latency with the every-minute deployment running, as in production.

Usage: ``make bench-latency`` or ``python bench/bench_latency.py --manifests 24 --spacing 7``.

Starts what ``make ui`` starts (store, Prefect server, process worker, deployments) in a scratch
folder on free ports, with the exchange deployment on its schedule (60 s by default). Manifests
are uploaded one at a time, ``spacing`` seconds apart, so they land at every point of the
schedule's cycle. For each, the latency is from its ``LastModified`` in the source bucket to
the ``LastModified`` of the ``_SUCCESS`` marker of the drop the ledger says it went into: the
moment the partner can read it. Prints a table and, last, one JSON line; also writes a
markdown table to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from manifest_exchange.local.generate.paxlst import GeneratorOptions, generate_day
from manifest_exchange.local.prefect_server import LocalPrefect, Locations, free_port
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
    StackPorts,
)
from manifest_exchange.paths import PROJECT_ROOT
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.storage.ledger import Ledger
from manifest_exchange.storage.s3 import S3Location, put_bytes

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifests", type=int, default=24)
    parser.add_argument("--spacing", type=float, default=7.0, help="seconds between uploads")
    parser.add_argument("--interval", type=int, default=60, help="exchange schedule, seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mx-latency-"))
    stack = EmbeddedStack(home, StackPorts.free())
    local = LocalPrefect(home, PROJECT_ROOT, port=free_port(), serve_ui=False)
    locations = Locations(
        source=f"s3://{SOURCE_BUCKET}/paxlst",
        state=f"s3://{STATE_BUCKET}/tw-jp",
        partner=f"s3://{PARTNER_BUCKET}/tw-jp",
    )
    corpus = generate_day(
        GeneratorOptions(dt.date(2026, 12, 1), flights=40, seed=7, defect_rate=0.02)
    )
    objects = corpus.objects[: args.manifests]
    started = time.perf_counter()
    local.up(stack, locations=locations, interval_s=args.interval)
    setup_s = time.perf_counter() - started
    try:
        loader, pipeline = stack.client("loader"), stack.client("pipeline")
        source = S3Location.parse(locations.source)
        landed: dict[str, dt.datetime] = {}
        for obj in objects:
            key = source.key(obj.key.split("/", 1)[1])
            put_bytes(loader, SOURCE_BUCKET, key, obj.data)
            landed[key] = pipeline.head_object(Bucket=SOURCE_BUCKET, Key=key)["LastModified"]
            time.sleep(args.spacing)
        latencies = wait_for_drops(stack, locations, landed, args.timeout)
    finally:
        local.down()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    report(latencies, len(objects), args, setup_s)


def wait_for_drops(
    stack: EmbeddedStack, locations: Locations, landed: dict[str, dt.datetime], timeout: float
) -> dict[str, float]:
    """Seconds from landing to ``_SUCCESS`` per manifest (those that reached a drop)."""
    pipeline = stack.client("pipeline")
    state = S3Location.parse(locations.state)
    root = drops_root(S3Location.parse(locations.partner))
    latencies: dict[str, float] = {}
    pending = dict(landed)
    deadline = time.monotonic() + timeout
    ledger = Ledger(pipeline, state, claim_timeout_s=0)
    folders = {key.rpartition("/")[0] for key in landed}
    while pending and time.monotonic() < deadline:
        outcomes = {
            key: outcome
            for folder in folders
            for (key, _), outcome in ledger.outcomes(S3Location(SOURCE_BUCKET, folder)).items()
        }
        for key in list(pending):
            if key not in outcomes:
                continue
            drop_id = outcomes[key].body["drop_id"]
            if drop_id is not None:
                marker = pipeline.head_object(
                    Bucket=root.bucket, Key=root.key(drop_id, SUCCESS_MARKER)
                )
                latencies[key] = (marker["LastModified"] - pending[key]).total_seconds()
            del pending[key]
        time.sleep(1)
    if pending:
        raise SystemExit(f"{len(pending)} manifests did not reach a drop in {timeout:.0f}s")
    return latencies


def report(
    latencies: dict[str, float], uploaded: int, args: argparse.Namespace, setup_s: float
) -> None:
    values = list(latencies.values())
    figures = {
        "benchmark": "landing_to_success_latency",
        "manifests_uploaded": uploaded,
        "manifests_in_drops": len(values),
        "schedule_interval_s": args.interval,
        "upload_spacing_s": args.spacing,
        "median_s": round(statistics.median(values), 1),
        "p95_s": round(percentile(values, 0.95), 1),
        "min_s": round(min(values), 1),
        "max_s": round(max(values), 1),
        "setup_s": round(setup_s, 1),
        "cores": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    lines = [
        "| manifests | in drops | interval s | median s | p95 s | min s | max s |",
        "|---|---|---|---|---|---|---|",
        f"| {uploaded} | {len(values)} | {args.interval} | {figures['median_s']} "
        f"| {figures['p95_s']} | {figures['min_s']} | {figures['max_s']} |",
        "",
        f"{figures['cores']} cores, {figures['machine']}, Python {figures['python']}; "
        f"manifests uploaded {args.spacing:g} s apart.",
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"latency-{stamp}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
