"""The landing listener as a long-running Prefect flow: ``listen_for_manifests``.

It follows the store's change log under the source prefix and, a short linger after a
manifest lands, runs ``exchange_manifests`` over the batch's folder as a subflow in its own
process, so no worker poll or process start stands between a landing and its drop. The claims,
ledger, publish lock and audit are the exchange's own; the every-minute deployment stays as the
sweep that catches anything an event missed.

Events (no personal data; object keys name carriers, flights and dates only):
``manifest-exchange.manifest.landed`` per new object, ``manifest-exchange.drop.published`` per
batch that published (with its counts, related to the run that published it),
``manifest-exchange.listener.heartbeat`` every few seconds and
``manifest-exchange.listener.behind`` when the oldest waiting landing is older than
``behind_after_s``; the automations in ``local/prefect_server.py`` alert on silence and on
``behind``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event
from prefect.runtime import flow_run

from manifest_exchange.agreements.terms import DEFAULT_AGREEMENT, load_agreement
from manifest_exchange.ingest.landings import FilerChangeLog, Landing, listed_landings
from manifest_exchange.ingest.listener import LandingListener, ListenerStatus, batch_prefix
from manifest_exchange.orchestration.parameters import RunOptions
from manifest_exchange.orchestration.settings import run_settings
from manifest_exchange.runs import batches
from manifest_exchange.storage.s3 import S3Location, make_client

logging.getLogger("manifest_exchange").setLevel(logging.INFO)

HEARTBEAT_EVERY_S = 5.0


def _exchange_flow() -> Any:
    # flows/ is not a package: prefect.yaml and the CLI load its files by path.
    from manifest_exchange.cli import flow_from_file

    return flow_from_file("exchange", "exchange_manifests")


@flow(name="listen_for_manifests", log_prints=False)
def listen_for_manifests(
    source: str,
    state: str,
    filer: str,
    partner: str | None = None,
    agreement: str = DEFAULT_AGREEMENT,
    linger_s: float = 0.5,
    max_landings: int = 500,
    behind_after_s: float = 30.0,
    run_for_s: float | None = None,
    options: RunOptions = RunOptions(),  # noqa: B008 - immutable, and Prefect needs the default
) -> dict[str, Any]:
    """Run the exchange within seconds of each landing under ``source``.

    Args:
        source: ``s3://bucket/prefix`` watched for new manifests.
        state: the exchange's state location; the listener's checkpoint is kept there too.
        filer: the SeaweedFS filer's ``host:port``, whose change log is followed.
        partner, agreement, options: as for ``exchange_manifests``.
        linger_s: how long a batch waits for more landings after its first.
        max_landings: a batch this large is run at once.
        behind_after_s: a landing waiting longer than this raises ``listener.behind``.
        run_for_s: stop after this long (tests, benches); None listens until cancelled.
    """
    logger = get_run_logger()
    settings = run_settings(options.s3_credentials_block, options.hmac_key_block)
    client = make_client(settings.s3)
    watched = S3Location.parse(source)
    state_location = S3Location.parse(state)
    exchange = _exchange_flow()
    listener_resource = {
        "prefect.resource.id": f"manifest-exchange.listener.{watched.bucket}.{watched.prefix}",
        "prefect.resource.name": f"listener {watched}",
    }
    runs: list[dict[str, Any]] = []

    def on_landing(landing: Landing) -> None:
        emit_event(
            "manifest-exchange.manifest.landed",
            resource={
                "prefect.resource.id": f"manifest-exchange.object.{landing.bucket}/{landing.key}",
                "prefect.resource.name": landing.key.rsplit("/", 1)[-1],
            },
            related=[{**listener_resource, "prefect.resource.role": "listener"}],
            payload={"bucket": landing.bucket, "key": landing.key, "size": landing.size},
        )

    def handle(batch: list[Landing]) -> dict[str, Any]:
        prefix = batch_prefix(batch)
        report: dict[str, Any] = exchange(
            source=f"s3://{watched.bucket}/{prefix}",
            state=state,
            partner=partner,
            agreement=agreement,
            options=options,
        )
        runs.append({k: report[k] for k in ("run_id", "published", "drop_ids")})
        if report["drop_ids"]:
            emit_event(
                "manifest-exchange.drop.published",
                resource={
                    "prefect.resource.id": f"manifest-exchange.partner.{report['partner']}",
                    "prefect.resource.name": str(report["partner"]),
                },
                related=[
                    {
                        "prefect.resource.id": f"prefect.flow-run.{report['run_id']}",
                        "prefect.resource.role": "flow-run",
                    },
                    {**listener_resource, "prefect.resource.role": "listener"},
                ],
                payload={
                    "drop_ids": report["drop_ids"],
                    "published": report["published"],
                    "landings": len(batch),
                    "prefix": prefix,
                },
            )
        logger.info(
            "%d landings under %s: run %s published %d",
            len(batch),
            prefix,
            report["run_id"],
            report["published"],
        )
        return report

    last_beat = 0.0

    def on_tick(status: ListenerStatus) -> None:
        nonlocal last_beat
        now = time.monotonic()
        if now - last_beat < HEARTBEAT_EVERY_S:
            return
        last_beat = now
        lag_s = status.lag_s(time.time_ns())
        payload = {
            "lag_s": round(lag_s, 3),
            "waiting": status.waiting,
            "landings": status.landings,
            "batches": status.batches,
        }
        emit_event(
            "manifest-exchange.listener.heartbeat", resource=listener_resource, payload=payload
        )
        if lag_s > behind_after_s:
            emit_event(
                "manifest-exchange.listener.behind", resource=listener_resource, payload=payload
            )

    # The runs share this process: its parser and validator are set up once, before the first
    # landing rather than in its latency.
    batches.warm_up(settings.s3, load_agreement(agreement)).join()
    started = time.monotonic()
    listener = LandingListener(
        client,
        state_location,
        FilerChangeLog(filer, watched).follow,
        handle,
        linger_s=linger_s,
        max_landings=max_landings,
        on_landing=on_landing,
        on_tick=on_tick,
        catch_up=lambda since_ns: listed_landings(client, watched, since_ns),
    )
    logger.info("listening under %s (filer %s), linger %.1fs", watched, filer, linger_s)
    status = listener.run(
        until=lambda: run_for_s is not None and time.monotonic() - started >= run_for_s
    )
    return {
        "listener_run_id": flow_run.get_id(),
        "landings": status.landings,
        "repeats": status.repeats,
        "batches": status.batches,
        "runs": runs,
    }
