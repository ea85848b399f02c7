"""The v3 drops as one Iceberg table, read on the real store with the partner's own keys.

Two runs of the shipped ``tw-jp-v3`` agreement (copied with this test's partner prefix), then
the table as the partner reads it: with pyiceberg's ``StaticTable`` and with DuckDB's
``iceberg_scan``, each through the snippet the partner guide gives ("The table"), run here as
written there but for the table's location.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.table import StaticTable

from exchange_support import (
    FLIGHT_DATE,
    Exchange,
    agreement_copy,
    iceberg_properties,
    make_corpus,
)
from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.local.generate.paxlst import GeneratorOptions, generate_day
from manifest_exchange.paths import PROJECT_ROOT
from manifest_exchange.publish.drop_table import (
    DROP_ID,
    DROP_SEQUENCE,
    VERSION_HINT,
    DropTable,
    TableDrop,
    files_schema,
    table_location,
)
from manifest_exchange.publish.drops import SUCCESS_MARKER, drops_root
from manifest_exchange.publish.partner import list_drops, verify_drops
from manifest_exchange.storage.s3 import (
    S3Client,
    S3Location,
    get_bytes,
    iter_objects,
    put_bytes,
    read_parquet,
)

pytestmark = pytest.mark.integration

# Where the guide's snippets name the table; a test reads its own prefix instead.
GUIDE_TABLE = "s3://partner-drops/tw-jp/v3/table"


GUIDE = PROJECT_ROOT / "docs" / "partner-guide.md"


def _guide_snippet(marker: str) -> str:
    """The code block after ``<!-- <marker> -->`` in the partner guide, as a partner copies it."""
    found = re.search(
        rf"<!-- {re.escape(marker)} -->\n```python\n(.*?)```", GUIDE.read_text(), re.S
    )
    assert found, f"the partner guide has no block marked {marker!r}"
    return found.group(1)


PYICEBERG_SNIPPET = _guide_snippet("table: pyiceberg")
DUCKDB_SNIPPET = _guide_snippet("table: duckdb")


def _run_snippet(
    snippet: str, table: S3Location, exchange: Exchange, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Run a guide snippet with the partner's credentials in the standard AWS variables (as
    the guide assumes) and DuckDB's home in a temporary folder; its variables."""
    for name, value in exchange.stack.environment("partner").items():
        monkeypatch.setenv(name, value)
    namespace: dict[str, Any] = {}
    exec(snippet.replace(GUIDE_TABLE, str(table)), namespace)  # noqa: S102 - the guide's code
    return namespace


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """DuckDB installs extensions under ``~/.duckdb``: a temporary home, not the user's."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def _second_day(exchange: Exchange, seed: int) -> None:
    """A further day of manifests in its own source folder: the next run's drop."""
    corpus = generate_day(
        GeneratorOptions(FLIGHT_DATE + dt.timedelta(days=1), flights=4, seed=seed, defect_rate=0.0)
    )
    exchange.upload(corpus, under="day2")


def _complete_drops(client: S3Client, terms: Agreement) -> list[str]:
    """The complete drops of the agreement's version, in sequence order."""
    partner = S3Location.parse(terms.partner_location)
    drops = list_drops(client, partner, terms.schema_version)
    complete = [drop_id for drop_id, objects in drops.items() if SUCCESS_MARKER in objects]
    return sorted(complete, key=lambda d: _manifest(client, terms, d)["sequence"])


def _manifest(client: S3Client, terms: Agreement, drop_id: str) -> dict[str, Any]:
    root = drops_root(S3Location.parse(terms.partner_location), terms.schema_version)
    found: dict[str, Any] = json.loads(
        get_bytes(client, root.bucket, root.key(drop_id, "_manifest.json"))
    )
    return found


def _drop_rows(client: S3Client, terms: Agreement, drop_ids: list[str]) -> list[dict[str, Any]]:
    """The drops' rows as their files hold them, with the partition values of their folders."""
    root = drops_root(S3Location.parse(terms.partner_location), terms.schema_version)
    rows: list[dict[str, Any]] = []
    for drop_id in drop_ids:
        for entry in _manifest(client, terms, drop_id)["files"]:
            data = read_parquet(get_bytes(client, root.bucket, root.key(drop_id, entry["key"])))
            partition = {
                "arr_airport": entry["arr_airport"],
                "flight_date": dt.date.fromisoformat(entry["flight_date"]),
            }
            rows += [row | partition for row in data.to_pylist()]
    return rows


