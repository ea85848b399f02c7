"""The ``manifest-exchange`` console script.

Commands:
    stack up|down|status|env   the embedded SeaweedFS store on loopback
    generate                   synthetic PAXLST (and airport CSV) traffic to a folder or s3://
    parse                      PAXLST (or airport CSV) files or s3:// prefixes -> JSON lines
    run                        the exchange flow (Prefect) over new manifests -> a partner drop
    run-partners               the same for every agreement of an origin country, one run
    partner verify|fetch|ack   the partner's side: check drops, download them, acknowledge them
    ui up|down|status          local Prefect server, worker and deployments (``make ui``)
    audit                      prove the exactly-once invariants over source, ledger and drops
    demo                       the end-to-end demonstration on the embedded stack
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import logging
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import NoCredentialsError

from manifest_exchange.agreements.terms import DEFAULT_AGREEMENT, AgreementError, load_agreement
from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.config import Settings
from manifest_exchange.ingest.manifests import ObjectToRead, fetch_objects
from manifest_exchange.orchestration.parameters import RunOptions
from manifest_exchange.paths import FLOWS_DIR
from manifest_exchange.paxlst.parser import (
    MAX_OBJECT_BYTES,
    ParseResult,
    PaxlstParser,
    SourceObject,
    batches,
)
from manifest_exchange.paxlst.summary import ParseSummary
from manifest_exchange.publish.partner import (
    CURRENT_RECORDS,
    SequenceError,
    fetch_drops,
    last_fetched_sequence,
    verify_drops,
    write_current_records,
)
from manifest_exchange.publish.receipts import acknowledge_drops
from manifest_exchange.runs.batches import DEFAULT_BATCH_MB, RUNNERS
from manifest_exchange.storage.s3 import (
    BotoDownloader,
    S3Client,
    S3Location,
    iter_objects,
    make_client,
)

log = logging.getLogger("manifest_exchange")


# Fields printed by ``parse`` for each person, in this order.
PERSON_FIELDS = (
    "object_key",
    "message_ref",
    "common_access_ref",
    "part_number",
    "part_indicator",
    "bgm_code",
    "bgm_function",
    "role",
    "carrier_code",
    "flight_number",
    "dep_airport",
    "arr_airport",
    "sched_departure_local",
    "sched_arrival_local",
    "flight_date",
    "surname",
    "given_names",
    "sex",
    "date_of_birth",
    "nationality",
    "nationalities",
    "residence_country",
    "embark_airport",
    "debark_airport",
    "doc_type",
    "doc_number",
    "doc_issuing_state",
    "doc_expiry_date",
    "segment_position",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _argument_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_without_routine_prefect_lines)
    # GX and the HTTP clients narrate every step at INFO; keep their warnings only.
    for noisy in ("great_expectations", "httpx", "botocore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings.from_env()
    try:
        result: int = args.handler(args, settings)
    except (AgreementError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print(
            "error: no store credentials in the environment (AWS_ACCESS_KEY_ID ...); on the "
            f'local stack: eval "$({this_command()} stack env --identity <identity>)"',
            file=sys.stderr,
        )
        return 2
    return result


Handler = Callable[[argparse.Namespace, Settings], int]


# Loggers whose INFO lines narrate machinery (Dask's scheduler and nannies, prefect-dask's
# cluster set-up) rather than the run; their warnings still show.
_NARRATING_LOGGERS = ("distributed", "prefect.task_runner")


def _without_routine_prefect_lines(record: logging.LogRecord) -> bool:
    """Drop Prefect's "Finished in state Completed()" line per task (the run's own lines say
    what each stage did, and a failed state is still shown) and the INFO narration of Dask."""
    if record.levelno != logging.INFO:
        return True
    if record.name.startswith(_NARRATING_LOGGERS):
        return False
    return not (
        record.name.startswith("prefect")
        and record.getMessage().startswith("Finished in state Completed")
    )


def this_command() -> str:
    """How this console script was started, so a hint it prints works as printed (it is not
    on PATH in a project checkout)."""
    invoked = sys.argv[0]
    if os.sep not in invoked or not invoked.endswith("manifest-exchange"):
        return "manifest-exchange"
    return shlex.quote(os.path.relpath(invoked))


def _local(command: str) -> Handler:
    """A local-only command (:mod:`manifest_exchange.local.commands`), imported when it runs:
    the production commands never load the local tooling."""

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from manifest_exchange.local import commands

        return commands.run(command, args, settings)

    return handler


def _argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manifest-exchange", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, dest="command")

    stack = commands.add_parser("stack", help="the embedded S3 store (SeaweedFS) on loopback")
    stack.add_argument("action", choices=["up", "down", "status", "env"])
    stack.add_argument("--identity", default="pipeline", help="for 'env': whose credentials")
    stack.set_defaults(handler=_local("stack"))

    generate = commands.add_parser("generate", help="synthetic PAXLST traffic out of Taiwan")
    generate.add_argument("--date", required=True, type=dt.date.fromisoformat)
    generate.add_argument("--flights", type=int, default=150)
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument("--defect-rate", type=float, default=0.02)
    generate.add_argument("--resend-rate", type=float, default=0.03)
    generate.add_argument("--part-size", type=int, default=120)
    generate.add_argument(
        "--csv-rate", type=float, default=0.0, help="share of flights also exported as airport CSV"
    )
    generate.add_argument(
        "--csv-only", action="store_true", help="those flights get no airline PAXLST"
    )
    generate.add_argument(
        "--origin", default="TWN", choices=["TWN", "JPN"], help="whose departures (JPN: jp-tw)"
    )
    generate.add_argument(
        "--to",
        required=True,
        help="s3://bucket/prefix (day folders go under the prefix) or a local folder",
    )
    generate.set_defaults(handler=_local("generate"))

    parse = commands.add_parser("parse", help="PAXLST files or s3:// prefixes -> JSON lines")
    parse.add_argument("inputs", nargs="+", help="files, folders or s3://bucket/prefix")
    parse.add_argument("--summary", action="store_true", help="print only a summary")
    parse.add_argument("--origin", default="TWN", help="origin country for progressive flights")
    parse.add_argument("--destination", default="JPN", help="destination country")
    parse.set_defaults(handler=_parse)

    run = commands.add_parser("run", help="run the exchange flow once (Prefect)")
    run.add_argument("--source", required=True, help="s3://bucket/prefix of new manifests")
    run.add_argument("--state", required=True, help="s3://bucket/prefix of the pipeline state")
    run.add_argument("--partner", help="s3://bucket/prefix of drops (default: the agreement's)")
    run.add_argument("--agreement", default=DEFAULT_AGREEMENT, help="name or TOML path")
    run.add_argument("--json", action="store_true", help="last stdout line: the run report")
    run.add_argument(
        "--runner",
        choices=RUNNERS,
        default="threads",
        help="where batches are checked: threads in this process, or a Dask cluster",
    )
    run.add_argument(
        "--dask-address", help="an existing Dask scheduler (tcp://host:8786) for --runner dask"
    )
    run.add_argument(
        "--batch-mb",
        type=float,
        default=DEFAULT_BATCH_MB,
        help="objects per batch by listed size (MB); memory grows with it, not with the run",
    )
    run.set_defaults(handler=_run)

    partners = commands.add_parser(
        "run-partners", help="the exchange for every agreement of an origin country (Prefect)"
    )
    partners.add_argument("--source", required=True, help="s3://bucket/prefix of new manifests")
    partners.add_argument(
        "--state", required=True, help="s3://bucket/prefix; each agreement keeps <state>/<name>"
    )
    partners.add_argument(
        "--agreement",
        action="append",
        dest="agreements",
        help="name or TOML path, repeatable (default: every agreement of --origin)",
    )
    partners.add_argument("--origin", default="TWN", help="whose departures --source holds")
    partners.add_argument("--json", action="store_true", help="last stdout line: the reports")
    partners.set_defaults(handler=_run_partners)

    partner = commands.add_parser("partner", help="the partner's side of the drops")
    partner_commands = partner.add_subparsers(required=True, dest="partner_command")
    verify = partner_commands.add_parser("verify", help="check every complete drop")
    verify.add_argument("location", help="s3://bucket/prefix the drops are under")
    verify.add_argument("--schema-version", default="1", help="format version: 1 (default), 2, 3")
    verify.set_defaults(handler=_partner_verify)
    fetch = partner_commands.add_parser("fetch", help="download complete drops")
    fetch.add_argument("location", help="s3://bucket/prefix the drops are under")
    fetch.add_argument("--to", required=True, type=Path, help="local folder")
    fetch.add_argument("--schema-version", default="1", help="format version: 1 (default), 2, 3")
    fetch.add_argument(
        "--since",
        type=int,
        metavar="N",
        help="only the drops after sequence number N, found along the hash chain",
    )
    fetch.add_argument(
        "--current",
        action="store_true",
        help=f"then write every traveller's current record to <to>/v<version>/{CURRENT_RECORDS}",
    )
    fetch.add_argument(
        "--ack",
        action="store_true",
        help="then write a receipt for every fetched drop not yet acknowledged (needs --receipts)",
    )
    fetch.add_argument("--receipts", help="s3://bucket/prefix where receipts go, for --ack")
    fetch.set_defaults(handler=_partner_fetch)
    ack = partner_commands.add_parser(
        "ack", help="write a receipt for each drop received (never replaces one)"
    )
    ack.add_argument("location", help="s3://bucket/prefix the drops are under")
    ack.add_argument("--receipts", required=True, help="s3://bucket/prefix where receipts go")
    ack.add_argument("--schema-version", default="1", help="format version: 1 (default), 2, 3")
    ack.add_argument(
        "--to",
        type=Path,
        help="the folder the drops were fetched into: acknowledge the complete drops there",
    )
    ack.add_argument(
        "--drop",
        action="append",
        dest="drop_ids",
        metavar="DROP_ID",
        help="only this drop (repeatable); without --to, as published in the store",
    )
    ack.set_defaults(handler=_partner_ack)

    audit = commands.add_parser(
        "audit", help="every traveller accounted once, every record published once"
    )
    audit.add_argument("--source", required=True, help="s3://bucket/prefix of manifests")
    audit.add_argument("--state", required=True, help="s3://bucket/prefix of the pipeline state")
    audit.add_argument("--partner", help="s3://bucket/prefix of drops (default: the agreement's)")
    audit.add_argument("--agreement", default=DEFAULT_AGREEMENT, help="name or TOML path")
    audit.add_argument(
        "--grace-minutes", type=float, default=10, help="how long new objects may wait"
    )
    audit.set_defaults(handler=_audit)

    ui = commands.add_parser("ui", help="local Prefect server, worker and deployments")
    ui.add_argument("action", choices=["up", "down", "status"])
    ui.add_argument("--port", type=int, default=int(os.environ.get("MX_UI_PORT", "4200")))
    ui.add_argument(
        "--interval-seconds",
        type=int,
        default=int(os.environ.get("MX_EXCHANGE_INTERVAL_S", "60")),
        help="schedule of the exchange deployment",
    )
    ui.add_argument(
        "--retain-days", type=float, default=float(os.environ.get("MX_RETAIN_DAYS", "30"))
    )
    ui.add_argument(
        "--webhook",
        default=os.environ.get("MX_ALERT_WEBHOOK_URL"),
        help="where failure alerts go (default: a local receiver writing .local/ui/alerts.jsonl)",
    )
    ui.set_defaults(handler=_local("ui"))

    demo = commands.add_parser("demo", help="end to end on the embedded stack")
    demo.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2026, 12, 1))
    demo.add_argument("--flights", type=int, default=150)
    demo.add_argument("--seed", type=int, default=20261201)
    demo.set_defaults(handler=_local("demo"))
    return parser


def _audit(args: argparse.Namespace, settings: Settings) -> int:
    from manifest_exchange.operations.audit import audit

    agreement = load_agreement(args.agreement)
    report = audit(
        make_client(settings.s3),
        source=S3Location.parse(args.source),
        state=S3Location.parse(args.state),
        partner=S3Location.parse(args.partner or agreement.partner_location),
        agreement=agreement,
        grace=dt.timedelta(minutes=args.grace_minutes),
    )
    print(json.dumps(report.as_dict(), indent=1))
    return 0 if report.ok else 1


def _parse(args: argparse.Namespace, settings: Settings) -> int:
    client = make_client(settings.s3) if any(i.startswith("s3://") for i in args.inputs) else None
    summary = ParseSummary()
    with PaxlstParser(args.origin, args.destination) as parser:
        for result in _parse_batches(parser, _sources(args.inputs, client), summary):
            if args.summary:
                continue
            for row in result.persons.select(list(PERSON_FIELDS)).to_pylist():
                print(json.dumps(row, default=_json_default, ensure_ascii=False))
            for error in result.errors.to_pylist():
                error["error"] = error.pop("error_code")
                print(json.dumps(error, default=_json_default))
    if args.summary:
        print(json.dumps(summary.as_dict(), indent=2))
    return 0


def _parse_batches(
    parser: PaxlstParser, sources: Iterator[SourceObject], summary: ParseSummary
) -> Iterator[ParseResult]:
    """Parse ``sources`` in bounded batches (airport CSV exports with the CSV reader, told by
    content as a run tells them); add counts and wall time to ``summary``."""
    like = parser.parse([])
    for batch in batches(sources):
        started = time.perf_counter()
        is_export = [not s.unfetched_size and airport_csv.is_airport_csv(s.data) for s in batch]
        exports = [s for s, export in zip(batch, is_export, strict=True) if export]
        edifact = [s for s, export in zip(batch, is_export, strict=True) if not export]
        results = [parser.parse(edifact)] if edifact else []
        if exports:
            results.append(airport_csv.read_exports(exports, like))
        summary.wall_seconds += time.perf_counter() - started
        for result in results:
            summary.add(result)
            yield result


def _sources(inputs: Sequence[str], client: S3Client | None) -> Iterator[SourceObject]:
    for item in inputs:
        if item.startswith("s3://"):
            assert client is not None
            yield from _s3_sources(client, S3Location.parse(item))
            continue
        path = Path(item)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                yield _local_source(file)
        elif path.is_file():
            yield _local_source(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")


def _local_source(path: Path) -> SourceObject:
    size = path.stat().st_size
    if size > MAX_OBJECT_BYTES:  # refused by its size, like a listed object: never read
        return SourceObject(str(path), b"", unfetched_size=size)
    return SourceObject(str(path), path.read_bytes())


def _s3_sources(client: S3Client, location: S3Location) -> Iterator[SourceObject]:
    listed = dt.datetime.now(dt.UTC)
    objects = [
        ObjectToRead(location.bucket, info.key, listed, info.size)
        for info in iter_objects(client, location)
    ]
    yield from fetch_objects(BotoDownloader(client), objects)


def _json_default(value: Any) -> str:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_exchange_flow(name: str = "exchange_manifests") -> Callable[..., dict[str, Any]]:
    """A Prefect flow from ``flows/exchange.py`` (default: one agreement's), loaded by path,
    with the terminal's lines named by stage.

    The pipeline's stages never import ``flows/``; only this command reaches for the flow.
    """
    # Local Dask workers inherit this and print only their warnings: their task lines reach
    # the Prefect API, and this terminal shows the run's own lines, named by stage.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    flow = flow_from_file("exchange", name)
    from manifest_exchange.orchestration.logs import name_lines_by_stage  # imports Prefect

    name_lines_by_stage()
    return flow


def flow_from_file(stem: str, name: str) -> Callable[..., dict[str, Any]]:
    """The flow ``name`` of ``flows/<stem>.py``, loaded by path."""
    path = FLOWS_DIR / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"manifest_exchange_flows.{stem}", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"flow file not found: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow: Callable[..., dict[str, Any]] = getattr(module, name)
    return flow


def require_store_credentials() -> None:
    """Fail before a flow starts: inside one, Prefect's engine would log the store's refusal
    with two tracebacks before the CLI could say what is missing."""
    if boto3.Session().get_credentials() is None:
        raise NoCredentialsError()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    require_store_credentials()
    report = load_exchange_flow()(
        source=args.source,
        state=args.state,
        partner=args.partner,
        agreement=args.agreement,
        options=RunOptions(
            runner=args.runner, dask_address=args.dask_address, batch_mb=args.batch_mb
        ),
    )
    print(format_report(report))
    if args.json:
        print(json.dumps(report, default=str))
    return 0


def _run_partners(args: argparse.Namespace, settings: Settings) -> int:
    require_store_credentials()
    result = load_exchange_flow("exchange_partners")(
        source=args.source,
        state=args.state,
        agreements=args.agreements,
        origin_country=args.origin,
    )
    for report in result["agreements"].values():
        print(format_report(report))
    if args.json:
        print(json.dumps(result, default=str))
    return 0


def format_report(report: dict[str, Any]) -> str:
    """A few lines for a person; the JSON report has everything."""
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in report["timings_s"].items())
    return "\n".join(
        [
            f"run {report['run_id']} ({report['agreement']} -> {report['partner']}): "
            f"{report['objects']['claimed']} new objects, {report['messages']} messages, "
            f"{report['travellers']} travellers",
            f"  published {report['published']}, out of scope {report['out_of_scope']}, "
            f"duplicates {report['duplicates']}, quarantined {report['quarantined_rows']} "
            f"(+{report['quarantined_messages']} messages quarantined)",
            f"  drops: {', '.join(report['drop_ids']) or 'none (nothing new)'} "
            f"({_batches(report['batches'])}); report: {report['report_uri']}",
            f"  timings: {timings}",
        ]
    )


def _batches(count: int) -> str:
    return f"{count} batch" if count == 1 else f"{count} batches"


def _partner_verify(args: argparse.Namespace, settings: Settings) -> int:
    result = verify_drops(
        make_client(settings.s3),
        S3Location.parse(args.location),
        schema_version=args.schema_version,
    )
    print(json.dumps(result.as_dict(), indent=2))
    return 0 if result.is_ok else 1


def _partner_fetch(args: argparse.Namespace, settings: Settings) -> int:
    try:
        fetched = fetch_drops(
            make_client(settings.s3),
            S3Location.parse(args.location),
            args.to,
            args.schema_version,
            since_sequence=args.since,
        )
    except SequenceError as error:
        print(f"error: {error}; nothing fetched", file=sys.stderr)
        return 1
    current = write_current_records(args.to, args.schema_version) if args.current else None
    result = {
        "fetched": fetched,
        "last_sequence": last_fetched_sequence(args.to, args.schema_version),
        "current_records": None if current is None else str(current),
        "to": str(args.to),
    }
    if args.ack:
        return _acknowledge_fetched(args, settings, result)
    print(json.dumps(result, indent=2))
    return 0


def _acknowledge_fetched(
    args: argparse.Namespace, settings: Settings, fetched: dict[str, Any]
) -> int:
    """``fetch --ack``: the fetch's result with ``partner ack --to <inbox>``'s beside it."""
    if not args.receipts:
        raise ValueError("--ack needs --receipts s3://bucket/prefix")
    acknowledgement = acknowledge_drops(
        make_client(settings.s3),
        partner=S3Location.parse(args.location),
        receipts=S3Location.parse(args.receipts),
        schema_version=args.schema_version,
        inbox=args.to,
    )
    print(json.dumps({**fetched, "receipts": acknowledgement.as_dict()}, indent=2))
    return 0 if acknowledgement.is_ok else 1


def _partner_ack(args: argparse.Namespace, settings: Settings) -> int:
    acknowledgement = acknowledge_drops(
        make_client(settings.s3),
        partner=S3Location.parse(args.location),
        receipts=S3Location.parse(args.receipts),
        schema_version=args.schema_version,
        inbox=args.to,
        drop_ids=args.drop_ids,
    )
    print(json.dumps(acknowledgement.as_dict(), indent=2))
    return 0 if acknowledgement.is_ok else 1


def console_main() -> None:
    """The ``manifest-exchange`` command: :func:`main`, then exit with its code.

    ``audit`` ends with ``os._exit`` once its report is flushed: a native thread pool torn
    down at interpreter exit aborted it after a correct report (decision 0027).
    """
    code = main()
    if sys.argv[1:2] == ["audit"]:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
