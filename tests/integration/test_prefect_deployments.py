"""The deployments of prefect.yaml on a real Prefect server, worker and store, as ``make ui``.

Starts ``prefect server start`` (not the test harness), deploys with ``prefect deploy --all``,
triggers deployments through the API the way the UI does, and checks what an operator sees:
artifacts, logs (including the package's own loggers, and no personal data) and alerts.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings

from exchange_support import make_corpus
from manifest_exchange.agreements.terms import load_agreement
from manifest_exchange.local.alert_receiver import read_alerts
from manifest_exchange.local.commands import upload_corpus
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.local.prefect_server import LocalPrefect, Locations, free_port
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
    reader_identity,
)
from manifest_exchange.paths import PROJECT_ROOT
from manifest_exchange.publish.partner import verify_drops
from manifest_exchange.storage.s3 import S3Location, iter_objects

pytestmark = pytest.mark.integration


class Deployed:
    def __init__(self, stack: EmbeddedStack, local: LocalPrefect, name: str) -> None:
        self.stack = stack
        self.local = local
        self.source = S3Location(SOURCE_BUCKET, name)
        self.partner = S3Location(PARTNER_BUCKET, name)
        self.locations = Locations(
            source=str(self.source),
            state=f"s3://{STATE_BUCKET}/{name}",
            partner=str(self.partner),
        )

    def run(self, deployment: str, **parameters: Any) -> FlowRun:
        with temporary_settings(updates={PREFECT_API_URL: self.local.api_url}):
            run = run_deployment(deployment, parameters=parameters, timeout=600)
        assert isinstance(run, FlowRun)
        return run

    def artifacts(self, run: FlowRun) -> dict[str, Any]:
        with (
            temporary_settings(updates={PREFECT_API_URL: self.local.api_url}),
            get_client(sync_client=True) as client,
        ):
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
            )
        return {artifact.key: artifact for artifact in found if artifact.key}

    def logs(self, run: FlowRun) -> list[tuple[str, str]]:
        with (
            temporary_settings(updates={PREFECT_API_URL: self.local.api_url}),
            get_client(sync_client=True) as client,
        ):
            found = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id]))
            )
        return [(log.name, log.message) for log in found]

    def upload(self, corpus: Corpus, prefix: str = "") -> None:
        where = S3Location(self.source.bucket, self.source.key(prefix))
        upload_corpus(corpus, where, self.stack.client("loader"))


@pytest.fixture(scope="module")
def deployed(embedded_stack: EmbeddedStack) -> Iterator[Deployed]:
    # With the UI, as ``make ui`` starts it: the artifacts' links lead to its pages.
    local = LocalPrefect(embedded_stack.root.parent, PROJECT_ROOT, port=free_port())
    setup = Deployed(embedded_stack, local, f"ui{uuid.uuid4().hex[:8]}")
    processes = local.up(
        embedded_stack,
        locations=setup.locations,
        retain_days=0,
        schedules_active=False,  # runs only when a test triggers them
        listener=False,  # started by the listener's own test, last
    )
    try:
        yield setup
    finally:
        stopped = local.down()
        assert set(stopped) == {"server", "worker", "alerts"}
        for pid in (processes.server_pid, processes.worker_pid, processes.alerts_pid):
            assert pid is not None
            assert not _running(pid)


def _state(run: FlowRun) -> str:
    return run.state.type.value if run.state else "NONE"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _personal_values(corpus: Corpus) -> set[str]:
    values = set()
    for flight in corpus.flights:
        for traveller in (*flight.passengers, *flight.crew):
            values.add(traveller.doc_number)
            values.add(traveller.date_of_birth.isoformat())
            values.add(traveller.surname)
    return {v for v in values if len(v) >= 4}


def _leaks(texts: list[str], personal: set[str]) -> list[str]:
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(personal))) + r")\b")
    return [match for text in texts for match in pattern.findall(text)]


def test_exchange_deployment_publishes_and_shows_the_run(deployed: Deployed) -> None:
    corpus = make_corpus(flights=4, seed=41, defect_rate=0.05)
    deployed.upload(corpus)

    run = deployed.run("exchange_manifests/tw-jp-exchange")

    assert _state(run) == "COMPLETED"
    verified = verify_drops(deployed.stack.client("partner"), deployed.partner)
    assert verified.is_ok
    assert len(verified.drops) == 1
    artifacts = deployed.artifacts(run)
    assert {
        "exchange-run-report",
        "exchange-progress",
        "exchange-data-quality",
        "exchange-quarantine",
        "exchange-quarantine-items",
    } <= set(artifacts)
    report = artifacts["exchange-run-report"].data
    assert verified.drops[0].drop_id in report
    assert f"{verified.drops[0].rows} records" in report
    assert artifacts["exchange-progress"].data == pytest.approx(100.0)
    items = json.loads(artifacts["exchange-quarantine-items"].data)
    assert items
    assert all(next(iter(item)) == "reasons" and item["reasons"] for item in items)
    linked = _follow_every_link(deployed, artifacts)
    logs = deployed.logs(run)
    assert any(name.startswith("manifest_exchange") for name, _ in logs), "package logs missing"
    assert any(name.startswith("prefect.task_runs") for name, _ in logs)
    texts = [message for _, message in logs] + [str(a.data) for a in artifacts.values()]
    texts += [str(a.description) for a in artifacts.values()] + linked
    assert not _leaks(texts, _personal_values(corpus))


def _follow_every_link(deployed: Deployed, artifacts: dict[str, Any]) -> list[str]:
    """Every link a person can click in the run's artifacts answers 200 from the Prefect
    server or the store, and nowhere else; a link to an artifact names one that exists.
    Returns what the store's links serve (the quarantine items' CSV)."""
    texts = [str(a.data) + " " + str(a.description or "") for a in artifacts.values()]
    links = {url for text in texts for url in re.findall(r"https?://[^\s)\"'|]+", text)}
    server = urlsplit(deployed.local.api_url).netloc
    store = urlsplit(deployed.stack.s3_settings("pipeline").endpoint_url).netloc
    linked_artifacts = {url.rsplit("/", 1)[1] for url in links if "/artifacts/artifact/" in url}
    # Data quality -> quarantine -> its items, and the items' full keys in the store.
    assert len(linked_artifacts) >= 3
    assert any(urlsplit(url).netloc == store for url in links)
    served = []
    for url in sorted(links):
        assert urlsplit(url).netloc in {server, store}, url
        # As a browser asks: the UI answers its page routes with its app for HTML requests.
        answer = httpx.get(url, headers={"Accept": "text/html,*/*"}, timeout=30)
        assert answer.status_code == 200, (url, answer.status_code)
        if urlsplit(url).netloc == store:
            served.append(answer.text)
    ids = {str(a.id) for a in artifacts.values()}
    assert linked_artifacts <= ids
    assert any("reasons" in text for text in served)  # the CSV's header
    return served


def test_partners_deployment_takes_each_partner_key_from_the_block(deployed: Deployed) -> None:
    # The worker has no HMAC variables: Australia's key can only come from the block.
    deployed.upload(make_corpus(flights=8, seed=33), prefix="partners")
    australia = load_agreement("tw-au")

    run = deployed.run(
        "exchange_partners/partners-exchange",
        source=str(S3Location(SOURCE_BUCKET, deployed.source.key("partners"))),
        state=f"{deployed.locations.state}-partners",
        agreements=[australia.name],
    )

    assert _state(run) == "COMPLETED"
    reader = deployed.stack.client(reader_identity(australia.partner_bucket))
    verified = verify_drops(reader, S3Location.parse(australia.partner_location))
    assert verified.is_ok
    assert verified.drops
    summary = deployed.artifacts(run)["exchange-partners"].data
    assert f"| tw-au | {australia.partner_location} |" in summary


def test_backfill_takes_only_its_prefix(deployed: Deployed) -> None:
    deployed.upload(make_corpus(flights=2, seed=42), prefix="backfill-2026-12-02")
    deployed.upload(make_corpus(flights=1, seed=43), prefix="elsewhere")

    run = deployed.run("backfill_manifests/tw-jp-backfill", prefix="backfill-2026-12-02")

    assert _state(run) == "COMPLETED"
    report = deployed.artifacts(run)["exchange-run-report"].data
    claimed = len(
        list(
            iter_objects(
                deployed.stack.client("loader"),
                S3Location(SOURCE_BUCKET, deployed.source.key("backfill-2026-12-02")),
            )
        )
    )
    assert f"{claimed} claimed" in report
    assert len(verify_drops(deployed.stack.client("partner"), deployed.partner).drops) >= 1


def test_reconcile_then_retention_deployments(deployed: Deployed) -> None:
    deployed.upload(make_corpus(flights=1, seed=44), prefix="tidy")
    deployed.run("exchange_manifests/tw-jp-exchange")

    reconciled = deployed.run("reconcile_exchange/tw-jp-reconcile")
    purged = deployed.run("purge_retention/tw-jp-retention")

    assert _state(reconciled) == "COMPLETED"
    assert "consistent" in deployed.artifacts(reconciled)["reconciliation"].data
    assert _state(purged) == "COMPLETED"
    assert "retention-purge" in deployed.artifacts(purged)
    # retain_days is 0 here: every processed manifest is gone, the partner's drops are not.
    assert not list(iter_objects(deployed.stack.client("retention"), deployed.source))
    assert verify_drops(deployed.stack.client("partner"), deployed.partner).is_ok


def test_a_failed_run_sends_an_alert(deployed: Deployed) -> None:
    run = deployed.run("exchange_manifests/tw-jp-exchange", agreement="no-such-agreement")

    assert _state(run) == "FAILED"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        alerts = [a for a in read_alerts(deployed.local.alerts_file) if str(run.id) in str(a)]
        if alerts:
            break
        time.sleep(1)
    assert alerts, "the failure automation did not call the webhook"
    assert "no-such-agreement" in alerts[0]["body"]["body"]


def _events(deployed: Deployed, prefix: str) -> list[Any]:
    from prefect.events.filters import EventFilter, EventNameFilter

    with (
        temporary_settings(updates={PREFECT_API_URL: deployed.local.api_url}),
        get_client(sync_client=True) as client,
    ):
        page = client.read_events(
            filter=EventFilter(event=EventNameFilter(prefix=[prefix])), limit=50
        )
        events = list(page.events)
        while page.next_page is not None:
            page = client.read_events_page(str(page.next_page))
            events += page.events
    return events


def test_the_listener_deployment_publishes_within_seconds_and_tells_the_ui(
    deployed: Deployed,
) -> None:
    """Last in the module: ``make ui`` starts the listener; here it is started by hand so the
    tests above trigger their own runs without it claiming their objects."""
    from prefect.automations import Automation

    from manifest_exchange.local.prefect_server import (
        LISTENER_BEHIND_AUTOMATION,
        LISTENER_SILENT_AUTOMATION,
        start_listener,
    )

    with temporary_settings(updates={PREFECT_API_URL: deployed.local.api_url}):
        for name in (LISTENER_SILENT_AUTOMATION, LISTENER_BEHIND_AUTOMATION):
            assert Automation.read(name=name)
    before = {
        d.drop_id for d in verify_drops(deployed.stack.client("partner"), deployed.partner).drops
    }
    listener_id = start_listener(deployed.local.api_url)
    try:
        deadline = time.monotonic() + 120
        while not _events(deployed, "manifest-exchange.listener.heartbeat"):
            assert time.monotonic() < deadline, "the listener never beat"
            time.sleep(1)
        corpus = make_corpus(flights=2, seed=47)  # a seed no other test here uses
        landed = time.monotonic()
        deployed.upload(corpus, "listened")
        new: set[str] = set()
        while not new:
            assert time.monotonic() - landed < 60, "no drop from the listener within a minute"
            time.sleep(0.5)
            drops = verify_drops(deployed.stack.client("partner"), deployed.partner).drops
            new = {d.drop_id for d in drops} - before
        published_after_s = time.monotonic() - landed
        expected_keys = {deployed.source.key("listened", o.key) for o in corpus.objects}
        # The server stores events in batches (every 5 s by default): wait for them.
        deadline = time.monotonic() + 30
        while True:
            landed_events = _events(deployed, "manifest-exchange.manifest.landed")
            published_events = [
                e
                for e in _events(deployed, "manifest-exchange.drop.published")
                if set(e.payload["drop_ids"]) & new
            ]
            keys = {e.payload["key"] for e in landed_events}
            if (expected_keys <= keys and published_events) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert expected_keys <= keys
        (published,) = published_events
        run_ids = [r.id for r in published.related if r.role == "flow-run"]
        assert run_ids
        with (
            temporary_settings(updates={PREFECT_API_URL: deployed.local.api_url}),
            get_client(sync_client=True) as client,
        ):
            child = client.read_flow_run(uuid.UUID(run_ids[0].removeprefix("prefect.flow-run.")))
            parent_task = client.read_task_run(child.parent_task_run_id)
        assert str(parent_task.flow_run_id) == listener_id
        assert published_after_s < 30
    finally:
        with (
            temporary_settings(updates={PREFECT_API_URL: deployed.local.api_url}),
            get_client(sync_client=True) as client,
        ):
            from prefect.states import Cancelling

            client.set_flow_run_state(uuid.UUID(listener_id), Cancelling(), force=True)
