"""``make ui``: a local Prefect server, work pool, worker and the project's deployments.

Everything runs on loopback and is recorded in ``<home>/ui/processes.json`` so that
``make ui-down`` stops exactly what was started, by PID. Configuration is what production
would use: S3 credentials and the HMAC key in blocks (encrypted in Prefect's database),
locations and the schedule interval in variables, deployments from ``prefect.yaml``.
The worker gets no AWS or HMAC variables, so a run can only reach the store through blocks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import yaml

from manifest_exchange.local.stack import LOOPBACK, EmbeddedStack
from manifest_exchange.orchestration.settings import (
    HMAC_KEY_BLOCK,
    PIPELINE_CREDENTIALS_BLOCK,
    RETENTION_CREDENTIALS_BLOCK,
)

WORK_POOL = "manifest-exchange"
EXCHANGE_DEPLOYMENT = "exchange_manifests/tw-jp-exchange"
LISTENER_DEPLOYMENT = "listen_for_manifests/tw-jp-listener"
WEBHOOK_BLOCK = "mx-failure-webhook"
FAILURE_AUTOMATION = "mx-flow-run-failed"
LISTENER_SILENT_AUTOMATION = "mx-listener-silent"
LISTENER_BEHIND_AUTOMATION = "mx-listener-behind"
# The listener beats every 5 s; a minute without one means it stopped or hangs.
LISTENER_SILENCE_S = 60
# Package loggers whose records should reach the UI beside Prefect's own.
EXTRA_LOGGERS = "manifest_exchange"
_SECRET_ENV_PREFIXES = ("AWS_", "MX_HMAC_")


class LocalPrefectError(RuntimeError):
    """A local Prefect service could not be started or configured."""


@dataclass
class Processes:
    """What ``up`` started: PIDs and where to reach them."""

    api_url: str
    server_pid: int
    worker_pid: int | None = None
    alerts_pid: int | None = None
    alerts_url: str | None = None


@dataclass(frozen=True)
class Locations:
    """The exchange's locations for one agreement, stored as Prefect variables."""

    source: str = "s3://airport-manifests/paxlst"
    state: str = "s3://exchange-state/tw-jp"
    partner: str = "s3://partner-drops/tw-jp"
    # exchange_partners keeps each agreement's state under <state_root>/<agreement>.
    state_root: str = "s3://exchange-state"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _prefect_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


