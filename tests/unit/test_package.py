"""What importing the package does to the process: Arrow's allocator, telemetry off."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BACKEND = "import manifest_exchange, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
TELEMETRY_SETTINGS = ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "GX_ANALYTICS_ENABLED")
TELEMETRY = f"import manifest_exchange, os; print(*(os.environ[k] for k in {TELEMETRY_SETTINGS}))"


def _printed_by_a_new_process(code: str, unset: tuple[str, ...], set_: dict[str, str]) -> str:
    """What ``code`` prints in a new interpreter, without ``unset`` and with ``set_``."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    printed = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **set_},
        capture_output=True,
        text=True,
        check=True,
    )
    return printed.stdout.strip()


@pytest.mark.parametrize(
    ("environment", "backend"),
    [({}, "system"), ({"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"}, "mimalloc")],
)
def test_arrow_uses_the_system_allocator_unless_the_operator_chose_one(
    environment: dict[str, str], backend: str
) -> None:
    chosen = _printed_by_a_new_process(BACKEND, ("ARROW_DEFAULT_MEMORY_POOL",), environment)
    assert chosen == backend


@pytest.mark.parametrize(
    ("environment", "settings"),
    [({}, "false 1 False"), ({"DO_NOT_TRACK": "0"}, "false 0 False")],
)
def test_importing_the_package_turns_telemetry_off_unless_the_operator_opted_in(
    environment: dict[str, str], settings: str
) -> None:
    chosen = _printed_by_a_new_process(TELEMETRY, TELEMETRY_SETTINGS, environment)
    assert chosen == settings
