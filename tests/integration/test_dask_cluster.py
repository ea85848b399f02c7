"""The exchange on a Dask cluster started by hand, with the commands of docs/operations.md.

A real ``dask scheduler`` and two ``dask worker`` processes on loopback in place of the
guide's private addresses, with no Prefect settings and no credentials in their
environment. The flow runs on a temporary Prefect server, as ``manifest-exchange run`` does
without ``PREFECT_API_URL``; Prefect's test harness makes the session's server that temporary
server, so the flow reports to the session's Prefect API without naming it in its settings.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from distributed import Client
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_SERVER_DATABASE_CONNECTION_URL,
    PREFECT_SERVER_EPHEMERAL_ENABLED,
    get_current_settings,
    temporary_settings,
)

from exchange_support import Exchange, make_corpus
from manifest_exchange.local.prefect_server import free_port
from manifest_exchange.publish.partner import verify_drops

pytestmark = pytest.mark.integration

OPERATIONS_DOC = Path(__file__).parents[2] / "docs" / "operations.md"
CLUSTER_SECTION = "### Checking batches on a Dask cluster"
# The guide's private addresses, and the ports it names.
SCHEDULER_HOST, WORKER_HOST = "10.0.0.5", "10.0.0.6"
SCHEDULER_PORT, SCHEDULER_HTTP_PORT = "8786", "8787"
LOOPBACK = "127.0.0.1"
DASK = Path(sys.executable).with_name("dask")
WORKER_COUNT = 2
# A few small batches: several per worker, still quick.
SMALL_BATCH_MB = 0.05
# What Prefect logs, and runs, when a process starts a temporary server of its own.
TEMPORARY_SERVER_LOG = "Starting temporary server"
PREFECT_SERVER_APP = "prefect.server.api.server:create_app"


def documented_command(program: str) -> list[str]:
    """The guide's ``dask <program>`` command of its Dask cluster section, as arguments."""
    section = OPERATIONS_DOC.read_text().split(CLUSTER_SECTION, 1)[1].split("\n## ", 1)[0]
    joined = section.replace("\\\n", " ")
    line = next(line for line in joined.splitlines() if line.startswith(f"dask {program} "))
    return shlex.split(line)


def on_loopback(command: list[str], ports: dict[str, int]) -> list[str]:
    """``command`` with the guide's hosts on loopback and its fixed ports on free ones."""
    arguments = []
    for argument in command[1:]:
        for host in (SCHEDULER_HOST, WORKER_HOST):
            argument = argument.replace(host, LOOPBACK)
        for port, free in ports.items():
            argument = re.sub(rf"(^|:){port}$", rf"\g<1>{free}", argument)
        arguments.append(argument)
    return [str(DASK), *arguments]


@dataclass
class HandStartedCluster:
    """The processes of a scheduler and its workers, and where their output went."""

    address: str
    logs: list[Path]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def all_processes(self) -> list[psutil.Process]:
        """Every process the cluster runs: the commands, nannies, workers and their children."""
        found = []
        for started in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                top = psutil.Process(started.pid)
                found += [top, *top.children(recursive=True)]
        return found

    def prefect_servers(self) -> list[str]:
        """Command lines of Prefect API servers the cluster's processes started."""
        servers = []
        for process in self.all_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                command = " ".join(process.cmdline())
                if PREFECT_SERVER_APP in command:
                    servers.append(command)
        return servers

    def listening_addresses(self) -> set[str]:
        """The local IP address of every socket the cluster listens on."""
        addresses = set()
        for process in self.all_processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                for connection in process.net_connections(kind="inet"):
                    if connection.status == psutil.CONN_LISTEN:
                        addresses.add(connection.laddr.ip)
        return addresses

    def output(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)


def _stop(cluster: HandStartedCluster) -> None:
    """Stop the workers, then the scheduler, then anything they left behind."""
    started = cluster.all_processes()
    for process in reversed(cluster.processes):
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    # A temporary Prefect server outlives the worker that started it.
    for process in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[HandStartedCluster]:
    ports = {SCHEDULER_PORT: free_port(), SCHEDULER_HTTP_PORT: free_port()}
    # As started by hand on a worker host: nothing of the test's Prefect or store settings.
    # Prefect's home is the one exception: what Prefect writes on import stays in the test.
    environment = {
        name: value
        for name, value in os.environ.items()
        # Nor the telemetry settings the test's own import of the package made.
        if not name.startswith(("PREFECT_", "AWS_", "MX_", "GX_", "DO_NOT_TRACK"))
    }
    environment["PREFECT_HOME"] = str(tmp_path / "worker-prefect-home")
    address = f"tcp://{LOOPBACK}:{ports[SCHEDULER_PORT]}"
    cluster = HandStartedCluster(address, logs=[])
    commands = [on_loopback(documented_command("scheduler"), ports)]
    commands += [on_loopback(documented_command("worker"), ports)] * WORKER_COUNT
    try:
        for number, command in enumerate(commands):
            log = tmp_path / f"dask-{number}.log"
            cluster.logs.append(log)
            with log.open("wb") as output:
                cluster.processes.append(
                    subprocess.Popen(
                        command, stdout=output, stderr=subprocess.STDOUT, env=environment
                    )
                )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(WORKER_COUNT, timeout=120)
        yield cluster
    finally:
        _stop(cluster)


def _completed_checks(flow_run_id: str, expected: int, timeout_s: float = 30) -> list[TaskRun]:
    """The flow run's completed ``check-batch`` task runs on the Prefect API, once there are
    ``expected`` of them or ``timeout_s`` has passed: workers report them by events, which the
    API stores a moment later."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            task_runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            checks = [
                run
                for run in task_runs
                if run.name.startswith("check-batch") and run.state and run.state.is_completed()
            ]
            if len(checks) >= expected or time.monotonic() > deadline:
                return checks
            time.sleep(0.5)


def test_workers_report_every_check_to_the_flows_api_and_start_no_server(
    exchange: Exchange, dask_cluster: HandStartedCluster
) -> None:
    exchange.upload(make_corpus(flights=4, seed=54))

    # No API URL, as without PREFECT_API_URL, and not the session's database either: a
    # worker's server of its own would otherwise share the session's database file, as on
    # another host it would not.
    with temporary_settings(
        updates={PREFECT_SERVER_EPHEMERAL_ENABLED: True},
        restore_defaults={PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL},
    ):
        report = exchange.run(
            batch_mb=SMALL_BATCH_MB, runner="dask", dask_address=dask_cluster.address
        )

    assert report["batches"] > WORKER_COUNT, report["batches"]
    checks = _completed_checks(report["run_id"], expected=report["batches"])
    assert len(checks) == report["batches"]
    assert dask_cluster.prefect_servers() == []
    assert TEMPORARY_SERVER_LOG not in dask_cluster.output()
    assert dask_cluster.listening_addresses() == {LOOPBACK}
    # What a worker's Prefect decides analytics by: set from the start by the preload.
    with Client(dask_cluster.address, timeout=60) as client:
        worker_settings = client.run(get_current_settings).values()
    analytics_enabled = [settings.server.analytics_enabled for settings in worker_settings]
    assert analytics_enabled == [False] * WORKER_COUNT
    assert report["published"] > 0
    assert verify_drops(exchange.stack.client("partner"), exchange.partner).is_ok
    audit = exchange.audit()
    assert audit.ok, audit.as_dict()