class LocalPrefect:
    """Start, configure and stop the local Prefect services of one project folder.

    Args:
        home: the project's local folder (``.local``); state goes to ``home/ui``.
        project_dir: where ``prefect.yaml`` and ``flows/`` are.
        port: the API and UI port (4200 as Prefect's default).
        serve_ui: serve the web UI (tests switch it off to start faster).
    """

    def __init__(
        self, home: Path, project_dir: Path, port: int = 4200, *, serve_ui: bool = True
    ) -> None:
        self.home = home
        self.project_dir = project_dir
        self.root = home / "ui"
        self.port = port
        self.serve_ui = serve_ui
        self.processes_file = self.root / "processes.json"
        self.alerts_file = self.root / "alerts.jsonl"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api"

    def environment(self, **extra: str) -> dict[str, str]:
        """The process environment for Prefect commands, without the store's secrets."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_SECRET_ENV_PREFIXES)
        }
        env.update(
            PREFECT_API_URL=self.api_url,
            PREFECT_HOME=str(self.home / "prefect"),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_EXTRA_LOGGERS=EXTRA_LOGGERS,
            GX_ANALYTICS_ENABLED="False",
            MX_HOME=str(self.home),
        )
        env.update(extra)
        return env

    # -- lifecycle -----------------------------------------------------------------------------

    def read_processes(self) -> Processes | None:
        if not self.processes_file.is_file():
            return None
        return Processes(**json.loads(self.processes_file.read_text()))

    def _save(self, processes: Processes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.processes_file.write_text(json.dumps(asdict(processes), indent=1))

    def _spawn(self, name: str, command: list[str], env: Mapping[str, str]) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            command,
            cwd=self.project_dir,
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so down() stops its children too
        )
        return process.pid

    def start_server(self, timeout_s: float = 180.0) -> Processes:
        """Start the API server (SQLite under ``home/prefect``) and wait until it answers."""
        if _healthy(self.api_url):
            raise LocalPrefectError(f"something already answers on {self.api_url}")
        command = _prefect_command("server", "start", "--host", LOOPBACK, "--port", str(self.port))
        if not self.serve_ui:
            command.append("--no-ui")
        pid = self._spawn("server", command, self.environment())
        processes = Processes(api_url=self.api_url, server_pid=pid)
        self._save(processes)
        deadline = time.monotonic() + timeout_s
        while not _healthy(self.api_url):
            if not _is_alive(pid):
                raise LocalPrefectError(f"the Prefect server exited; see {self.root}/server.log")
            if time.monotonic() > deadline:
                raise LocalPrefectError(f"the Prefect server did not answer in {timeout_s:.0f}s")
            time.sleep(0.5)
        return processes

    def start_alert_receiver(self, processes: Processes) -> str:
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "manifest_exchange.local.alert_receiver",
            "--port",
            str(port),
            "--out",
            str(self.alerts_file),
        ]
        processes.alerts_pid = self._spawn("alerts", command, self.environment())
        processes.alerts_url = f"http://{LOOPBACK}:{port}/alerts"
        self._save(processes)
        return processes.alerts_url

    def start_worker(self, processes: Processes, *, limit: int = 4) -> int:
        command = _prefect_command(
            "worker", "start", "--pool", WORK_POOL, "--type", "process", "--limit", str(limit)
        )
        # Look ahead a little so the run's process is up when its scheduled time comes.
        env = self.environment(
            PREFECT_WORKER_QUERY_SECONDS="5", PREFECT_WORKER_PREFETCH_SECONDS="20"
        )
        processes.worker_pid = self._spawn("worker", command, env)
        self._save(processes)
        return processes.worker_pid

    def deploy(self) -> None:
        """``prefect deploy --all`` from the project folder (reads ``prefect.yaml``)."""
        completed = subprocess.run(
            _prefect_command("--no-prompt", "deploy", "--all"),
            cwd=self.project_dir,
            env=self.environment(),
            capture_output=True,
            text=True,
            check=False,
        )
        (self.root / "deploy.log").write_text(completed.stdout + completed.stderr)
        if completed.returncode != 0:
            raise LocalPrefectError(
                f"prefect deploy failed ({completed.returncode}); see {self.root}/deploy.log:\n"
                + (completed.stdout + completed.stderr)[-3000:]
            )

    def up(
        self,
        stack: EmbeddedStack,
        *,
        locations: Locations | None = None,
        interval_s: int = 60,
        retain_days: float = 30,
        webhook_url: str | None = None,
        schedules_active: bool = True,
        listener: bool = True,
    ) -> Processes:
        """Store, server, alert receiver, configuration, deployments, worker; in that order.

        Without ``webhook_url`` a local receiver takes the alerts (``home/ui/alerts.jsonl``).
        With ``schedules_active=False`` deployments only run when triggered (tests); with
        ``listener=False`` the landing listener is not started.
        If a step fails, what was started is stopped again.
        """
        if self.read_processes() is not None:
            self.down()
        stack.up()
        processes = self.start_server()
        try:
            url = webhook_url or self.start_alert_receiver(processes)
            configure(
                self.api_url,
                stack,
                locations=locations or Locations(),
                retain_days=retain_days,
                webhook_url=url,
            )
            self.deploy()
            set_schedules(self.api_url, interval_s, active=schedules_active)
            self.start_worker(processes)
            if listener:
                start_listener(self.api_url)
        except BaseException:
            self.down()
            raise
        return processes

    def down(self, timeout_s: float = 20.0) -> list[str]:
        """Stop every process ``up`` recorded (worker first, server last); return their names."""
        processes = self.read_processes()
        if processes is None:
            return []
        stopped = []
        for name, pid in (
            ("worker", processes.worker_pid),
            ("alerts", processes.alerts_pid),
            ("server", processes.server_pid),
        ):
            if pid is not None and _stop_group(pid, timeout_s):
                stopped.append(name)
        self.processes_file.unlink(missing_ok=True)
        return stopped


def configure(
    api_url: str,
    stack: EmbeddedStack,
    *,
    locations: Locations,
    retain_days: float,
    webhook_url: str,
) -> None:
    """Blocks, variables, the work pool and the failure automation, idempotently."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        _save_blocks(stack, webhook_url)
        _set_variables(locations, retain_days, stack.filer_address())
        _ensure_work_pool()
        _ensure_failure_automation()
        _ensure_listener_automations()


