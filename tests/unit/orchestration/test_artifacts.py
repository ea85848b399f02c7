"""The run's artifacts as the Prefect UI shows them: report, data quality and quarantine."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pytest

from manifest_exchange.orchestration import artifacts
from manifest_exchange.orchestration.artifacts import run_report_markdown
from manifest_exchange.quality.validator import SuiteResult
from manifest_exchange.runs.quarantine import (
    UNREADABLE_FLIGHT,
    QuarantineSummary,
    quarantine_listing,
)
from manifest_exchange.runs.report import QualitySummary
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
        "quarantine_uri": "s3://exchange-state/tw-jp/quarantine/run-1",
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


def _quarantined_batch() -> tuple[pa.Table, pa.Table, pa.Table]:
    outcomes = pa.table(
        {
            "record_id": ["r1" * 16, "r2" * 16, "r3" * 16],
            "flight_key": ["F1", "F1", "F2"],
            "object_key": ["day/CI/a.edi", "day/CI/a.edi", "day/BR/c.edi"],
            "outcome": ["quarantined", "published", "quarantined"],
            "reasons": [["sex_code", "document_expired"], [], ["unt_segment_count"]],
            "surname": ["SECRET", "HIDDEN", "CONCEALED"],
        }
    )
    messages = pa.table(
        {
            "message_id": ["day/CI/b.edi#1", "day/CI/a.edi#1", "day/BR/c.edi#4"],
            "object_key": ["day/CI/b.edi", "day/CI/a.edi", "day/BR/c.edi"],
            "flight_key": [None, "F1", "F2"],
            "parse_error": ["message_truncated", None, None],
            "person_count": [45, 2, 1],
        }
    )
    issues = pa.table(
        {
            "row_id": ["day/CI/a.edi#1", "day/BR/c.edi#4"],
            "check_name": ["flight_warning", "unt_segment_count"],
            "severity": ["warning", "error"],
        },
        schema=ISSUES_SCHEMA,
    )
    return outcomes, messages, issues


def test_quarantine_listing_has_reasons_first_ids_and_travellers_it_stands_for() -> None:
    rows = quarantine_listing(*_quarantined_batch())

    assert [next(iter(row)) for row in rows] == ["reasons"] * 4
    assert [(row["item"], row["reasons"], row["travellers"]) for row in rows] == [
        ("message", ["message_truncated"], 45),  # unreadable: its NAD count
        ("message", ["unt_segment_count"], 0),  # readable: its traveller has a row of its own
        ("traveller", ["sex_code", "document_expired"], 1),
        ("traveller", ["unt_segment_count"], 1),
    ]
    assert rows[0]["flight_key"] is None
    assert rows[0]["object_key"] == "day/CI/b.edi"
    assert "SECRET" not in str(rows)


def test_quarantine_summary_counts_by_reason_and_flight_and_keeps_the_first_items() -> None:
    summary = QuarantineSummary(limit=3)
    rows = quarantine_listing(*_quarantined_batch())
    summary.add(rows)
    summary.add(rows)

    assert (summary.total.count_travellers, summary.total.count_messages) == (94, 4)
    assert summary.count_items == 8
    assert summary.items == rows[:3]
    unt = summary.by_reason["unt_segment_count"]
    assert (unt.count_travellers, unt.count_messages) == (2, 2)
    assert summary.by_reason["message_truncated"].count_travellers == 90
    assert summary.by_flight["F2"].reasons == {"unt_segment_count": 4}
    assert summary.by_flight[UNREADABLE_FLIGHT].count_travellers == 90
    assert summary.as_dict()["total"] == {"travellers": 94, "messages": 4}


def test_objects_another_run_settled_are_left_to_that_runs_quarantine() -> None:
    summary = QuarantineSummary()
    summary.add(quarantine_listing(*_quarantined_batch()), frozenset({"day/CI/b.edi"}))

    # The unreadable message of b.edi (45 travellers) is the other run's.
    assert (summary.total.count_travellers, summary.total.count_messages) == (2, 1)
    assert summary.count_settled_elsewhere == 45
    assert "message_truncated" not in summary.by_reason
    markdown = artifacts.quarantine_markdown(
        _report(quarantined_rows=47), summary, QualitySummary(), None, None
    )
    assert "it lists their 45 quarantined travellers" in markdown


def test_values_from_senders_stay_text_in_markdown() -> None:
    outcomes, messages, issues = _quarantined_batch()
    hostile = "[x](https://elsewhere.example)|"
    outcomes = outcomes.set_column(1, "flight_key", pa.array([hostile] * 3))
    summary = QuarantineSummary()
    summary.add(quarantine_listing(outcomes, messages, issues))

    markdown = artifacts.quarantine_markdown(_report(), summary, QualitySummary(), None, None)
    report = run_report_markdown(
        _report(
            per_flight={
                hostile: {o: 1 for o in ("published", "out_of_scope", "duplicate", "quarantined")}
            }
        )
    )
    for text in (markdown, report):
        assert "](https://elsewhere" not in text
        assert "\\[x\\]\\(https://elsewhere.example\\)\\|" in text


def test_quarantine_items_are_shortened_for_the_table() -> None:
    rows = quarantine_listing(*_quarantined_batch())
    short = [artifacts.short_item(row) for row in rows]
    assert short[0] == {
        "reasons": "message_truncated",
        "item": "message #1",
        "travellers": 45,
        "flight": "",
        "object": "b.edi",
    }
    assert short[2]["item"] == "traveller r1r1r1r1r1r1"
    assert list(short[2]) == ["reasons", "item", "travellers", "flight", "object"]
    long_name = {**rows[2], "object_key": "day/CI/CI0801_202612022205_0010000040.edi"}
    assert artifacts.short_item(long_name)["object"] == "CI0801_20…0010000040.edi"


def _quality() -> QualitySummary:
    quality = QualitySummary()
    checks = [
        {
            "check": "sex_code",
            "severity": "error",
            "description": "ATT sex is M, F, U or X",
            "expectation": "expect_column_values_to_be_in_set",
            "column": "sex",
            "success": False,
            "unexpected_count": 1,
            "element_count": 4,
        },
        {
            "check": "surname_present",
            "severity": "error",
            "description": "NAD carries a surname",
            "expectation": "expect_column_values_to_be_in_set",
            "column": "has_surname",
            "success": True,
            "unexpected_count": 0,
            "element_count": 4,
        },
    ]
    for _ in range(2):
        quality.add(SuiteResult("paxlst_travellers", 4, ISSUES_SCHEMA.empty_table(), checks))
    return quality


def test_data_quality_lists_every_check_failed_first_with_percent_and_quarantine_link() -> None:
    markdown = artifacts.data_quality_markdown(_report(), _quality(), "http://ui/artifacts/q")

    assert "#### `paxlst_travellers`: 8 rows, 2 checks, 1 failed" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith(("| failed", "| passed"))]
    assert rows == [
        "| failed | sex_code | error | [2](http://ui/artifacts/q) | 25.00 | `sex` |",
        "| passed | surname_present | error | 0 | 0.00 | `has_surname` |",
    ]
    assert (
        "- **sex_code**: ATT sex is M, F, U or X (`expect_column_values_to_be_in_set`)" in markdown
    )


def test_quarantine_markdown_reconciles_with_the_report_and_links_the_items() -> None:
    summary = QuarantineSummary()
    summary.add(quarantine_listing(*_quarantined_batch()))
    report = _report(
        quarantined_rows=47, quarantine_uri="s3://exchange-state/tw-jp/quarantine/run-1"
    )

    markdown = artifacts.quarantine_markdown(
        report, summary, _quality(), "http://ui/artifacts/items", "http://store/items.csv"
    )

    assert "**47 travellers** held back (the report's quarantined count: 47)" in markdown
    assert "**2 messages**" in markdown
    assert "| message_truncated | 45 | 1 | The message has no UNT" in markdown
    assert "| sex_code | 1 | 0 | ATT sex is M, F, U or X |" in markdown
    assert "| F2 | 1 | 1 | unt_segment_count (2) |" in markdown
    assert "[the first 4 items](http://ui/artifacts/items) of 4" in markdown
    assert "(http://store/items.csv)" in markdown


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
