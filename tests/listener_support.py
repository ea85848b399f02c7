"""Start the landing listener flow in a process of its own, as its deployment runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from exchange_support import Exchange

LISTEN = """
import json, sys
from manifest_exchange.cli import flow_from_file
listen = flow_from_file("listener", "listen_for_manifests")
print("RESULT " + json.dumps(listen(**json.loads(sys.argv[1]))))
"""


class ListenerProcess:
    """One ``listen_for_manifests`` run for ``run_for_s`` seconds; its log in ``log``."""

    def __init__(
        self,
        exchange: Exchange,
        prefect_api: str,
        run_for_s: float,
        log: Path,
        **environment: str,
    ) -> None:
        state = exchange.stack.read_state()
        assert state is not None
        parameters = {
            **exchange.locations,
            "filer": state.filer_address,
            "linger_s": 0.5,
            "run_for_s": run_for_s,
        }
        env = {
            **os.environ,
            **exchange.environment(),
            "PREFECT_API_URL": prefect_api,
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "INFO",
            **environment,
        }
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-c", LISTEN, json.dumps(parameters)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def wait_listening(self, timeout_s: float = 60) -> None:
        """Until the flow follows the change log (its log line says so)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "listening under" in self.log.read_text():
                return
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"the listener did not start: {self.log.read_text()[-2000:]}")

    def result(self, timeout_s: float = 600) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=timeout_s)
        assert self.process.returncode == 0, self.log.read_text()[-3000:]
        (line,) = [x for x in out.splitlines() if x.startswith("RESULT ")]
        result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
        return result

    def kill(self) -> None:
        self.process.kill()
        self.process.communicate(timeout=60)

    def stop(self) -> None:
        """Interrupt the flow as Ctrl-C would (its change-log follower is stopped with it)."""
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=60)

    def landings_run(self) -> int:
        """How many landings the listener's runs took, from its log lines."""
        return sum(int(n) for n in re.findall(r" (\d+) landings under ", self.log.read_text()))
