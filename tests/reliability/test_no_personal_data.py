"""No name, document number or birth date in any log line, report, artifact or audit output."""

from __future__ import annotations

import json
import logging
import re
import uuid

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from exchange_support import Exchange, make_corpus
from manifest_exchange.cli import main
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.local.stack import STATE_BUCKET
from manifest_exchange.storage.s3 import get_bytes

pytestmark = pytest.mark.integration


def _personal_values(corpus: Corpus) -> re.Pattern[str]:
    values = set()
    for flight in corpus.flights:
        for traveller in (*flight.passengers, *flight.crew):
            values |= {traveller.doc_number, traveller.date_of_birth.isoformat()}
            values |= {part for part in traveller.surname.split() if len(part) >= 4}
            values |= {part for part in traveller.given_names.split() if len(part) >= 4}
    return re.compile(r"\b(" + "|".join(map(re.escape, sorted(values))) + r")\b")


def test_a_run_leaves_no_personal_data_outside_the_data_buckets(
    exchange: Exchange, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = make_corpus(flights=6, seed=121, defect_rate=0.1, flight_defect_rate=0.2)
    exchange.upload(corpus)
    caplog.set_level(logging.DEBUG, logger="manifest_exchange")
    caplog.set_level(logging.INFO)

    report = exchange.run()
    assert (
        main(
            [
                "audit",
                "--source",
                str(exchange.source),
                "--state",
                f"s3://{STATE_BUCKET}/{exchange.name}",
                "--partner",
                str(exchange.partner),
            ]
        )
        == 0
    )

    texts = [record.getMessage() for record in caplog.records]
    texts += [json.dumps(report, default=str), capsys.readouterr().out]
    texts.append(
        get_bytes(exchange.pipeline, STATE_BUCKET, report["report_uri"].split("/", 3)[3]).decode()
    )
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(report["run_id"])])
            )
        )
    assert {a.key for a in artifacts} >= {"exchange-run-report", "exchange-quarantine"}
    texts += [str(artifact.data) for artifact in artifacts]
    assert report["quarantined_rows"] > 0, "the corpus must quarantine someone"

    pattern = _personal_values(corpus)
    someone = corpus.flights[0].passengers[0]
    assert pattern.search(f"leak {someone.doc_number} here")  # the scan can see a leak
    leaks = [match for text in texts for match in pattern.findall(text)]
    assert leaks == []
    # The scan saw the run's own log lines, not an empty capture.
    for line in ("claimed now", "published drop", "failing checks"):
        assert any(line in text for text in texts), line
