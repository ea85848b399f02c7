"""What the Prefect UI shows for each run: report, data quality, quarantine, progress.

Artifacts hold counts, ids, keys and check names only: no names, document numbers or birth
dates. Their links go to the Prefect UI or to a signed state-bucket object, never elsewhere.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.settings import get_current_settings

from manifest_exchange.runs.quarantine import UNREADABLE_REASONS, QuarantineSummary, Tally
from manifest_exchange.runs.report import LINK_VALID_DAYS, QualitySummary, RunTotals
from manifest_exchange.transform.schemas import OUTCOMES

# Rows shown in the quarantine summary's flight table; the rest are counted.
MAX_QUARANTINED_FLIGHTS = 50


class StageProgress:
    """A progress artifact moved forward as the run's stages finish."""

    def __init__(self, stages: list[str], key: str = "exchange-progress") -> None:
        self.stages = stages
        self.done = 0
        created = create_progress_artifact(
            progress=0.0, key=key, description="Stages of this run completed"
        )
        self.artifact_id = cast(UUID | None, created)

    def finished(self, stage: str) -> None:
        if self.artifact_id is None:
            return
        # Stages may alternate (transform, validate, transform ...): progress never goes back.
        self.done = max(self.done, self.stages.index(stage) + 1)
        update_progress_artifact(self.artifact_id, progress=100.0 * self.done / len(self.stages))


