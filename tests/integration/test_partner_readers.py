"""The partner's side with stock tools: the guide's reader snippets, run as written against the
real store with the partner's read-only keys, the sequence and the current records.

One module-wide exchange publishes format v3 twice (the second run revises one traveller) and
v1 once, under this module's own partner prefix.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from exchange_support import Exchange, make_corpus, revise_one_traveller
from faulty_proxy import FaultyProxy
from manifest_exchange.agreements.terms import AGREEMENTS_DIR, V1_COLUMNS, V3_COLUMNS
from manifest_exchange.local.stack import EmbeddedStack
from manifest_exchange.paths import PROJECT_ROOT, read_sql
from manifest_exchange.publish.drops import PARTITION_COLUMNS, drops_root, manifest_name
from manifest_exchange.publish.partner import (
    CURRENT_RECORDS_MACRO,
    SequenceError,
    chain_since,
    fetch_drops,
    verify_drops,
    write_current_records,
)
from manifest_exchange.publish.sequence import read_latest, version_root
from manifest_exchange.storage.s3 import S3Location, get_bytes, iter_objects, put_bytes

pytestmark = pytest.mark.integration

GUIDE = PROJECT_ROOT / "docs" / "partner-guide.md"
GUIDE_PREFIX = "partner-drops/tw-jp/"
READERS = ("duckdb", "pyarrow", "polars", "pandas")
# How each reader types the partition columns it reads from the folder names (the guide's
# table under "Reading drops").
PARTITION_TYPES = {
    "duckdb": {"arr_airport": pa.string(), "flight_date": pa.date32()},
    "polars": {"arr_airport": pa.string(), "flight_date": pa.date32()},
    "pyarrow": {"arr_airport": pa.string(), "flight_date": pa.string()},
    "pandas": {"arr_airport": "category", "flight_date": "category"},
}
# Prints what a snippet read, as the test needs it (run after the guide's code).
REPORT = """
import json as _json
def _arrow(value):
    if hasattr(value, "to_arrow"):
        return value.to_arrow()
    if type(value).__module__.startswith("pandas"):
        import pyarrow as _pa
        return _pa.Table.from_pandas(value, preserve_index=False)
    return value
_out = {}
for _name in ("rows", "nrt", "current"):
    if _name in globals():
        _table = _arrow(globals()[_name])
        _out[_name] = {
            "rows": _table.num_rows,
            "types": {f.name: str(f.type) for f in _table.schema},
            "record_ids": sorted(_table.column("record_id").to_pylist()),
        }
if type(globals().get("rows")).__module__.startswith("pandas"):
    _out["pandas_dtypes"] = {k: str(v) for k, v in globals()["rows"].dtypes.items()}
