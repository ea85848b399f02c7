"""``manifest-exchange audit`` exits with its verdict, every time (issue 25, item 2).

The audit's last step reads the drops' Parquet files, and the process exits right after
printing the report. A Parquet read that Arrow finished tearing down on its own threads after
returning made the process abort at exit (134) after printing ``"ok": true``, in about one run
in three or four, so a monitoring job saw failures that were not there. Once proves nothing:
the command runs 50 times, two at a time, each a process of its own as a scheduler would
start it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from exchange_support import Exchange, make_corpus

pytestmark = pytest.mark.integration

RUNS = 50


def test_audit_exits_zero_on_50_consecutive_runs(exchange: Exchange) -> None:
    exchange.upload(make_corpus(flights=2, seed=61))
    assert exchange.run()["drop_ids"], "the audit must have a drop to read last"
    command = [sys.executable, "-m", "manifest_exchange.cli", "audit"]
    for name, value in exchange.locations.items():
        command += [f"--{name}", value]
    env = {**os.environ, **exchange.environment()}

    def audit(_: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    # Two at a time: each is still a process of its own, and the suite waits half as long.
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(audit, range(RUNS)))

    failed = {
        number: (run.returncode, run.stderr.strip().splitlines()[-1:])
        for number, run in enumerate(runs, start=1)
        if run.returncode != 0
    }
    assert not failed, f"{len(failed)} of {RUNS} audits exited non-zero: {failed}"
    assert all(json.loads(run.stdout)["ok"] for run in runs)
