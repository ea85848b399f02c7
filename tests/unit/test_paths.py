"""A SQL file is found by its stem in whichever layer folder holds it, and only there."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest_exchange import paths


@pytest.fixture
def sql_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for layer in paths.SQL_LAYERS:
        (tmp_path / layer).mkdir()
    monkeypatch.setattr(paths, "SQL_DIR", tmp_path)
    return tmp_path


def test_a_stem_is_found_in_its_layer(sql_dir: Path) -> None:
    (sql_dir / "exchange" / "exchange_lists.sql").write_text("select 1")
    assert paths.sql_path("exchange_lists") == sql_dir / "exchange" / "exchange_lists.sql"
    assert paths.read_sql("exchange_lists") == "select 1"


def test_a_missing_stem_fails_naming_the_layers(sql_dir: Path) -> None:
    # A file outside the layer folders is not found either.
    (sql_dir / "exchange_lists.sql").write_text("select 1")
    with pytest.raises(FileNotFoundError, match=r"exchange_lists\.sql not found in sql/staging/"):
        paths.sql_path("exchange_lists")


def test_a_stem_in_two_layers_fails(sql_dir: Path) -> None:
    for layer in ("staging", "exchange"):
        (sql_dir / layer / "exchange_lists.sql").write_text("select 1")
    with pytest.raises(paths.AmbiguousSqlNameError, match="more than one layer"):
        paths.sql_path("exchange_lists")


def test_the_project_sql_is_found_through_its_layers() -> None:
    assert paths.sql_path("macro_expectations").parent.name == "macros"
    assert paths.sql_path("stg_paxlst_segments").parent.name == "staging"
