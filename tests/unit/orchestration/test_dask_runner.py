"""What a task sent to a Dask worker carries besides its arguments."""

from __future__ import annotations

from manifest_exchange.orchestration.dask_runner import settings_for_workers


def test_outside_a_flow_run_a_worker_is_only_denied_a_server_of_its_own() -> None:
    """No flow, so no API to name; a worker without one must fail, not start a server."""
    assert settings_for_workers() == {"server.ephemeral.enabled": False}
