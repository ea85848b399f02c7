"""The console script against the real embedded store, through the standard AWS variables."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exchange_support import Exchange, make_corpus
from manifest_exchange.cli import main
from manifest_exchange.local.stack import SOURCE_BUCKET, EmbeddedStack
from manifest_exchange.paxlst.parser import MAX_OBJECT_BYTES
from manifest_exchange.storage.s3 import S3Location, iter_objects

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = pytest.mark.integration


def use_identity(monkeypatch: pytest.MonkeyPatch, stack: EmbeddedStack, identity: str) -> None:
    s3 = stack.s3_settings(identity)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", str(s3.endpoint_url))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", str(s3.access_key_id))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", str(s3.secret_access_key))
    monkeypatch.setenv("AWS_REGION", s3.region)


def test_generate_to_s3_then_parse_from_s3(
    embedded_stack: EmbeddedStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_identity(monkeypatch, embedded_stack, "loader")
    prefix = f"s3://{SOURCE_BUCKET}/cli-test"
    assert (
        main(["generate", "--date", "2026-12-01", "--flights", "6", "--seed", "3", "--to", prefix])
        == 0
    )
    generated = json.loads(capsys.readouterr().out)
    use_identity(monkeypatch, embedded_stack, "pipeline")
    assert main(["parse", "--summary", prefix]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["objects"] == generated["objects"]
    expected = generated["travellers_in_objects"]
    assert summary["persons"] <= expected
    assert summary["persons"] + summary["errors_by_code"].get("message_truncated", 0) > 0
    if not generated["truncated_objects"]:
        assert summary["persons"] == expected


def test_parse_files_prints_one_json_object_per_person_and_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.edi"
    broken.write_bytes(b"\x00\x01garbage")
    assert main(["parse", str(FIXTURES / "gtas" / "apisMessage.txt"), str(broken)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    people = [line for line in lines if "error" not in line]
    errors = [line for line in lines if "error" in line]
    assert [p["surname"] for p in people] == ["CLARK", "CLARK"]
    assert people[0]["date_of_birth"] == "1972-09-07"
    assert people[0]["role"] == "passenger"
    assert {"bgm_code", "message_ref", "common_access_ref", "part_number", "flight_date"} <= set(
        people[0]
    )
    assert errors == [
        {
            "object_id": 1,
            "object_key": str(broken),
            "message_seq": None,
            "segment_position": None,
            "error": "binary_content",
            "reason": errors[0]["reason"],
        }
    ]


def test_parse_refuses_a_file_over_the_size_limit_without_reading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    oversized = tmp_path / "oversized.edi"
    with oversized.open("wb") as handle:  # sparse: takes no disk, and is never read
        handle.truncate(MAX_OBJECT_BYTES + 1)
    assert main(["parse", str(FIXTURES / "gtas" / "apisMessage.txt"), str(oversized)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum("error" not in line for line in lines) == 2
    assert [(e["object_key"], e["error"]) for e in lines if "error" in e] == [
        (str(oversized), "object_too_large")
    ]


def test_stack_status_reports_a_stopped_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MX_HOME", str(tmp_path))
    assert main(["stack", "status"]) == 3
    assert json.loads(capsys.readouterr().out)["running"] is False


def test_parse_reads_an_airport_export_told_by_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "departures.txt"
    export.write_text(
        "carrier_code,flight_number,dep_airport,arr_airport,sched_departure_local,"
        "sched_arrival_local,traveller_type,surname,given_names,sex,date_of_birth,nationality,"
        "doc_type,doc_number,doc_issuing_state,doc_expiry_date\n"
        "CI,100,TPE,NRT,2026-12-01 08:30,2026-12-01 12:45,PASSENGER,Lee,Ann,F,1980-02-03,US,"
        "P,123456789,USA,2031-01-01\n"
        "CI,100,TPE,NRT,2026-12-01 08:30,2026-12-01 12:45,PASSENGER,Kim,Bo,F,1980-02-30,KR,"
        "P,M12345678,KOR,2031-01-01\n"
    )
    assert main(["parse", str(FIXTURES / "gtas" / "apisMessage.txt"), str(export)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    people = [line for line in lines if "error" not in line]
    errors = [line for line in lines if "error" in line]
    assert [p["surname"] for p in people] == ["CLARK", "CLARK", "LEE"]
    assert people[-1]["flight_number"] == "0100"
    assert people[-1]["nationality"] == "USA"
    assert [(e["error"], e["segment_position"]) for e in errors] == [("csv_line_rejected", 3)]


def test_generated_keys_sit_where_run_and_backfill_look(
    embedded_stack: EmbeddedStack,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``generate --to s3://bucket/prefix`` puts the day under ``prefix/<date>/``: the
    ``run --source s3://bucket/prefix/<date>`` the README shows finds every object."""
    use_identity(monkeypatch, embedded_stack, "loader")
    to = f"s3://{SOURCE_BUCKET}/cli-layout"
    arguments = ["generate", "--date", "2026-12-02", "--flights", "3", "--seed", "4", "--to", to]
    assert main(arguments) == 0
    generated = json.loads(capsys.readouterr().out)

    keys = [
        info.key for info in iter_objects(embedded_stack.client("pipeline"), S3Location.parse(to))
    ]
    assert len(keys) == generated["objects"] > 0
    assert all(key.startswith("cli-layout/2026-12-02/") for key in keys), keys[:3]


