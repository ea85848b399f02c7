"""What importing the package does to the process: Arrow's allocator, telemetry off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BACKEND = "import manifest_exchange, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


@pytest.mark.parametrize(
    ("environment", "backend"),
    [({}, "system"), ({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}, "mimalloc")],
)
def test_arrow_uses_the_system_allocator_unless_the_operator_chose_one(
    environment: dict[str, str], backend: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    chosen = subprocess.run(
        [sys.executable, "-c", BACKEND],
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert chosen.stdout.strip() == backend


TELEMETRY = (
    "import manifest_exchange, os; "
    "print(*(os.environ[k] for k in ("
    "'PREFECT_SERVER_ANALYTICS_ENABLED', 'DO_NOT_TRACK', 'GX_ANALYTICS_ENABLED')))"
)


@pytest.mark.parametrize(
    ("environment", "settings"),
    [({}, "false 1 False"), ({"DO_NOT_TRACK": "0"}, "false 0 False")],
)
def test_importing_the_package_turns_telemetry_off_unless_the_operator_opted_in(
    environment: dict[str, str], settings: str
) -> None:
    names = ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "GX_ANALYTICS_ENABLED")
    env = {k: v for k, v in os.environ.items() if k not in names}
    chosen = subprocess.run(
        [sys.executable, "-c", TELEMETRY],
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert chosen.stdout.strip() == settings