print("REPORT " + _json.dumps(_out))
"""
MARK = "/__the-next-step-starts-here__"


@dataclass(frozen=True)
class Published:
    stack: EmbeddedStack
    exchange: Exchange
    partner: S3Location
    first: dict[str, Any]
    second: dict[str, Any]
    v1: dict[str, Any]


def _agreement_copy(name: str, location: str, folder: Path) -> Path:
    text = (AGREEMENTS_DIR / f"{name}.toml").read_text()
    text = re.sub(r'partner_location = ".*"', f'partner_location = "{location}"', text)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def published(
    embedded_stack: EmbeddedStack, prefect_api: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Published]:
    folder = tmp_path_factory.mktemp("agreements")
    with pytest.MonkeyPatch.context() as monkeypatch:
        exchange = Exchange(embedded_stack, monkeypatch)
        partner = S3Location("partner-drops", exchange.name)
        v3 = _agreement_copy("tw-jp-v3", str(partner), folder)
        v1 = _agreement_copy("tw-jp", str(partner), folder)
        corpus = make_corpus(flights=6, seed=15)
        exchange.upload(corpus)
        state = f"s3://exchange-state/{exchange.name}"
        first = exchange.flow(source=str(exchange.source), state=f"{state}/v3", agreement=str(v3))
        _, revised = revise_one_traveller(corpus)
        exchange.upload_bytes("revisions/revised.edi", revised)
        second = exchange.flow(source=str(exchange.source), state=f"{state}/v3", agreement=str(v3))
        v1_report = exchange.flow(
            source=str(exchange.source), state=f"{state}/v1", agreement=str(v1)
        )
        yield Published(embedded_stack, exchange, partner, first, second, v1_report)


def _guide_blocks(marker: str) -> str:
    """The code block that follows ``<!-- <marker> -->`` in the partner guide."""
    match = re.search(
        rf"<!-- {re.escape(marker)} -->\n```[a-z]+\n(.*?)```", GUIDE.read_text(), re.DOTALL
    )
    assert match, f"the partner guide has no block marked {marker!r}"
    return match.group(1)


def _run_snippet(published: Published, steps: list[str], proxy: FaultyProxy) -> dict[str, Any]:
    """Run the guide's steps in one fresh interpreter as the partner, through ``proxy``,
    with a marker request between steps; print what was read."""
    marked = (
        "\nimport urllib.request as _u\n"
        f"try:\n    _u.urlopen('{proxy.endpoint_url}{MARK}')\nexcept Exception:\n    pass\n"
    )
    code = marked.join(
        step.replace(GUIDE_PREFIX, f"partner-drops/{published.exchange.name}/") for step in steps
    )
    home = Path(os.environ.get("TMPDIR", "/tmp")) / f"partner-home-{published.exchange.name}"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        # DuckDB installs extensions under the home folder; the partner's is its own.
        "HOME": str(home),
        **published.stack.environment("partner"),
        "AWS_ENDPOINT_URL_S3": proxy.endpoint_url,
    }
    result = subprocess.run(
        [sys.executable, "-c", code + REPORT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [out for out in result.stdout.splitlines() if out.startswith("REPORT ")]
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    return report


def _read_through_proxy(
    published: Published, steps: list[str]
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """What the steps read, and every request they made to the store."""
    proxy = FaultyProxy(published.stack.environment("partner")["AWS_ENDPOINT_URL_S3"], refuse=0)
    proxy.start()
    try:
        return _run_snippet(published, steps, proxy), proxy.requests
    finally:
        proxy.stop()


def _parquet_reads(requests: list[tuple[str, str]]) -> list[set[str]]:
    """The Parquet files each step fetched, split at the marker requests."""
    steps: list[set[str]] = [set()]
    for method, path in requests:
        if path.startswith(MARK):
            steps.append(set())
        elif method == "GET" and ".parquet" in path:
            steps[-1].add(path.split("?", 1)[0])
    return steps


def _logical(arrow_type: str) -> str:
    """An Arrow type as the contract names it: Polars hands strings and lists over as their
    large (64-bit offset) forms, and each reader names a list's element field its own way."""
    return re.sub(r"list<\w+: ", "list<", arrow_type.replace("large_", ""))


def _drop_files(published: Published) -> dict[str, list[dict[str, Any]]]:
    """Each complete v3 drop's manifest ``files`` entries, by drop id."""
    root = drops_root(published.partner, "3")
    client = published.exchange.pipeline
    return {
        drop_id: json.loads(get_bytes(client, root.bucket, root.key(drop_id, manifest_name("3"))))[
            "files"
        ]
        for drop_id in published.first["drop_ids"] + published.second["drop_ids"]
    }


@pytest.mark.parametrize("reader", READERS)
def test_each_stock_reader_reads_the_drops_with_the_contract_types_and_prunes(
    published: Published, reader: str
) -> None:
    connect, one_partition = (
        _guide_blocks(f"reader: {reader}"),
        _guide_blocks(f"reader: {reader}, one partition"),
    )
    report, requests = _read_through_proxy(published, [connect, one_partition])
    # The partition alone, in a fresh interpreter: a reader may cache what it read before.
    without_full_read = "\n".join(
        line for line in connect.splitlines() if not line.startswith("rows = ")
    )
    _, partition_requests = _read_through_proxy(published, [without_full_read, one_partition])
    published_rows = published.first["published"] + published.second["published"]
    assert report["rows"]["rows"] == published_rows > 0
    files = [entry for entries in _drop_files(published).values() for entry in entries]
    nrt_files = [f for f in files if f["arr_airport"] == "NRT" and f["flight_date"] == "2026-12-01"]
    assert report["nrt"]["rows"] == sum(f["rows"] for f in nrt_files) > 0
    # Every column in the files has the contract's type in every reader.
    expected = pq.read_schema(
        io.BytesIO(
            get_bytes(
                published.exchange.pipeline,
                "partner-drops",
                drops_root(published.partner, "3").key(
                    published.first["drop_ids"][0], files[0]["key"]
                ),
            )
        )
    )
    assert expected.names == [c for c in V3_COLUMNS if c not in PARTITION_COLUMNS]
    assert [n for n in report["rows"]["types"] if n not in PARTITION_COLUMNS] == expected.names
    for field in expected:
        got, want = (_logical(t) for t in (report["rows"]["types"][field.name], str(field.type)))
        assert got == want, field.name
    for name, wanted in PARTITION_TYPES[reader].items():
        if reader == "pandas":
            assert report["pandas_dtypes"][name] == wanted
        else:
            assert _logical(report["rows"]["types"][name]) == str(wanted), name
    # Pruning: every file for the whole read; for the partition's, that partition's files only
    # (pyarrow and pandas may read one more footer while they learn the schema). Polars 2.1
    # reads every file's footer first, once, then the partition's data alone.
    assert len(_parquet_reads(requests)[0]) == len(files)
    partition_gets = [
        path for method, path in partition_requests if method == "GET" and ".parquet" in path
    ]
    nrt_keys = {f"/{f['key']}".replace("=", "%3D") for f in nrt_files}
    in_partition = [path for path in partition_gets if any(path.endswith(k) for k in nrt_keys)]
    elsewhere = [path for path in partition_gets if path not in in_partition]
    assert in_partition
    if reader == "polars":
        assert len(elsewhere) == len(set(elsewhere)) == len(files) - len(nrt_files)
    else:
        assert len(set(elsewhere)) <= 1