def _sorted(rows: list[dict[str, Any]] | pa.Table) -> list[dict[str, Any]]:
    listed = rows.to_pylist() if isinstance(rows, pa.Table) else rows
    return sorted(listed, key=lambda row: (row["record_id"], row["manifest_revision"]))


def test_each_complete_drop_is_one_snapshot_the_partner_reads_with_pyiceberg_and_duckdb(
    exchange: Exchange,
    tmp_path: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=6, seed=41))
    first_report = exchange.run_agreement(path)
    _second_day(exchange, seed=42)
    second_report = exchange.run_agreement(path)
    partner = exchange.stack.client("partner")
    drops = _complete_drops(partner, terms)
    assert len(drops) == 2
    assert [first_report["drop_ids"], second_report["drop_ids"]] == [[drops[0]], [drops[1]]]
    table = table_location(S3Location.parse(terms.partner_location), terms.schema_version)
    capsys.readouterr()  # only what the snippet prints, below

    found = _run_snippet(PYICEBERG_SNIPPET, table, exchange, monkeypatch)

    printed = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [(sequence, drop_id) for sequence, drop_id, _ in printed] == [
        ("1", drops[0]),
        ("2", drops[1]),
    ]
    assert _sorted(found["rows"]) == _sorted(_drop_rows(partner, terms, drops))
    assert _sorted(found["after_drop_1"]) == _sorted(_drop_rows(partner, terms, drops[:1]))
    # Pruned by the partition values in the manifests: only Narita's file of day one is read.
    narita = [
        entry
        for entry in _manifest(partner, terms, drops[0])["files"]
        if entry["arr_airport"] == "NRT" and entry["flight_date"] == "2026-12-01"
    ]
    assert len(narita) == 1
    root = drops_root(S3Location.parse(terms.partner_location), terms.schema_version)
    assert [task.file.file_path for task in found["narita_files"]] == [
        f"s3://{root.bucket}/{root.key(drops[0], narita[0]['key'])}"
    ]
    assert found["narita_rows"].num_rows == narita[0]["rows"]
    assert len(list(found["table"].scan().plan_files())) == sum(
        len(_manifest(partner, terms, d)["files"]) for d in drops
    )
    assert found["rows"].schema.field("flight_date").type == pa.date32()

    duck = _run_snippet(DUCKDB_SNIPPET, table, exchange, monkeypatch)

    assert [sequence for sequence, _ in duck["snapshots"]] == [1, 2]
    assert _sorted(duck["rows"]) == _sorted(found["rows"])
    assert _sorted(duck["after_drop_1"]) == _sorted(found["after_drop_1"])
    assert home.joinpath(".duckdb").is_dir()  # extensions went to the temporary home


def test_the_table_is_committed_once_per_drop_checksummed_and_read_only_for_the_partner(
    exchange: Exchange, tmp_path: Path
) -> None:
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=4, seed=43))
    exchange.run_agreement(path)
    partner_location = S3Location.parse(terms.partner_location)
    table = table_location(partner_location, terms.schema_version)
    hint = table.key("metadata", VERSION_HINT)
    hint_before = get_bytes(exchange.pipeline, table.bucket, hint)
    (drop_id,) = _complete_drops(exchange.pipeline, terms)
    drop_folder = S3Location(table.bucket, drops_root(partner_location, "3").key(drop_id))
    published = get_bytes(exchange.pipeline, table.bucket, drop_folder.key("_manifest.json"))
    manifest = json.loads(published)
    files = [
        get_bytes(exchange.pipeline, table.bucket, drop_folder.key(entry["key"]))
        for entry in manifest["files"]
    ]
    drop = TableDrop.from_manifest(
        manifest, hashlib.sha256(published).hexdigest(), files_schema(files), drop_folder
    )

    added = DropTable(exchange.pipeline, partner_location, "3").commit(drop)

    assert added == []  # the run committed it; a second commit changes nothing
    assert get_bytes(exchange.pipeline, table.bucket, hint) == hint_before
    # Every table object went up like every other upload: SHA-256 checked, SSE-S3.
    objects = list(iter_objects(exchange.pipeline, table))
    assert {o.key.rsplit(".", 1)[-1] for o in objects} == {"json", "avro", "text"}
    for info in objects:
        head = exchange.pipeline.head_object(
            Bucket=table.bucket, Key=info.key, ChecksumMode="ENABLED"
        )
        assert head["ServerSideEncryption"] == "AES256", info.key
        assert head.get("ChecksumSHA256"), info.key
    # The partner reads the table but cannot commit to it, nor point the hint elsewhere.
    partner = exchange.stack.client("partner")
    assert get_bytes(partner, table.bucket, hint) == hint_before
    for key in (hint, table.key("metadata", "00099-forged.metadata.json")):
        with pytest.raises(Exception, match="AccessDenied"):
            put_bytes(partner, table.bucket, key, b"{}")
    assert verify_drops(partner, partner_location, schema_version="3").is_ok
    assert exchange.audit_agreement(terms).ok


