"""Shared fixtures. Integration fixtures start real services; nothing here mocks S3."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from manifest_exchange.storage.stack import EmbeddedStack, StackPorts

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A real SeaweedFS on free loopback ports, with the project's buckets and identities."""
    stack = EmbeddedStack(tmp_path_factory.mktemp("mx-home"), StackPorts.free())
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
