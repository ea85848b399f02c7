"""Landing-to-partner latency as ``make ui`` runs the exchange: the every-minute schedule alone,
then with the landing listener.

Usage: ``make bench-latency`` or ``python bench/bench_latency.py --trickle-s 180``.

Starts what ``make ui`` starts (store, Prefect server, process worker, deployments) in a scratch
folder on free ports. Three scenarios, each on its own flight date:

1. **schedule**: the listener off, the exchange on its every-minute schedule; manifests one at
   a time, ``--spacing`` seconds apart, so they land at every point of the cycle;
2. **trickle**: the listener started (the schedule stays on, as in production); one manifest
   every 1-2 s for ``--trickle-s`` seconds;
3. **burst**: ``--burst`` manifests within 10 s.

For each manifest, the latency is from the moment its upload returned to the moment the store
recorded the ``_SUCCESS`` marker of the drop the ledger says it went into (the partner can
read it from then): the second is taken from the filer's change log, in nanoseconds, on the
same clock (S3's ``LastModified`` has whole seconds only). Where the seconds of the listener's
runs go comes from their run reports (stage timings). Prints tables and, last, one JSON line;
writes the tables to ``bench/results/latency-<time>.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from manifest_exchange.ingest.landings import FilerChangeLog
from manifest_exchange.local.generate.paxlst import GeneratedObject, GeneratorOptions, generate_day
from manifest_exchange.local.prefect_server import (
    LocalPrefect,
    Locations,
    free_port,
    start_listener,
)
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
from manifest_exchange.storage.s3 import S3Location, exists, get_bytes, iter_objects, put_bytes

RESULTS = Path(__file__).parent / "results"
# The targets for the listener (issue 29): trickle p95/median, burst fully published.
TRICKLE_P95_S, TRICKLE_MEDIAN_S, BURST_ALL_S = 5.0, 3.0, 30.0
STAGES = ("discover", "parse", "validate", "decide", "publish", "report")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--manifests", type=int, default=24, help="schedule scenario")
    parser.add_argument("--spacing", type=float, default=7.0, help="schedule scenario, seconds")
    parser.add_argument("--interval", type=int, default=60, help="exchange schedule, seconds")
    parser.add_argument("--trickle-s", type=float, default=180.0)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep-home", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mx-latency-"))
    stack = EmbeddedStack(home, StackPorts.free())
    local = LocalPrefect(home, PROJECT_ROOT, port=free_port(), serve_ui=False)
    locations = Locations(
        source=f"s3://{SOURCE_BUCKET}/paxlst",
        state=f"s3://{STATE_BUCKET}/tw-jp",
        partner=f"s3://{PARTNER_BUCKET}/tw-jp",
    )
    scheduled = _objects(dt.date(2026, 12, 1), args.manifests, flights=40)
    trickle = _objects(dt.date(2026, 12, 2), int(args.trickle_s / 1.5) + 10, flights=80)
    burst = _objects(dt.date(2026, 12, 3), args.burst, flights=200)
    started = time.perf_counter()
    local.up(stack, locations=locations, interval_s=args.interval, listener=False)
    setup_s = time.perf_counter() - started
    results: dict[str, dict[str, Any]] = {}
    try:
        bench = Bench(stack, locations, args.timeout)
        bench.watch_successes()
        results["schedule"] = bench.scenario(scheduled, lambda n: args.spacing)
        listener_started = time.time()
        start_listener(local.api_url)
        bench.wait_for_listener()
        rng = random.Random(29)
        results["trickle"] = bench.scenario(
            _first_seconds(trickle, args.trickle_s, rng), lambda n: rng.uniform(1.0, 2.0)
        )
        results["burst"] = bench.scenario(burst, lambda n: 10.0 / len(burst))
        stages = bench.listener_stages(since=listener_started)
        stages.update(prefect_run_times(local.api_url))
    finally:
        local.down()
        stack.down()
        if args.keep_home:
            print(f"scratch folder kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    report(results, stages, args, setup_s)


def _objects(day: dt.date, count: int, *, flights: int) -> list[GeneratedObject]:
    corpus = generate_day(GeneratorOptions(day, flights=flights, seed=7, defect_rate=0.02))
    if len(corpus.objects) < count:
        raise SystemExit(f"{day}: {len(corpus.objects)} objects generated, {count} wanted")
    return corpus.objects[:count]


def _first_seconds(
    objects: list[GeneratedObject], seconds: float, rng: random.Random
) -> list[GeneratedObject]:
    """As many objects as land in ``seconds`` at one every 1-2 s (at least 3 minutes' worth
    by default), drawn with the same seed as the spacing."""
    probe = random.Random(rng.random())
    total, count = 0.0, 0
    while total < seconds and count < len(objects):
        total += probe.uniform(1.0, 2.0)
        count += 1
    return objects[:count]


class Bench:
    def __init__(self, stack: EmbeddedStack, locations: Locations, timeout: float) -> None:
        self.loader = stack.client("loader")
        self.pipeline = stack.client("pipeline")
        self.source = S3Location.parse(locations.source)
        self.state = S3Location.parse(locations.state)
        self.partner = S3Location.parse(locations.partner)
        self.filer = stack.filer_address()
        self.timeout = timeout
        self.successes: dict[str, int] = {}
        self.watch_stopped = ""

    def watch_successes(self) -> None:
        """Record, from the filer's change log, when each drop's ``_SUCCESS`` was created."""
        root = drops_root(self.partner)

        def follow() -> None:
            try:
                for landing in FilerChangeLog(self.filer, root).follow(time.time_ns()):
                    if landing is not None and landing.key.endswith(f"/{SUCCESS_MARKER}"):
                        drop_id = landing.key.rsplit("/", 2)[-2]
                        self.successes.setdefault(drop_id, landing.landed_ns)
            except RuntimeError as error:  # the store stopped: at the end, or a failed bench
                self.watch_stopped = str(error)

        threading.Thread(target=follow, name="successes", daemon=True).start()

    def scenario(
        self, objects: list[GeneratedObject], gap_s: Callable[[int], float]
    ) -> dict[str, Any]:
        landed: dict[str, int] = {}
        first = next_at = time.monotonic()
        for number, obj in enumerate(objects):
            key = self.source.key(obj.key.split("/", 1)[1])
            put_bytes(self.loader, SOURCE_BUCKET, key, obj.data)
            landed[key] = time.time_ns()
            next_at += gap_s(number)
            time.sleep(max(next_at - time.monotonic(), 0.0))
        uploading_s = time.monotonic() - first
        latencies, success = self.wait_for_drops(landed)
        values = list(latencies.values())
        return {
            "manifests": len(objects),
            "in_drops": len(values),
            "uploading_s": round(uploading_s, 1),
            "median_s": round(statistics.median(values), 1),
            "p95_s": round(percentile(values, 0.95), 1),
            "min_s": round(min(values), 1),
            "max_s": round(max(values), 1),
            "all_published_s": round((max(success) - min(landed.values())) / 1e9, 1),
        }

    def wait_for_drops(self, landed: dict[str, int]) -> tuple[dict[str, float], list[int]]:
        """Seconds from landing to ``_SUCCESS`` per manifest that reached a drop, and the
        ``_SUCCESS`` times; every manifest must be settled within the timeout."""
        latencies: dict[str, float] = {}
        successes: list[int] = []
        pending = dict(landed)
        deadline = time.monotonic() + self.timeout
        ledger = Ledger(self.pipeline, self.state, claim_timeout_s=0)
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
                    if drop_id not in self.successes:
                        continue  # the change log has not told of its _SUCCESS yet
                    latencies[key] = (self.successes[drop_id] - pending[key]) / 1e9
                    successes.append(self.successes[drop_id])
                del pending[key]
            time.sleep(0.5)
        if pending:
            watcher = self.watch_stopped
            stopped = f" (the _SUCCESS watcher stopped: {watcher})" if watcher else ""
            raise SystemExit(
                f"{len(pending)} manifests were not settled in {self.timeout:.0f}s{stopped}"
            )
        return latencies, successes

    def wait_for_listener(self, timeout_s: float = 180.0) -> None:
        """Until the listener follows: a probe object lands every few seconds until the
        listener has run one and saved its checkpoint (its run's process starts, and warms up,
        after ``make ui`` asked for it)."""
        deadline = time.monotonic() + timeout_s
        checkpoint = self.state.key("listener", "checkpoint.json")
        probes = 0
        while time.monotonic() < deadline:
            if exists(self.pipeline, self.state.bucket, checkpoint):
                return
            probes += 1
            probe = self.source.key("probe", f"listener-started-{probes}.edi")
            put_bytes(self.loader, SOURCE_BUCKET, probe, b"not a manifest")
            time.sleep(5)
        raise SystemExit(f"the listener did not start within {timeout_s:.0f} s")

    def listener_stages(self, since: float) -> dict[str, float]:
        """Median seconds per stage over the runs that began after the listener started."""
        runs = S3Location(self.state.bucket, self.state.key("runs"))
        timings: dict[str, list[float]] = {}
        for info in iter_objects(self.pipeline, runs):
            if not info.key.endswith("/report.json") or info.last_modified.timestamp() < since:
                continue
            report = json.loads(get_bytes(self.pipeline, runs.bucket, info.key))
            if not report["objects"]["claimed"]:
                continue
            for stage, seconds in report["timings_s"].items():
                timings.setdefault(f"listener run stage {stage}", []).append(float(seconds))
        return {stage: round(statistics.median(v), 2) for stage, v in sorted(timings.items())}


def prefect_run_times(api_url: str) -> dict[str, float]:
    """Where a run's seconds go outside its stages, from the Prefect API: the listener's
    subflows against a deployment run triggered now, as an event-triggered deployment would
    be (worker poll, then a new process), from asking for it to its flow starting."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    figures: dict[str, list[float]] = {"prefect: listener subflow length": []}
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        triggered = run_deployment("exchange_manifests/tw-jp-exchange", timeout=300)
        assert isinstance(triggered, FlowRun)
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(limit=200):
                if run.parent_task_run_id and run.start_time and run.end_time:
                    length = (run.end_time - run.start_time).total_seconds()
                    figures["prefect: listener subflow length"].append(length)
            ran = client.read_flow_run(triggered.id)
    if ran.start_time is not None and ran.end_time is not None:
        asked_to_started = (ran.start_time - ran.created).total_seconds() if ran.created else None
        if asked_to_started is not None:
            figures["prefect: triggered deployment run, asked -> flow started"] = [asked_to_started]
        figures["prefect: triggered deployment run length"] = [
            (ran.end_time - ran.start_time).total_seconds()
        ]
    return {name: round(statistics.median(v), 2) for name, v in figures.items() if v}