def set_schedules(api_url: str, exchange_interval_s: int, *, active: bool = True) -> None:
    """Put the exchange on an every-``exchange_interval_s`` schedule (prefect.yaml says 60),
    and switch every deployment's schedules on or off."""
    import datetime as dt

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkPoolFilter, WorkPoolFilterName
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if exchange_interval_s <= 0:
        raise ValueError("the exchange interval must be a positive number of seconds")
    interval = IntervalSchedule(interval=dt.timedelta(seconds=exchange_interval_s))
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        get_client(sync_client=True) as client,
    ):
        exchange = client.read_deployment_by_name(EXCHANGE_DEPLOYMENT)
        pool = WorkPoolFilter(name=WorkPoolFilterName(any_=[WORK_POOL]))
        for deployment in client.read_deployments(work_pool_filter=pool):
            for schedule in client.read_deployment_schedules(deployment.id):
                client.update_deployment_schedule(
                    deployment.id,
                    schedule.id,
                    active=active,
                    schedule=interval if deployment.id == exchange.id else None,
                )


def _save_blocks(stack: EmbeddedStack, webhook_url: str) -> None:
    import base64

    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.blocks.system import Secret
    from prefect_aws import AwsClientParameters, AwsCredentials
    from pydantic import SecretStr

    for block_name, identity in (
        (PIPELINE_CREDENTIALS_BLOCK, "pipeline"),
        (RETENTION_CREDENTIALS_BLOCK, "retention"),
    ):
        s3 = stack.s3_settings(identity)
        AwsCredentials(
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=SecretStr(s3.secret_access_key or ""),
            region_name=s3.region,
            aws_client_parameters=AwsClientParameters(endpoint_url=s3.endpoint_url),
        ).save(block_name, overwrite=True)
    key = stack.hmac_key()
    encoded = base64.b64encode(key.secret).decode("ascii")
    partner_keys = {k.key_id: base64.b64encode(k.secret).decode() for k in stack.partner_keys()}
    # A Secret block holds JSON too: the default key and the keys agreements name.
    secret_value: Any = {"key_id": key.key_id, "key": encoded, "partner_keys": partner_keys}
    Secret(value=secret_value).save(HMAC_KEY_BLOCK, overwrite=True)
    webhook = CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # optional fields
        name="exchange alerts",
        url=webhook_url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
    )
    webhook.save(WEBHOOK_BLOCK, overwrite=True)


def _set_variables(locations: Locations, retain_days: float, filer: str) -> None:
    from prefect.variables import Variable

    values: dict[str, Any] = {
        "mx_filer": filer,
        "mx_tw_jp_source": locations.source,
        "mx_tw_jp_state": locations.state,
        "mx_tw_jp_partner": locations.partner,
        "mx_state_root": locations.state_root,
        "mx_retention_days": retain_days,
    }
    for name, value in values.items():
        Variable.set(name, value, overwrite=True)


def _ensure_work_pool() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(WORK_POOL)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=WORK_POOL,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="Runs the manifest exchange flows as local processes",
                )
            )