def test_the_guides_macro_is_the_shipped_one_and_gives_the_newest_revision(
    published: Published,
) -> None:
    shipped = [
        line.split("--", 1)[0].rstrip()
        for line in read_sql(CURRENT_RECORDS_MACRO).splitlines()
        if not line.startswith("--")
    ]
    assert _guide_blocks("macro: current_records").strip().splitlines() == shipped
    macro = f'con.execute("""{_guide_blocks("macro: current_records")}""")\n'
    report, _ = _read_through_proxy(
        published,
        [_guide_blocks("reader: duckdb"), macro + _guide_blocks("reader: duckdb, current records")],
    )
    rows, current = report["rows"], report["current"]
    # The revised traveller is in two drops; its current record is the revision-2 one.
    assert published.second["published"] == 1
    assert rows["rows"] == current["rows"] + 1
    assert current["record_ids"] == sorted(set(rows["record_ids"]))


def test_fetch_current_writes_each_travellers_newest_revision(
    published: Published, tmp_path: Path
) -> None:
    partner = published.stack.client("partner")
    fetched = fetch_drops(partner, published.partner, tmp_path, "3")
    assert fetched == published.first["drop_ids"] + published.second["drop_ids"]
    current = pq.read_table(write_current_records(tmp_path, "3"))
    assert current.num_rows == published.first["published"]
    assert current.column_names == list(V3_COLUMNS)
    revised = current.filter(pc.equal(current["manifest_revision"], 2))
    assert revised.num_rows == 1
    assert revised["given_names"][0].as_py().endswith(" REVISED")
    assert current.schema.field("flight_date").type == pa.date32()


def test_the_drops_form_a_gap_free_hash_chain_and_latest_names_the_newest(
    published: Published,
) -> None:
    partner = published.stack.client("partner")
    ids = published.first["drop_ids"] + published.second["drop_ids"]
    report = verify_drops(partner, published.partner, schema_version="3")
    assert report.is_ok, report.as_dict()
    assert report.as_dict()["sequence"] == {
        "first": 1,
        "last": len(ids),
        "latest_pointer": len(ids),
        "gaps": [],
        "problems": [],
        "drops_before_sequencing": 0,
    }
    latest = read_latest(partner, published.partner, "3")
    assert latest is not None
    assert latest.drop_id == ids[-1]
    # v1 keeps its own sequence beside v3's.
    assert verify_drops(partner, published.partner).as_dict()["sequence"]["last"] == len(
        published.v1["drop_ids"]
    )
    assert chain_since(partner, published.partner, "3", 0) == [
        (drop_id, number) for number, drop_id in enumerate(ids, start=1)
    ]
    assert chain_since(partner, published.partner, "3", len(ids) - 1) == [(ids[-1], len(ids))]
    assert chain_since(partner, published.partner, "3", len(ids)) == []


