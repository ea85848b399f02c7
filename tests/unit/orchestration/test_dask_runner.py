"""What a task sent to a Dask worker carries besides its arguments."""

from __future__ import annotations

from manifest_exchange.orchestration.dask_runner import settings_for_workers


def test_outside_a_flow_run_a_worker_is_only_denied_a_server_of_its_own() -> None:
    """No flow, so no API to name; a worker without one must fail, not start a server."""
    assert settings_for_workers() == {"server.ephemeral.enabled": False}


def test_inside_a_flow_run_a_worker_is_sent_the_api_the_flow_reports_to(prefect_api: str) -> None:
    from prefect import flow

    @flow
    def sending() -> dict[str, object]:
        return settings_for_workers()

    sent = sending()
    assert sent == {"server.ephemeral.enabled": False, "api.url": prefect_api.rstrip("/")}
