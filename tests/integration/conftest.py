"""Fixtures of the integration tests (the services themselves start in ../conftest.py)."""

from __future__ import annotations

import pytest
from exchange_support import Exchange

from manifest_exchange.storage.stack import EmbeddedStack


@pytest.fixture
def exchange(
    embedded_stack: EmbeddedStack, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> Exchange:
    return Exchange(embedded_stack, monkeypatch)