def _markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def run_report_markdown(
    report: dict[str, Any], *, links: dict[str, str | None] | None = None, max_flights: int = 200
) -> str:
    """The run report as markdown: outcomes, flights, the drop, validation, timings, and
    ``links`` to the run's other artifacts by name."""
    drops = (
        f"{report['drop_rows']} records in {len(report['drop_ids'])} drop(s): "
        + ", ".join(f"`{uri}`" for uri in report["drop_uris"])
        if report["drop_ids"]
        else "none (nothing new to publish)"
    )
    objects = report["objects"]
    parts = [
        f"### Exchange run `{report['run_id']}` ({report['agreement']})",
        f"**Drops:** {drops} ({report['batches']} batch{'' if report['batches'] == 1 else 'es'})",
        f"**Source objects:** {objects['listed']} listed, {objects['already_processed']} already "
        f"processed, {objects['claimed']} claimed ({objects['taken_over']} taken over from "
        f"stalled runs), {objects['claimed_by_other_runs']} left to other runs, "
        f"{objects['unreadable']} unreadable",
        _markdown_table(
            ["travellers", "published", "out of scope", "duplicates", "quarantined"],
            [
                [
                    report["travellers"],
                    report["published"],
                    report["out_of_scope"],
                    report["duplicates"],
                    report["quarantined_rows"],
                ]
            ],
        ),
    ]
    shown = [_link(name, url) for name, url in (links or {}).items() if url]
    if shown:  # near the top: the per-flight table below can be long
        parts.append("**See also:** " + ", ".join(shown))
    formats = report.get("per_source_format", {})
    if len(formats) > 1:
        rows = [[name, *(counts[o] for o in OUTCOMES)] for name, counts in formats.items()]
        parts += ["#### Per source format", _markdown_table(["format", *OUTCOMES], rows)]
    flights = list(report["per_flight"].items())
    if flights:
        rows = [
            [_text(key), *(counts[o] for o in OUTCOMES)] for key, counts in flights[:max_flights]
        ]
        parts += ["#### Per flight", _markdown_table(["flight", *OUTCOMES], rows)]
        if len(flights) > max_flights:
            parts.append(f"... and {len(flights) - max_flights} more flights in the report.")
    failed = [
        [suite, check, detail["severity"], detail["rows"]]
        for suite, result in report["validation"].items()
        for check, detail in result["failed"].items()
    ]
    if failed:
        parts += [
            "#### Failed checks",
            _markdown_table(["suite", "check", "severity", "rows"], failed),
        ]
    timings = report["timings_s"]
    parts.append("**Stage seconds:** " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    parts.append(f"Full report: `{report['report_uri']}`")
    return "\n\n".join(parts)


def publish_run_artifacts(
    report: dict[str, Any], totals: RunTotals, quarantine_items_url: str | None
) -> None:
    """Create the run's artifacts. Each links to the ones it refers to, so a person gets from
    the report to a failed check and from there to the rows it held back in one click each."""
    summary = totals.quarantine_summary
    items_link = quarantine_link = None
    if summary.items:
        items_id = create_table_artifact(
            key="exchange-quarantine-items",
            table=[short_item(item) for item in summary.items],
            description=(
                f"Quarantined items ({len(summary.items)} of {summary.count_items}), reasons "
                "first; objects by file name, ids shortened (full keys: exchange-quarantine)"
            ),
        )
        items_link = artifact_link(items_id)
    if summary.count_items:
        quarantine_id = create_markdown_artifact(
            key="exchange-quarantine",
            markdown=quarantine_markdown(
                report, summary, totals.quality, items_link, quarantine_items_url
            ),
            description="What this run held back from the partner, by reason and by flight",
        )
        quarantine_link = artifact_link(quarantine_id)
    quality_link = None
    if totals.quality.checks:
        quality_id = create_markdown_artifact(
            key="exchange-data-quality",
            markdown=data_quality_markdown(report, totals.quality, quarantine_link),
            description="Every expectation of every suite: severity, rows failed, percent",
        )
        quality_link = artifact_link(quality_id)
    create_markdown_artifact(
        key="exchange-run-report",
        markdown=run_report_markdown(
            report, links={"data quality": quality_link, "quarantine": quarantine_link}
        ),
        description="Accounting of this exchange run",
    )


def artifact_link(artifact_id: object) -> str | None:
    """The artifact's page in the Prefect UI, if the run knows where the UI is (Prefect's
    artifact functions return the id, typed as either the id or its coroutine)."""
    ui_url = get_current_settings().ui_url
    if not ui_url or not isinstance(artifact_id, UUID):
        return None
    return f"{ui_url.rstrip('/')}/artifacts/artifact/{artifact_id}"


# Characters markdown would read as structure (a link, a table cell, code): values that come
# from senders, such as flight keys, must stay text.
_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*[]()<>|"})


def _text(value: Any) -> str:
    """A value from a sender as literal markdown text."""
    return str(value).translate(_MARKDOWN_SPECIAL)


def _link(text: str, url: str | None) -> str:
    return f"[{text}]({url})" if url else text


def short_item(item: dict[str, Any], object_chars: int = 24) -> dict[str, Any]:
    """A quarantine item as a narrow table row: reasons first, then the item with a short id
    (a message's number within its object, a traveller's record id prefix), and the object's
    file name, shortened in the middle if it is long."""
    item_id = str(item["id"])
    short_id = "#" + item_id.rsplit("#", 1)[1] if item["item"] == "message" else item_id[:12]
    name = str(item["object_key"]).rsplit("/", 1)[-1]
    if len(name) > object_chars:
        tail = object_chars // 2 + 2
        name = name[: object_chars - tail - 1] + "…" + name[-tail:]
    return {
        "reasons": ", ".join(item["reasons"]),
        "item": f"{item['item']} {short_id}",
        "travellers": item["travellers"],
        "flight": item["flight_key"] or "",
        "object": name,
    }


def _descriptions(quality: QualitySummary) -> dict[str, str]:
    """What each reason means: the suites' descriptions, and why a message was unreadable."""
    return UNREADABLE_REASONS | {
        check: detail["description"]
        for checks in quality.checks.values()
        for check, detail in checks.items()
    }


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _reasons_in(tally: Tally, shown: int = 3) -> str:
    """The most frequent reasons, with counts, and how many others (the table stays narrow)."""
    reasons = tally.reasons.most_common()
    named = [_text(r) if n == 1 else f"{_text(r)} ({n})" for r, n in reasons[:shown]]
    others = len(reasons) - shown
    return ", ".join(named) + (f", {others} more" if others > 0 else "")


def quarantine_markdown(
    report: dict[str, Any],
    summary: QuarantineSummary,
    quality: QualitySummary,
    items_link: str | None,
    items_file_url: str | None,
) -> str:
    """The quarantine as a person scans it: what held things back most, then where."""
    described = _descriptions(quality)
    by_reason = sorted(summary.by_reason.items(), key=lambda kv: (-kv[1].count_travellers, kv[0]))
    by_flight = sorted(summary.by_flight.items(), key=lambda kv: (-kv[1].count_travellers, kv[0]))
    parts = [
        f"### Quarantine of run `{report['run_id']}` ({report['agreement']})",
        f"**{_count(summary.total.count_travellers, 'traveller')}** held back (the report's "
        f"quarantined count: {report['quarantined_rows']}), and "
        f"**{_count(summary.total.count_messages, 'message')}**. A message "
        "that could not be read counts its travellers from its NAD segments; the travellers of "
        "a readable message that failed a check are listed one by one. An item with two "
        "reasons is counted under both."
        + (
            f" Another run settled some of this run's objects meanwhile; it lists their "
            f"{_count(summary.count_settled_elsewhere, 'quarantined traveller')}."
            if summary.count_settled_elsewhere
            else ""
        ),
        "#### By reason",
        _markdown_table(
            ["reason", "travellers", "messages", "what it means"],
            [
                [
                    _text(reason),
                    tally.count_travellers,
                    tally.count_messages,
                    described.get(reason, ""),
                ]
                for reason, tally in by_reason
            ],
        ),
        "#### By flight",
        _markdown_table(
            ["flight", "travellers", "messages", "reasons"],
            [
                [_text(flight), tally.count_travellers, tally.count_messages, _reasons_in(tally)]
                for flight, tally in by_flight[:MAX_QUARANTINED_FLIGHTS]
            ],
        ),
    ]
    if len(by_flight) > MAX_QUARANTINED_FLIGHTS:
        parts.append(f"... and {len(by_flight) - MAX_QUARANTINED_FLIGHTS} more flights.")
    parts.append(
        f"**Items:** {_link('the first ' + str(len(summary.items)) + ' items', items_link)} of "
        f"{summary.count_items}; "
        + _link(
            "the same items with full object keys and ids "
            f"(CSV, link valid {LINK_VALID_DAYS} days)",
            items_file_url,
        )
        + f". The rows themselves, with personal data, stay in `{report['quarantine_uri']}`."
    )
    return "\n\n".join(parts)


def data_quality_markdown(
    report: dict[str, Any], quality: QualitySummary, quarantine_link: str | None
) -> str:
    """Every expectation of every suite the run validated, failed checks first."""
    parts = [
        f"### Data quality of run `{report['run_id']}` ({report['agreement']})",
        "The Great Expectations suites in `expectations/`, summed over the run's batches. A "
        "failed **error** check quarantines its rows ("
        + _link("quarantine", quarantine_link)
        + "); a failed **warning** adds a `dq_flags` entry to the published record.",
    ]
    for suite, checks in quality.checks.items():
        failed = sum(detail["failed"] > 0 for detail in checks.values())
        rows = quality.rows[suite]
        parts.append(f"#### `{suite}`: {rows} rows, {len(checks)} checks, {failed} failed")
        ordered = sorted(checks.items(), key=lambda kv: (kv[1]["failed"] == 0, kv[0]))
        # Narrow enough for a laptop screen (the UI does not wrap table cells); what each
        # check means follows as a list, which wraps.
        parts.append(
            _markdown_table(
                ["", "check", "severity", "rows failed", "% of rows", "column"],
                [
                    [
                        "failed" if detail["failed"] else "passed",
                        check,
                        detail["severity"],
                        _link(str(detail["failed"]), quarantine_link)
                        if detail["failed"] and detail["severity"] == "error"
                        else detail["failed"],
                        f"{100 * detail['failed'] / detail['rows']:.2f}" if detail["rows"] else "-",
                        f"`{detail['column']}`",
                    ]
                    for check, detail in ordered
                ],
            )
        )
        parts.append(
            "\n".join(
                f"- **{check}**: {detail['description']} (`{detail['expectation']}`)"
                for check, detail in ordered
            )
        )
    return "\n\n".join(parts)


def partner_summary_markdown(reports: dict[str, dict[str, Any]], failures: dict[str, str]) -> str:
    """One line per agreement of an ``exchange_partners`` run: where it went and what."""
    rows: list[list[Any]] = [
        [
            name,
            report["partner"],
            report["travellers"],
            report["published"],
            report["out_of_scope"],
            report["duplicates"],
            report["quarantined_rows"],
            ", ".join(report["drop_ids"]) or "-",
        ]
        for name, report in sorted(reports.items())
    ]
    rows += [[name, "FAILED", "", "", "", "", "", reason] for name, reason in failures.items()]
    header = [
        "agreement",
        "partner",
        "travellers",
        "published",
        "out of scope",
        "duplicates",
        "quarantined",
        "drops",
    ]
    return "# Partners\n\n" + _markdown_table(header, rows)


def publish_partner_summary(reports: dict[str, dict[str, Any]], failures: dict[str, str]) -> None:
    create_markdown_artifact(
        key="exchange-partners",
        markdown=partner_summary_markdown(reports, failures),
        description="Each agreement's exchange in this run",
    )
