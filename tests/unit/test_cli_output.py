"""The console script's own output rules (the commands themselves run in integration tests)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from manifest_exchange.cli import _without_routine_prefect_lines, main, this_command


@pytest.mark.parametrize(
    ("argv0", "hint"),
    [
        (".venv/bin/manifest-exchange", ".venv/bin/manifest-exchange"),
        ("manifest-exchange", "manifest-exchange"),
        ("/usr/lib/python3/site-packages/pytest/__main__.py", "manifest-exchange"),
    ],
)
def test_hints_name_the_command_as_it_was_started(
    argv0: str, hint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.argv", [argv0, "demo"])

    assert this_command() == hint


def _record(name: str, level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


def test_only_prefect_routine_completions_are_dropped() -> None:
    assert not _without_routine_prefect_lines(
        _record("prefect.task_runs", logging.INFO, "Finished in state Completed()")
    )
    assert _without_routine_prefect_lines(
        _record("prefect.task_runs", logging.ERROR, "Finished in state Failed('boom')")
    )
    assert _without_routine_prefect_lines(
        _record("prefect.task_runs", logging.INFO, "batch 0: published drop x")
    )


def test_dask_narration_is_dropped_but_not_its_warnings() -> None:
    assert not _without_routine_prefect_lines(
        _record("distributed.scheduler", logging.INFO, "Register worker addr")
    )
    assert not _without_routine_prefect_lines(
        _record("prefect.task_runner.dask", logging.INFO, "Creating a new Dask cluster")
    )
    assert _without_routine_prefect_lines(
        _record("distributed.nanny", logging.WARNING, "Worker process still alive")
    )


def test_a_command_without_store_credentials_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for setting in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(setting, str(tmp_path / "absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")

    generate = ["generate", "--date", "2026-12-01", "--flights", "1", "--to", "s3://b/p"]
    run = ["run", "--source", "s3://b/p", "--state", "s3://s/p", "--partner", "s3://d/p"]
    for argv in (generate, run):
        assert main(argv) == 2

        error = capsys.readouterr().err
        assert error.startswith("error: no store credentials"), error
        assert "stack env --identity" in error