# What the Makefile exports, and what the test session's Prefect harness would lend: a user
# running the console script from a plain shell has none of it.
# Including the telemetry settings this test process's own import of the package made.
_NOT_IN_A_PLAIN_SHELL = ("PREFECT_", "GX_", "DO_NOT_TRACK", "UV_", "PYTHONPATH")


@pytest.mark.parametrize("runner", ["threads", "dask"])
def test_a_run_from_a_plain_shell_prints_no_traceback_error_or_routine_noise(
    exchange: Exchange, tmp_path: Path, runner: str
) -> None:
    """The console script, started without the Makefile's settings, against its own temporary
    Prefect server: telemetry is off from the package itself, and stderr holds only the run's
    own lines (on Dask, too: no cluster narration, no worker's own console)."""
    exchange.upload(make_corpus(flights=2, seed=81))
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_NOT_IN_A_PLAIN_SHELL)
    }
    environment |= {**exchange.environment(), "PREFECT_HOME": str(tmp_path / "prefect")}
    result = subprocess.run(
        [sys.executable, "-m", "manifest_exchange.cli", "run",
         "--source", exchange.locations["source"], "--state", exchange.locations["state"],
         "--partner", exchange.locations["partner"], "--runner", runner],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    assert "published" in result.stdout
    for noise in (
        "Traceback",
        "ERROR",
        "Finished in state",
        "worker thread",
        "telemetry",
        "https://",  # advice pointing elsewhere (Prefect's temporary-server paragraph)
        "temporary directory",
    ):
        assert noise not in result.stderr, (noise, result.stderr[-3000:])
    # Lines named by stage, as the UI names its task runs.
    assert "INFO publish-drop: batch 0: published drop" in result.stderr
    assert "INFO discover-and-claim: listed" in result.stderr
    if runner == "threads":  # on Dask, batches are checked (and logged) in the workers
        assert "INFO check-batch: suite paxlst_travellers" in result.stderr
    else:
        assert "dask" in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == len(set(lines)), "a line repeats"
    # Every line comes from the run's stages or Prefect's server notice, nothing else.
    stages = (
        "prefect|exchange_manifests|discover-and-claim|check-batch|decide-outcomes|publish-drop"
    )
    others = [line for line in lines if not re.match(rf"(INFO|WARNING) ({stages}): ", line)]
    assert others == []
    # Dask may say its event loop stalled on a loaded machine: the pipeline holds the GIL at
    # times (decision 0016); any other warning is noise this test should catch.
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert [line for line in warnings if "Event loop was unresponsive" not in line] == []
