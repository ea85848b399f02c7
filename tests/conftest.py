"""Shared fixtures. Integration fixtures start real services; nothing here mocks S3 or Prefect."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from manifest_exchange.local.stack import EmbeddedStack, StackPorts

if TYPE_CHECKING:
    from exchange_support import Exchange

FIXTURES = Path(__file__).parent / "fixtures"

# Prefect reads these when it first builds its settings, so they are set before any test
# imports it: a private home (database, cached results) per session, no telemetry.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="mx-test-prefect-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(_PREFECT_HOME / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "true"
os.environ["GX_ANALYTICS_ENABLED"] = "False"


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A real SeaweedFS on free loopback ports, with the project's buckets and identities."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("mx-home"), StackPorts.free())
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect API server (SQLite in a temp folder) for the whole session; its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        assert url, "the Prefect test harness did not set an API URL"
        yield str(url)


@pytest.fixture
def exchange(
    embedded_stack: EmbeddedStack, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Exchange:
    """One test's prefixes in the shared store, with the pipeline's environment set."""
    from exchange_support import Exchange  # after the Prefect settings above

    return Exchange(embedded_stack, monkeypatch)


@pytest.fixture
def quick_takeover(exchange: Exchange, monkeypatch: pytest.MonkeyPatch) -> Exchange:
    """Abandoned claims and locks may be taken over after seconds instead of minutes."""
    from fault_support import TAKEOVER_S

    monkeypatch.setenv("MX_CLAIM_TIMEOUT_S", str(TAKEOVER_S))
    monkeypatch.setenv("MX_LOCK_TIMEOUT_S", str(TAKEOVER_S))
    return exchange