def test_fetch_since_resumes_after_the_last_sequence_taken(
    published: Published, tmp_path: Path
) -> None:
    ids = published.first["drop_ids"] + published.second["drop_ids"]
    env = {**os.environ, **published.stack.environment("partner")}
    command = [
        sys.executable,
        "-m",
        "manifest_exchange.cli",
        "partner",
        "fetch",
        str(published.partner),
        "--schema-version",
        "3",
        "--to",
        str(tmp_path),
    ]
    first = subprocess.run([*command, "--since", "0"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["fetched"] == ids
    assert json.loads(first.stdout)["last_sequence"] == len(ids)
    again = subprocess.run(
        [*command, "--since", str(len(ids)), "--current"], env=env, capture_output=True, text=True
    )
    result = json.loads(again.stdout)
    assert (result["fetched"], result["last_sequence"]) == ([], len(ids))
    assert Path(result["current_records"]).is_file()


def test_verify_reports_a_changed_drop_and_a_missing_one(published: Published) -> None:
    """On a copy of the drops in the state bucket (the published ones are object-locked): a
    manifest rewritten after publication breaks the chain at its successor; a drop removed
    is a gap."""
    pipeline = published.exchange.pipeline
    ids = published.first["drop_ids"] + published.second["drop_ids"]
    assert len(ids) >= 2
    source = version_root(published.partner, "3")
    copy = S3Location("exchange-state", f"{published.exchange.name}/tampered")
    for info in iter_objects(pipeline, source):
        relative = info.key[len(source.prefix) + 1 :]
        data = get_bytes(pipeline, source.bucket, info.key)
        put_bytes(pipeline, copy.bucket, copy.key("v3", relative), data)
    assert verify_drops(pipeline, copy, schema_version="3").is_ok

    first_manifest = drops_root(copy, "3").key(ids[0], manifest_name("3"))
    manifest = json.loads(get_bytes(pipeline, copy.bucket, first_manifest))
    # The same content written again with other spacing is a different manifest.
    put_bytes(pipeline, copy.bucket, first_manifest, json.dumps(manifest).encode())
    changed = verify_drops(pipeline, copy, schema_version="3")
    assert not changed.is_ok
    assert changed.sequence.problems == [
        f"drop {ids[0]} (sequence 1) changed after drop {ids[1]} chained to it: "
        "its manifest's sha256 differs"
    ]
    with pytest.raises(SequenceError, match=rf"drop {ids[0]} \(sequence 1\) changed"):
        chain_since(pipeline, copy, "3", 0)

    newest = S3Location(copy.bucket, drops_root(copy, "3").key(ids[-1]))
    for info in list(iter_objects(pipeline, newest)):
        pipeline.delete_object(Bucket=copy.bucket, Key=info.key)
    missing = verify_drops(pipeline, copy, schema_version="3")
    assert missing.sequence.gaps == [len(ids)]
    with pytest.raises(SequenceError, match="gap"):
        chain_since(pipeline, copy, "3", len(ids) - 1)
    assert read_latest(pipeline, copy, "3") is not None


def _guide_columns() -> dict[str, tuple[str, str]]:
    """Column -> (type, null) from the guide's record table and its version 2 additions."""
    text = GUIDE.read_text()
    columns: dict[str, tuple[str, str]] = {}
    for heading in ("## The record (v1)", "### Columns added in version 2"):
        section = text.split(heading, 1)[1].split("\n#", 1)[0]
        for line in section.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) < 4 or cells[0] in ("column", "") or set(cells[0]) <= {"-"}:
                continue
            for name in cells[0].split(", "):
                kind = cells[1].replace("\\<", "<").replace("\\>", ">")
                columns[name] = (kind, cells[2])
    return columns


def _guide_type(arrow: pa.DataType) -> str:
    if pa.types.is_list(arrow):
        return f"list<{_guide_type(arrow.value_type)}>"
    return str(arrow).replace("date32[day]", "date32")


@pytest.mark.parametrize("version", ["1", "3"])
def test_the_published_schema_is_the_guides_column_table(
    published: Published, version: str
) -> None:
    """The contract test: every published column, its type and whether it may be null, as
    docs/partner-guide.md lists them."""
    guide = _guide_columns()
    rows = published.exchange.published_rows_under(
        published.partner.key(f"v{version}", "drops"), bucket="partner-drops"
    )
    wanted = V1_COLUMNS if version == "1" else V3_COLUMNS
    in_files = [c for c in wanted if version == "1" or c not in PARTITION_COLUMNS]
    assert rows.column_names == in_files
    assert set(guide) == set(V3_COLUMNS)
    for field in rows.schema:
        kind, null = guide[field.name]
        assert _guide_type(field.type) == kind, field.name
        if null.startswith("no") or null == f"{field.name} no":
            assert rows[field.name].null_count == 0, field.name
