"""The run report as the Prefect UI shows it, and the quarantine listing beside it."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pytest

from manifest_exchange.orchestration import artifacts
from manifest_exchange.orchestration.artifacts import run_report_markdown
from manifest_exchange.runs.quarantine import quarantine_listing
from manifest_exchange.transform.schemas import ISSUES_SCHEMA


def _report(**overrides: Any) -> dict[str, Any]:
    report = {
        "run_id": "run-1",
        "agreement": "tw-jp",
        "drop_ids": ["20261201T000000Z-abc-0000"],
        "drop_rows": 3,
        "drop_uris": ["s3://partner-drops/tw-jp/v1/drops/20261201T000000Z-abc-0000"],
        "batches": 1,
        "objects": {
            "listed": 2,
            "already_processed": 0,
            "claimed": 2,
            "taken_over": 0,
            "claimed_by_other_runs": 0,
            "unreadable": 0,
        },
        "travellers": 6,
        "published": 3,
        "out_of_scope": 1,
        "duplicates": 1,
        "quarantined_rows": 1,
        "per_flight": {
            "CI0100-TPE-NRT-20261201": {
                "published": 3,
                "out_of_scope": 1,
                "duplicate": 1,
                "quarantined": 1,
            }
        },
        "validation": {
            "paxlst_travellers": {
                "rows": 5,
                "checks": 15,
                "failed": {"sex_code": {"severity": "error", "rows": 1}},
            }
        },
        "timings_s": {"parse": 0.5},
        "report_uri": "s3://exchange-state/tw-jp/runs/run-1/report.json",
    }
    return {**report, **overrides}


def test_report_names_the_drop_counts_flights_and_failed_checks() -> None:
    markdown = run_report_markdown(_report())

    assert (
        "3 records in 1 drop(s): `s3://partner-drops/tw-jp/v1/drops/20261201T000000Z-abc-0000`"
        in markdown
    )
    assert "| 6 | 3 | 1 | 1 | 1 |" in markdown
    assert "| CI0100-TPE-NRT-20261201 | 3 | 1 | 1 | 1 |" in markdown
    assert "| paxlst_travellers | sex_code | error | 1 |" in markdown


def test_report_without_a_drop_says_so_and_long_flight_lists_are_cut() -> None:
    flights = {
        f"F{i:04d}": {"published": 0, "out_of_scope": 1, "duplicate": 0, "quarantined": 0}
        for i in range(5)
    }
    markdown = run_report_markdown(
        _report(drop_ids=[], drop_uris=[], per_flight=flights), max_flights=2
    )

    assert "none (nothing new to publish)" in markdown
    assert "| F0001 |" in markdown
    assert "| F0002 |" not in markdown
    assert "3 more flights" in markdown


def test_quarantine_listing_has_ids_and_reasons_only() -> None:
    outcomes = pa.table(
        {
            "record_id": ["r1", "r2"],
            "flight_key": ["F1", "F1"],
            "object_key": ["a.edi", "a.edi"],
            "outcome": ["quarantined", "published"],
            "reasons": [["sex_code", "document_expired"], []],
            "surname": ["SECRET", "HIDDEN"],
        }
    )
    messages = pa.table(
        {
            "message_id": ["b.edi#1", "a.edi#1"],
            "object_key": ["b.edi", "a.edi"],
            "flight_key": [None, "F1"],
            "parse_error": ["truncated", None],
        }
    )
    issues = pa.table(
        {"row_id": ["a.edi#1"], "check_name": ["flight_warning"], "severity": ["warning"]},
        schema=ISSUES_SCHEMA,
    )

    rows, total = quarantine_listing(outcomes, messages, issues)

    assert total == 2
    assert rows == [
        {
            "item": "message",
            "id": "b.edi#1",
            "flight_key": None,
            "object_key": "b.edi",
            "reasons": "truncated",
        },
        {
            "item": "traveller",
            "id": "r1",
            "flight_key": "F1",
            "object_key": "a.edi",
            "reasons": "sex_code, document_expired",
        },
    ]
    assert "SECRET" not in str(rows)


def test_progress_never_goes_back_when_stages_alternate(monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[float] = []
    monkeypatch.setattr(artifacts, "create_progress_artifact", lambda **_: uuid.uuid4())
    monkeypatch.setattr(
        artifacts, "update_progress_artifact", lambda _id, progress: updates.append(progress)
    )
    progress = artifacts.StageProgress(["parse", "transform", "validate", "publish"])
    for stage in ("parse", "transform", "validate", "transform", "validate", "publish"):
        progress.finished(stage)
    assert updates == [25.0, 50.0, 75.0, 75.0, 75.0, 100.0]


def test_partner_summary_has_a_line_per_agreement_and_names_failures() -> None:
    reports = {
        "tw-jp": _report(partner="s3://partner-drops/tw-jp"),
        "tw-au": _report(agreement="tw-au", partner="s3://partner-drops-au/tw-au", drop_ids=[]),
    }
    markdown = artifacts.partner_summary_markdown(reports, {"jp-tw": "bucket unreachable"})
    lines = [line for line in markdown.splitlines() if line.startswith("| tw-") or "jp-tw" in line]
    assert [line.split(" | ")[0] for line in lines] == ["| tw-au", "| tw-jp", "| jp-tw"]
    assert "s3://partner-drops-au/tw-au" in lines[0]
    assert lines[0].endswith("| - |")
    assert "FAILED" in lines[2]
    assert "bucket unreachable" in lines[2]


def test_report_shows_outcomes_per_source_format_when_there_are_two() -> None:
    counts = {"published": 2, "out_of_scope": 0, "duplicate": 1, "quarantined": 0}
    markdown = run_report_markdown(
        _report(per_source_format={"airport_csv": counts, "paxlst": counts})
    )
    assert "#### Per source format" in markdown
    assert "| airport_csv | 2 | 0 | 1 | 0 |" in markdown
    assert "Per source format" not in run_report_markdown(
        _report(per_source_format={"paxlst": counts})
    )
