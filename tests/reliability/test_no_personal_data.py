"""No name, document number or birth date in any log line, report, artifact or audit output,
nor in the metadata of the drops' Iceberg table."""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest
from duckdb_extensions import import_extension
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from pyiceberg.io.pyarrow import PyArrowFileIO, parquet_file_to_data_file
from pyiceberg.manifest import ManifestEntry, ManifestEntryStatus, write_manifest
from pyiceberg.table import StaticTable

from exchange_support import Exchange, agreement_copy, iceberg_properties, make_corpus
from manifest_exchange.cli import main
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.local.stack import STATE_BUCKET
from manifest_exchange.publish.drop_table import table_location
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects

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


def _avro_rows(data: bytes, folder: Path) -> list[dict[str, Any]]:
    """An Avro object's records, read by DuckDB's avro extension (pyiceberg compresses its
    manifests, so their raw bytes would hide a name)."""
    path = folder / f"{uuid.uuid4().hex}.avro"
    path.write_bytes(data)
    con = duckdb.connect(config={"extension_directory": str(folder / "extensions")})
    import_extension("avro", con=con)
    con.load_extension("avro")
    relation = con.execute("select * from read_avro($path)", {"path": str(path)})
    names = [column[0] for column in relation.description]
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _manifest_with_statistics(
    exchange: Exchange, table: S3Location, file_url: str, folder: Path
) -> str:
    """What the scan would see had the file been added as pyiceberg adds files by default,
    with its column statistics: proof that the scan finds what Iceberg normally keeps."""
    current = StaticTable.from_metadata(
        str(table), properties=iceberg_properties(exchange.stack, "partner")
    )
    entry = ManifestEntry.from_args(
        status=ManifestEntryStatus.ADDED,
        snapshot_id=1,
        data_file=parquet_file_to_data_file(current.io, current.metadata, file_url),
    )
    control = folder / "control.avro"
    output = PyArrowFileIO().new_output(str(control))
    with write_manifest(2, current.spec(), current.schema(), output, 1, "gzip") as writer:
        writer.add(entry)
    return repr(_avro_rows(control.read_bytes(), folder))


def test_the_drop_table_metadata_holds_no_personal_data(exchange: Exchange, tmp_path: Path) -> None:
    """Iceberg manifests normally carry every column's lower and upper bound: a surname, a
    document number, a birth date. The table's carry row counts, sizes and partitions only."""
    corpus = make_corpus(flights=6, seed=123)
    exchange.upload(corpus)
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    assert exchange.run_agreement(path)["published"] > 0
    table = table_location(S3Location.parse(terms.partner_location), terms.schema_version)

    texts, entries = [], []
    for info in iter_objects(exchange.pipeline, table):
        data = get_bytes(exchange.pipeline, table.bucket, info.key)
        if info.key.endswith(".avro"):
            rows = _avro_rows(data, tmp_path)
            texts.append(repr(rows))
            entries += [row["data_file"] for row in rows if "data_file" in row]
        else:
            texts.append(data.decode("utf-8"))

    kinds = {info.key.rsplit(".", 1)[-1] for info in iter_objects(exchange.pipeline, table)}
    assert kinds == {"json", "avro", "text"}
    assert entries, "the scan must have read the manifests' entries"
    pattern = _personal_values(corpus)
    assert pattern.search(
        _manifest_with_statistics(exchange, table, entries[0]["file_path"], tmp_path)
    )
    assert [match for text in texts for match in pattern.findall(text)] == []
    # Birth dates would be 4-byte day numbers, not text: no bound or count of any kind is kept.
    for entry in entries:
        for stats in ("lower_bounds", "upper_bounds", "value_counts", "null_value_counts"):
            assert entry[stats] is None, (stats, entry["file_path"])