def _ensure_failure_automation() -> None:
    from prefect.automations import Automation, EventTrigger, Posture
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification

    with contextlib.suppress(ValueError):  # ValueError: not created yet
        cast(Automation, Automation.read(name=FAILURE_AUTOMATION)).delete()
    webhook = cast(
        CustomWebhookNotificationBlock, CustomWebhookNotificationBlock.load(WEBHOOK_BLOCK)
    )
    Automation(
        name=FAILURE_AUTOMATION,
        description="Tell the team when any exchange flow run fails or crashes",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=cast(UUID, webhook._block_document_id),
                subject=(
                    "Flow run {{ flow_run.name }} of {{ flow.name }} "
                    "ended {{ flow_run.state.name }}"
                ),
                body=(
                    "Flow run {{ flow_run.name }} ({{ flow_run.id }}) of {{ flow.name }} "
                    "ended {{ flow_run.state.name }}: {{ flow_run.state.message }}"
                ),
            )
        ],
    ).create()


def _ensure_listener_automations() -> None:
    """Alert when the listener stops beating, and when a landing waits too long."""
    import datetime as dt

    from prefect.automations import Automation, EventTrigger, Posture
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import SendNotification

    webhook = cast(
        CustomWebhookNotificationBlock, CustomWebhookNotificationBlock.load(WEBHOOK_BLOCK)
    )
    block = cast(UUID, webhook._block_document_id)
    listener: dict[str, str | list[str]] = {"prefect.resource.id": "manifest-exchange.listener.*"}
    wanted = {
        LISTENER_SILENT_AUTOMATION: (
            "Tell the team when the landing listener has sent no heartbeat for a minute",
            EventTrigger(
                expect={"manifest-exchange.listener.heartbeat"},
                match=listener,
                posture=Posture.Proactive,
                threshold=1,
                within=dt.timedelta(seconds=LISTENER_SILENCE_S),
            ),
            SendNotification(
                block_document_id=block,
                subject="The landing listener is silent",
                body=(
                    f"No heartbeat from the landing listener for {LISTENER_SILENCE_S} s: "
                    "landings now wait for the every-minute sweep. See docs/operations.md, "
                    "'The listener is silent or behind'."
                ),
            ),
        ),
        LISTENER_BEHIND_AUTOMATION: (
            "Tell the team when a landed manifest waits longer than the listener allows",
            EventTrigger(
                expect={"manifest-exchange.listener.behind"},
                match=listener,
                posture=Posture.Reactive,
                threshold=1,
            ),
            SendNotification(
                block_document_id=block,
                subject="The landing listener is behind",
                body=(
                    "A landed manifest has waited {{ event.payload.lag_s }} s for the "
                    "exchange ({{ event.payload.waiting }} waiting). See docs/operations.md, "
                    "'The listener is silent or behind'."
                ),
            ),
        ),
    }
    for name, (description, trigger, action) in wanted.items():
        with contextlib.suppress(ValueError):  # ValueError: not created yet
            cast(Automation, Automation.read(name=name)).delete()
        Automation(name=name, description=description, trigger=trigger, actions=[action]).create()


def start_listener(api_url: str) -> str:
    """Start the listener deployment's long-running run; its flow run id."""
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        run = run_deployment(LISTENER_DEPLOYMENT, timeout=0)
    assert isinstance(run, FlowRun)  # called outside an event loop: the sync variant
    return str(run.id)


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as answer:  # noqa: S310
            return bool(answer.status == 200)
    except OSError:
        return False


def _is_alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        finished = 0  # not our child (started by an earlier command): ask the kernel
    if finished == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_ours(pid: int) -> bool:
    """The PID still runs one of our commands (not an unrelated process that reused it)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"prefect" in cmdline or b"manifest_exchange" in cmdline


def _stop_group(pid: int, timeout_s: float) -> bool:
    """SIGTERM the process group led by ``pid``, SIGKILL it if it lingers; False if gone."""
    if not _is_ours(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while _is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _is_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return True


def deployments_of(project_dir: Path) -> list[str]:
    """The ``flow/deployment`` names ``prefect.yaml`` in ``project_dir`` declares, in order."""
    config = yaml.safe_load((project_dir / "prefect.yaml").read_text(encoding="utf-8"))
    return [
        f"{deployment['entrypoint'].rsplit(':', 1)[1]}/{deployment['name']}"
        for deployment in config["deployments"]
    ]
