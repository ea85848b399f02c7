"""End-to-end benchmark: the full exchange, S3 in -> Parquet drops in S3, beside its floor and peer.

Usage: ``make bench`` (100k and 1M travellers) or
``python bench/bench_exchange.py --travellers 100000 [1000000 ...] [--seed 5]``.

For each size, on one embedded store and one Prefect server (both on loopback, free ports):

1. generate a day of PAXLST traffic of about that many travellers (the generator's default
   mix of defects and resends) and upload it to the source bucket (not timed);
2. **exchange**: ``manifest-exchange run`` in its own process, as an operator would run it;
   travellers/s over the flow's run (recover .. report, as the flow times it), the
   process's wall time beside it (interpreter, imports, Prefect engine), its peak RSS, and
   the report's seconds per stage (parse, transform and validate are summed over batches,
   which overlap publishing, so stages add up to more than the run);
   then the same with ``--runner dask`` (a local Dask cluster of one worker process per core)
   into its own state and partner prefixes. Peak RSS is the largest single process's
   (``wait4``); the tree figure is the peak of the run's processes summed (the flow and, with
   Dask, its workers), sampled every 0.25 s;
3. **floor**: the same bytes read from the same store with the same fetcher, split at the
   segment terminator with Arrow (no UNA, separators, release character or meaning: no
   EDIFACT parsing), one row per person segment, written to the partner bucket as zstd
   Parquet files of the same size limit with a sha256 manifest and ``_SUCCESS``: the I/O a
   drop costs with nothing in between (objects with custom separators yield no rows, so its
   row count is a little below the travellers; its rate is what compares). It runs right
   before and right after the first runner's exchange, and the ratio uses the mean of the
   two: the machine's speed drifts within minutes;
4. **peer**: ``pydifact`` reading the first objects of the same corpus, about 20,000
   travellers, into person records (it is slow; its rate is what compares).

Prints a table and, last, one JSON line; writes a markdown table to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.compute as pc

from bench_parse import time_pydifact
from manifest_exchange.ingest.manifests import ObjectToRead, fetch_objects
from manifest_exchange.local.generate.paxlst import Corpus, GeneratorOptions, generate_day
from manifest_exchange.local.prefect_server import LocalPrefect, free_port
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
    StackPorts,
)
from manifest_exchange.paths import PROJECT_ROOT
from manifest_exchange.paxlst.parser import SourceObject
from manifest_exchange.publish.drops import MAX_ROWS_PER_FILE, SUCCESS_MARKER, parquet_bytes
from manifest_exchange.storage.s3 import (
    ArrowDownloader,
    S3Client,
    S3Location,
    iter_objects,
    put_bytes,
    put_many,
)
from profile_summary import summarise

RESULTS = Path(__file__).parent / "results"
TRAVELLERS_PER_FLIGHT = 190  # what the generator yields per flight, crew included, on average
PERSON_SEGMENT = rb"^\s*NAD\+(FL|FM|DDU|DDT)\+"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--travellers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--runners", nargs="+", choices=["threads", "dask"], default=["threads", "dask"]
    )
    parser.add_argument(
        "--profile",
        choices=["threads", "gil"],
        help="sample the first runner's exchange with py-spy and print a summary: every busy "
        "thread, or only the thread holding the GIL (the run's serial Python work)",
    )
    parser.add_argument(
        "--pydifact-travellers",
        type=int,
        default=20_000,
        help="about how many travellers pydifact reads (it is slow; its rate is what compares)",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mx-bench-"))
    stack = EmbeddedStack(home, StackPorts.free())
    prefect = LocalPrefect(home, PROJECT_ROOT, port=free_port(), serve_ui=False)
    results: list[dict[str, Any]] = []
    try:
        stack.up()
        prefect.start_server()
        for travellers in args.travellers:
            results.append(bench_size(stack, prefect, travellers, args))
    finally:
        prefect.down()
        stack.down()
        shutil.rmtree(home, ignore_errors=True)
    report(results)


def bench_size(
    stack: EmbeddedStack, prefect: LocalPrefect, travellers: int, args: argparse.Namespace
) -> dict[str, Any]:
    flights = max(1, round(travellers / TRAVELLERS_PER_FLIGHT))
    started = time.perf_counter()
    corpus = generate_day(GeneratorOptions(dt.date(2026, 12, 1), flights=flights, seed=args.seed))
    generate_s = time.perf_counter() - started
    name = f"bench-{travellers}"
    source = S3Location(SOURCE_BUCKET, name)
    started = time.perf_counter()
    put_many(
        stack.client("loader"),
        SOURCE_BUCKET,
        [(source.key(o.key.split("/", 1)[1]), o.data) for o in corpus.objects],
    )
    upload_s = time.perf_counter() - started

    def floor(when: str) -> dict[str, Any]:
        # A fetcher of its own each time: a run starts with a new one too.
        downloader = ArrowDownloader(stack.s3_settings("pipeline"))
        target = S3Location(PARTNER_BUCKET, f"floor-{name}-{when}")
        return run_floor(stack.client("pipeline"), downloader, source, target)

    # The machine's speed drifts by a quarter within minutes, so the floor is measured right
    # before and right after the first runner's exchange, and the ratio uses their mean.
    floors: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}
    for n, runner in enumerate(args.runners):
        if n == 0:
            floors.append(floor("before"))
        runs[runner] = run_exchange(
            stack, prefect, name, runner, profile=args.profile if n == 0 else None
        )
        if n == 0:
            floors.append(floor("after"))
    exchange = runs[args.runners[0]]
    floor_rows = floors[0]["rows"]
    if any(f["rows"] != floor_rows for f in floors):
        raise SystemExit(f"the floor runs wrote different row counts: {floors}")
    floor_s = statistics.mean(f["seconds"] for f in floors)
    peer = run_peer(corpus, min(1.0, args.pydifact_travellers / travellers))
    received = exchange["report"]["travellers"]
    flow_s = exchange["flow_s"]
    exchange_rate = received / flow_s
    # The parse stage fetches from the store too, so this is a little below the parser alone.
    parse_rate = received / exchange["report"]["timings_s"]["parse"]
    others = {
        f"{runner}_{figure}": value
        for runner, run in runs.items()
        if run is not exchange
        for figure, value in (
            ("flow_s", round(run["flow_s"], 2)),
            ("travellers_per_s", round(run["report"]["travellers"] / run["flow_s"])),
            ("peak_rss_mb", run["peak_rss_mb"]),
            ("peak_tree_rss_mb", run["peak_tree_rss_mb"]),
            ("same_outcomes", _outcomes(run["report"]) == _outcomes(exchange["report"])),
        )
    }
    return {
        "travellers_requested": travellers,
        "objects": len(corpus.objects),
        "megabytes": round(sum(len(o.data) for o in corpus.objects) / 1e6, 1),
        "generate_s": round(generate_s, 1),
        "upload_s": round(upload_s, 1),
        "travellers": received,
        "published": exchange["report"]["published"],
        "quarantined_rows": exchange["report"]["quarantined_rows"],
        "exchange_flow_s": round(flow_s, 2),
        "exchange_process_s": round(exchange["process_s"], 2),
        "exchange_travellers_per_s": round(exchange_rate),
        "exchange_peak_rss_mb": exchange["peak_rss_mb"],
        "exchange_peak_tree_rss_mb": exchange["peak_tree_rss_mb"],
        "exchange_cpu_s": exchange["cpu_s"],
        "exchange_cores_busy": round(exchange["cpu_s"] / exchange["process_s"], 2),
        **{f"{name}_cpu_s": value for name, value in exchange["services_cpu_s"].items()},
        "batches": exchange["report"]["batches"],
        "stages_s": exchange["report"]["timings_s"],
        "floor_s": round(floor_s, 2),
        "floor_s_before_and_after": [round(f["seconds"], 2) for f in floors],
        "floor_rows": floor_rows,
        "floor_travellers_per_s": round(floor_rows / floor_s),
        "pydifact_objects": peer["objects"],
        "pydifact_failed_objects": peer["failed"],
        "pydifact_travellers_per_s": round(peer["rate"]),
        "ratio_exchange_over_floor": round(exchange_rate / (floor_rows / floor_s), 3),
        "parse_stage_travellers_per_s": round(parse_rate),
        "ratio_parse_stage_over_pydifact": round(parse_rate / peer["rate"], 1),
        **others,
    }


def _outcomes(report: dict[str, Any]) -> tuple[int, ...]:
    names = ("travellers", "published", "out_of_scope", "duplicates", "quarantined_rows")
    return tuple(report[n] for n in names)


def run_exchange(
    stack: EmbeddedStack,
    prefect: LocalPrefect,
    name: str,
    runner: str,
    *,
    profile: str | None = None,
) -> dict[str, Any]:
    """``manifest-exchange run`` in a child process; its report, wall time and peak RSS.

    With ``profile`` (``threads`` or ``gil``), py-spy samples the run (slowing it a little) and
    its collapsed stacks go to ``bench/results/``. A thread waiting for the GIL looks busy to
    py-spy, so with many threads ``gil`` is the truer picture of the Python work.
    """
    target = name if runner == "threads" else f"{name}-{runner}"
    command = [
        str(Path(sys.executable).parent / "manifest-exchange"),
        "run",
        "--json",
        "--source",
        f"s3://{SOURCE_BUCKET}/{name}",
        "--state",
        f"s3://{STATE_BUCKET}/{target}",
        "--partner",
        f"s3://{PARTNER_BUCKET}/{target}",
        "--runner",
        runner,
    ]
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    profile_path = RESULTS / f"profile-{profile}-{name}-{stamp}.txt"
    if profile:
        RESULTS.mkdir(exist_ok=True)
        spy = str(Path(sys.executable).parent / "py-spy")
        command = [
            spy,
            "record",
            "--format",
            "raw",
            "--rate",
            "50",
            *(["--gil"] if profile == "gil" else []),
            "-o",
            str(profile_path),
            "--",
            *command,
        ]
    env = {**os.environ, **stack.environment("pipeline"), **prefect.environment()}
    services = _ServicesCpu(stack, prefect)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        tree = _TreeMemory(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        process_s = time.perf_counter() - started
        tree.stop()
        services_cpu_s = services.used_s()
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the exchange run failed:\n{err.read().decode()[-4000:]}")
        # The report is the last JSON line (py-spy, when profiling, writes after it).
        lines = out.read().decode().strip().splitlines()
        last_line = next(line for line in reversed(lines) if line.startswith("{"))
    report = json.loads(last_line)
    if profile:
        summary = summarise(profile_path)
        profile_path.with_suffix(".md").write_text(summary + "\n")
        print(f"profile of the {runner} run ({profile_path}):\n{summary}")
    return {
        "report": report,
        "flow_s": report["run_s"],
        "process_s": process_s,
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "peak_tree_rss_mb": round(tree.peak / 2**20),
        # CPU seconds over the run: the pipeline process (all its threads; Dask workers are
        # not its threads, so 0 there says little) and the two services on the same cores.
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "services_cpu_s": {name: round(value, 1) for name, value in services_cpu_s.items()},
    }


class _ServicesCpu:
    """CPU seconds the store (weed) and the Prefect server use from now until ``used_s``."""

    def __init__(self, stack: EmbeddedStack, prefect: LocalPrefect) -> None:
        store, server = stack.running_state(), prefect.read_processes()
        self.processes = {
            name: psutil.Process(pid)
            for name, pid in (
                ("store", store.pid if store else None),
                ("prefect_server", server.server_pid if server else None),
            )
            if pid is not None
        }
        self.start = {name: self._cpu(process) for name, process in self.processes.items()}

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        """The process and its children (the server's workers), user and system."""
        total = 0.0
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def used_s(self) -> dict[str, float]:
        return {
            name: self._cpu(process) - self.start[name] for name, process in self.processes.items()
        }


class _TreeMemory(threading.Thread):
    """The peak of the summed RSS of a process and all its descendants (Dask workers).

    ``wait4`` reports the largest single process; a cluster's memory is the sum.
    """

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            total = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def run_floor(
    client: S3Client, downloader: ArrowDownloader, source: S3Location, target: S3Location
) -> dict[str, Any]:
    """Read the same bytes and write a drop of one row per person segment; no EDIFACT parsing.

    Bytes come through the downloader a run uses, so the floor moves with the pipeline's reads.
    """
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    listed = [
        ObjectToRead(source.bucket, info.key, now, info.size)
        for info in iter_objects(client, source)
    ]
    files: list[dict[str, Any]] = []
    rows = 0
    pending: list[pa.Table] = []
    pending_rows = 0
    for page in _pages_of(fetch_objects(downloader, listed), 256):
        # Bytes, not text: some senders write Latin-1, and the floor decodes nothing.
        texts = pa.array([s.data for s in page], pa.large_binary())
        pieces = pc.split_pattern(texts, b"'")
        segments = pc.list_flatten(pieces)
        is_person = pc.match_substring_regex(segments, PERSON_SEGMENT)
        persons = segments.filter(is_person)
        owner = pc.list_parent_indices(pieces).filter(is_person)
        keys = pa.array([s.key for s in page]).take(owner)
        pending.append(pa.table({"object_key": keys, "segment": persons}))
        pending_rows += len(persons)
        while pending_rows >= MAX_ROWS_PER_FILE:
            table = pa.concat_tables(pending)
            files.append(_put_floor_file(client, target, len(files), table[:MAX_ROWS_PER_FILE]))
            pending = [table[MAX_ROWS_PER_FILE:]]
            pending_rows = pending[0].num_rows
        rows += len(persons)
    if pending_rows:
        files.append(_put_floor_file(client, target, len(files), pa.concat_tables(pending)))
    manifest = json.dumps({"row_total": rows, "files": files}).encode()
    put_bytes(client, target.bucket, target.key("manifest.json"), manifest, if_none_match=True)
    put_bytes(client, target.bucket, target.key(SUCCESS_MARKER), b"", if_none_match=True)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def _pages_of(sources: Iterator[SourceObject], size: int) -> Iterator[list[SourceObject]]:
    page: list[SourceObject] = []
    for source in sources:
        page.append(source)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


def _put_floor_file(
    client: S3Client, target: S3Location, number: int, table: pa.Table
) -> dict[str, Any]:
    data = parquet_bytes(table)
    key = target.key(f"part-{number:05d}.parquet")
    put_bytes(client, target.bucket, key, data, if_none_match=True)
    return {"key": key, "rows": table.num_rows, "sha256": hashlib.sha256(data).hexdigest()}


def run_peer(corpus: Corpus, share: float) -> dict[str, Any]:
    sample = corpus.objects[: max(1, int(len(corpus.objects) * share))]
    warnings.simplefilter("ignore")
    persons, failed, seconds = time_pydifact([SourceObject(o.key, o.data) for o in sample])
    return {"objects": len(sample), "failed": failed, "rate": persons / seconds}


def report(results: list[dict[str, Any]]) -> None:
    machine = {
        "cores": os.cpu_count(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
    }
    summary: dict[str, Any] = {"benchmark": "exchange", **machine, "sizes": results}
    if len(results) > 1:
        first, last = results[0], results[-1]
        # Linear cost keeps travellers/s flat: 1.0 means the larger corpus costs in proportion.
        summary["rate_ratio_largest_over_smallest"] = round(
            last["exchange_travellers_per_s"] / first["exchange_travellers_per_s"], 2
        )
    names = list(dict.fromkeys(k for r in results for k in r if k != "stages_s"))
    lines = [
        "| figure | " + " | ".join(str(r["travellers_requested"]) for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    lines += [f"| {n} | " + " | ".join(str(r.get(n)) for r in results) + " |" for n in names]
    for stage in results[0]["stages_s"]:
        cells = " | ".join(f"{r['stages_s'].get(stage, 0):.2f}" for r in results)
        lines.append(f"| stage {stage} s | {cells} |")
    lines += ["", *(f"- {k}: {v}" for k, v in machine.items())]
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"exchange-{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
