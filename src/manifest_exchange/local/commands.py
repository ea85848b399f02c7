"""The console script's local-only commands: the embedded store, the local Prefect UI,
synthetic traffic and the end-to-end demo.

``cli`` imports this module only when one of them runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq

from manifest_exchange.cli import format_report, load_exchange_flow, this_command
from manifest_exchange.config import Settings
from manifest_exchange.local.generate.paxlst import Corpus, GeneratorOptions, generate_day
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
    StackError,
)
from manifest_exchange.paths import FLOWS_DIR
from manifest_exchange.publish.partner import fetch_drops, verify_drops, write_current_records
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    make_client,
    put_many,
)

log = logging.getLogger("manifest_exchange")


def stack_command(args: argparse.Namespace, settings: Settings) -> int:
    stack = EmbeddedStack(settings.home)
    if args.action == "up":
        started = time.perf_counter()
        state = stack.up()
        log.info("store ready at %s in %.1fs", state.endpoint_url, time.perf_counter() - started)
        print(json.dumps(stack.status(), indent=2))
    elif args.action == "down":
        print("stopped" if stack.down() else "not running")
    elif args.action == "status":
        status = stack.status()
        print(json.dumps(status, indent=2))
        return 0 if status["running"] else 3
    else:
        print("\n".join(stack.env_lines(args.identity)))
    return 0


def ui_command(args: argparse.Namespace, settings: Settings) -> int:
    from manifest_exchange.local.prefect_server import (
        EXCHANGE_DEPLOYMENT,
        LocalPrefect,
        deployments_of,
    )

    local = LocalPrefect(settings.home, FLOWS_DIR.parent, port=args.port)
    stack = EmbeddedStack(settings.home)
    if args.action == "down":
        stopped = local.down()
        print(
            f"stopped: {', '.join(stopped) or 'nothing'}; store "
            + ("stopped" if stack.down() else "was not running")
        )
        return 0
    if args.action == "status":
        processes = local.read_processes()
        print(json.dumps({"prefect": processes and vars(processes), "store": stack.status()}))
        return 0 if processes else 3
    started = time.perf_counter()
    processes = local.up(
        stack,
        interval_s=args.interval_seconds,
        retain_days=args.retain_days,
        webhook_url=args.webhook,
    )
    ui_url = processes.api_url.removesuffix("/api")
    print(
        f"Prefect UI: {ui_url} (ready in {time.perf_counter() - started:.0f}s)\n"
        f"  deployments on work pool 'manifest-exchange' ({EXCHANGE_DEPLOYMENT} every "
        f"{args.interval_seconds}s): {', '.join(deployments_of(FLOWS_DIR.parent))}\n"
        f"  store: {stack.status()['endpoint_url']}; load a day as an airline would:\n"
        + "".join(f"    {line}\n" for line in load_commands(this_command()))
        + f"  alerts: {args.webhook or local.alerts_file}\n"
        f"  logs: {local.root}/*.log; stop everything with `make ui-down`"
    )
    return 0


def load_commands(command: str) -> list[str]:
    """The shell lines that load a day into the source bucket as the ``loader`` identity.

    ``ui up`` prints them and the README's tour shows them; a test holds the two equal, so the
    hint works as printed (it once lacked the required ``--date``).
    """
    return [
        f'eval "$({command} stack env --identity loader)"',
        f"{command} generate --date 2026-12-01 --flights 20 --to s3://{SOURCE_BUCKET}/paxlst",
    ]


def generate_command(args: argparse.Namespace, settings: Settings) -> int:
    options = GeneratorOptions(
        flight_date=args.date,
        flights=args.flights,
        seed=args.seed,
        defect_rate=args.defect_rate,
        resend_rate=args.resend_rate,
        part_size=args.part_size,
        csv_rate=args.csv_rate,
        csv_only=args.csv_only,
        origin_country=args.origin,
    )
    if args.to.startswith("s3://"):
        # The prefix given is the one the day folders go under (s3://bucket/paxlst ->
        # paxlst/<date>/...), the layout `run --source <prefix>/<date>` reads.
        target = S3Location.parse(args.to)
        corpus = generate_day(replace(options, prefix=target.prefix.strip("/") or options.prefix))
        upload_corpus(corpus, S3Location(target.bucket), make_client(settings.s3))
    else:
        corpus = generate_day(options)
        write_corpus(corpus, Path(args.to))
    print(json.dumps(corpus.summary(), indent=2))
    return 0


def upload_corpus(corpus: Corpus, location: S3Location, client: S3Client) -> None:
    items = [(location.key(obj.key), obj.data) for obj in corpus.objects]
    put_many(client, location.bucket, items)
    log.info("uploaded %d objects to %s", len(items), location)


def write_corpus(corpus: Corpus, folder: Path) -> None:
    for obj in corpus.objects:
        path = folder / obj.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(obj.data)
    log.info("wrote %d objects under %s", len(corpus.objects), folder)


def demo_command(args: argparse.Namespace, settings: Settings) -> int:
    """Stack up, a day of traffic into the source bucket, two exchange runs, partner checks."""
    stack = EmbeddedStack(settings.home)
    state = stack.up()
    print(f"1. embedded store up at {state.endpoint_url} (data in {stack.data_dir})")
    # A share of flights also comes as the departure airport's CSV export, beside the airline's
    # PAXLST: the run merges both without publishing anyone twice.
    options = GeneratorOptions(args.date, flights=args.flights, seed=args.seed, csv_rate=0.1)
    corpus = generate_day(options)
    upload_corpus(corpus, S3Location(SOURCE_BUCKET), stack.client("loader"))
    generated = corpus.summary()
    by_format = Counter(o.source_format for o in corpus.objects)
    formats = ", ".join(f"{n} {name}" for name, n in sorted(by_format.items()))
    cut_off = (
        f"; {generated['travellers_cut_off']} more were cut off with the ends of "
        f"{generated['truncated_objects']} truncated transmissions"
        if generated["travellers_cut_off"]
        else ""
    )
    print(
        f"2. generated {generated['objects']} objects ({formats}) for {generated['flights']} "
        f"flights into s3://{SOURCE_BUCKET}/paxlst/: {generated['travellers_in_objects']} "
        f"travellers in the objects{cut_off}"
    )
    partner = f"s3://{PARTNER_BUCKET}/tw-jp"
    locations = {
        "source": f"s3://{SOURCE_BUCKET}/paxlst/{args.date:%Y-%m-%d}",
        "state": f"s3://{STATE_BUCKET}/tw-jp",
        "partner": partner,
    }
    flow = load_exchange_flow()
    with _environment(stack.environment("pipeline")):
        first = flow(**locations)
    print("3. exchange run (pipeline identity):")
    print(format_report(first))
    partner_client = stack.client("partner")
    verified = verify_drops(partner_client, S3Location.parse(partner))
    print(f"4. partner verify (partner identity): {json.dumps(verified.as_dict())}")
    fetched_to = settings.home / "partner-inbox"
    fetched = fetch_drops(partner_client, S3Location.parse(partner), fetched_to)
    print(f"5. partner fetch: {len(fetched)} drop(s) into {fetched_to}; read them with DuckDB:")
    glob = f"{fetched_to}/v1/drops/*/*/*/*.parquet"
    print(f"   select * from read_parquet('{glob}', hive_partitioning = true)")  # noqa: S608
    print(f"   {_example_query(fetched_to)}")
    current = write_current_records(fetched_to, "1")
    travellers = pq.read_metadata(current).num_rows
    print(f"   current records (partner fetch --current): {travellers} in {current}")
    with _environment(stack.environment("pipeline")):
        second = flow(**locations)
    print("6. second run over the same prefix (must publish nothing):")
    print(format_report(second))
    if second["drop_ids"] or not verified.is_ok:
        print("error: the second run published again or verification failed", file=sys.stderr)
        return 1
    print(f"The store keeps running; stop it with: {this_command()} stack down")
    return 0


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Run the flow as the pipeline identity: it reads its settings from the environment."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _example_query(folder: Path) -> str:
    import duckdb

    rows = duckdb.sql(
        "select arr_airport, count(*) as travellers from read_parquet($glob, "
        "hive_partitioning = true) group by all order by travellers desc limit 5",
        params={"glob": f"{folder}/v1/drops/*/*/*/*.parquet"},
    ).fetchall()
    return "top arrival airports: " + ", ".join(f"{a} {n}" for a, n in rows)


def run(command: str, args: argparse.Namespace, settings: Settings) -> int:
    """Run one local command; a store that cannot start is an error message, not a trace."""
    handlers = {
        "stack": stack_command,
        "generate": generate_command,
        "ui": ui_command,
        "demo": demo_command,
    }
    try:
        return handlers[command](args, settings)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