def test_a_commit_adds_the_earlier_complete_drops_the_table_lacks(
    exchange: Exchange, tmp_path: Path
) -> None:
    """Drops published before their table existed (or whose commit was lost) are added, in
    sequence order, by the next commit: here the hint is set back to the empty table."""
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=4, seed=44))
    exchange.run_agreement(path)
    table = table_location(S3Location.parse(terms.partner_location), terms.schema_version)
    metadata = sorted(
        info.key
        for info in iter_objects(exchange.pipeline, table)
        if info.key.endswith(".metadata.json")
    )
    empty = metadata[0].rsplit("/", 1)[1].removesuffix(".metadata.json")
    assert empty.startswith("00000-")
    put_bytes(exchange.pipeline, table.bucket, table.key("metadata", VERSION_HINT), empty.encode())
    _second_day(exchange, seed=45)

    exchange.run_agreement(path)

    properties = iceberg_properties(exchange.stack, "partner")
    current = StaticTable.from_metadata(str(table), properties=properties)
    drops = _complete_drops(exchange.pipeline, terms)
    summaries = [s.summary for s in current.snapshots() if s.summary is not None]
    assert [(x[DROP_SEQUENCE], x[DROP_ID]) for x in summaries] == [
        ("1", drops[0]),
        ("2", drops[1]),
    ]
    assert [s.sequence_number for s in current.snapshots()] == [1, 2]


def test_a_column_added_to_the_agreement_evolves_the_schema_and_old_drops_still_read(
    exchange: Exchange, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3")
    exchange.upload(make_corpus(flights=4, seed=46))
    exchange.run_agreement(path)
    # The agreement grows a column; the next drop carries it.
    terms, path = agreement_copy(exchange, tmp_path, "tw-jp-v3", extra_columns=["seat"])
    _second_day(exchange, seed=47)
    exchange.run_agreement(path)
    drops = _complete_drops(exchange.pipeline, terms)
    table = table_location(S3Location.parse(terms.partner_location), terms.schema_version)

    found = _run_snippet(PYICEBERG_SNIPPET, table, exchange, monkeypatch)

    current, first = found["table"].schema(), found["after_drop_1"].schema
    assert current.column_names[-1] == "seat"
    assert "seat" not in first.names  # drop 1 reads as it was published
    assert _sorted(found["after_drop_1"]) == _sorted(
        _drop_rows(exchange.pipeline, terms, drops[:1])
    )
    rows = found["rows"].to_pylist()
    first_ids = {row["record_id"] for row in found["after_drop_1"].to_pylist()}
    assert all(row["seat"] is None for row in rows if row["record_id"] in first_ids)
    assert _sorted(found["rows"]) == _sorted(
        [{"seat": None} | row for row in _drop_rows(exchange.pipeline, terms, drops)]
    )
    # The name mapping follows the schema, so the new column is read from the new files.
    assert any(row["seat"] is not None for row in rows)
    duck = _run_snippet(DUCKDB_SNIPPET, table, exchange, monkeypatch)
    assert _sorted(duck["rows"]) == _sorted(found["rows"])
    assert "seat" not in duck["after_drop_1"].schema.names