def report(
    results: dict[str, dict[str, Any]],
    stages: dict[str, float],
    args: argparse.Namespace,
    setup_s: float,
) -> None:
    trickle, burst = results["trickle"], results["burst"]
    figures = {
        "benchmark": "landing_to_success_latency",
        "scenarios": results,
        "listener_stage_medians_s": stages,
        "targets_met": {
            "trickle_p95": trickle["p95_s"] <= TRICKLE_P95_S,
            "trickle_median": trickle["median_s"] <= TRICKLE_MEDIAN_S,
            "burst_all_published": burst["all_published_s"] <= BURST_ALL_S,
        },
        "schedule_interval_s": args.interval,
        "setup_s": round(setup_s, 1),
        "cores": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
    }
    lines = [
        "| scenario | manifests | in drops | median s | p95 s | min s | max s | all published s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results.items():
        lines.append(
            f"| {name} | {row['manifests']} | {row['in_drops']} | {row['median_s']} "
            f"| {row['p95_s']} | {row['min_s']} | {row['max_s']} | {row['all_published_s']} |"
        )
    lines += [
        "",
        "| where the seconds go | median s |",
        "|---|---|",
        *(f"| {stage} | {seconds} |" for stage, seconds in stages.items()),
        "",
        f"{figures['cores']} cores, {figures['machine']}, Python {figures['python']}; "
        f"schedule every {args.interval} s (scheduled manifests {args.spacing:g} s apart); "
        f"trickle one every 1-2 s for {args.trickle_s:g} s; burst of {args.burst} in 10 s. "
        f"Targets: trickle median <= {TRICKLE_MEDIAN_S:g} s and p95 <= {TRICKLE_P95_S:g} s, "
        f"burst all published within {BURST_ALL_S:g} s.",
    ]
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"latency-{stamp}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
