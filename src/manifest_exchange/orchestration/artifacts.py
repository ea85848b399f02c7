"""What the Prefect UI shows for each run: report, quarantine, Data Docs link, progress.

Artifacts hold counts, ids and check names only: no names, document numbers or birth dates.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from manifest_exchange.transform.schemas import OUTCOMES


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


def run_report_markdown(report: dict[str, Any], *, max_flights: int = 200) -> str:
    """The run report as markdown: outcomes, flights, the drop, validation, timings."""
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
    formats = report.get("per_source_format", {})
    if len(formats) > 1:
        rows = [[name, *(counts[o] for o in OUTCOMES)] for name, counts in formats.items()]
        parts += ["#### Per source format", _markdown_table(["format", *OUTCOMES], rows)]
    flights = list(report["per_flight"].items())
    if flights:
        rows = [[key, *(counts[o] for o in OUTCOMES)] for key, counts in flights[:max_flights]]
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
    report: dict[str, Any],
    quarantine_rows: list[dict[str, Any]],
    quarantine_total: int,
    data_docs_url: str | None,
) -> None:
    """Create the run's artifacts: report, quarantine table, Data Docs link."""
    create_markdown_artifact(
        key="exchange-run-report",
        markdown=run_report_markdown(report),
        description="Accounting of this exchange run",
    )
    if quarantine_rows:
        shown = len(quarantine_rows)
        create_table_artifact(
            key="exchange-quarantine",
            table=quarantine_rows,
            description=(
                f"Quarantined items ({shown} of {quarantine_total} shown): ids and reasons; "
                f"the rows themselves are in {report['quarantine_uri']}"
            ),
        )
    if data_docs_url:
        create_link_artifact(
            key="exchange-data-docs",
            link=data_docs_url,
            link_text="Great Expectations Data Docs for this run",
            description="Validation results (link valid 7 days; no personal data)",
        )


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
