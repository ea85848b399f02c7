"""What importing the package does to the process: Arrow's allocator."""

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
