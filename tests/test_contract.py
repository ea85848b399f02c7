"""Every SQL and expectations file is used, every file the code names exists, layering holds."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prefect.flows import load_flow_from_entrypoint

from manifest_exchange import airport_csv, transform
from manifest_exchange.paths import EXPECTATIONS_DIR, PROJECT_ROOT, SQL_DIR, SQL_LAYERS
from manifest_exchange.paxlst.parser import MACROS, RELATIONS
from manifest_exchange.quality import SUITES, failures, load_suite

SRC = PROJECT_ROOT / "src"


def _sql_named_in(path: Path) -> set[str]:
    return set(re.findall(r'run_sql\(\s*"([a-z_]+)"', path.read_text()))


def test_every_sql_file_is_used_and_exists() -> None:
    on_disk = {p.stem for p in SQL_DIR.rglob("*.sql")}
    csv_relations = {airport_csv.ROWS_RELATION, *airport_csv.RELATIONS}
    used = set(MACROS) | set(RELATIONS) | csv_relations | _sql_named_in(Path(transform.__file__))
    used.add(failures.MACROS)
    assert on_disk == used


def test_every_expectation_suite_is_used_and_valid() -> None:
    on_disk = {p.stem for p in EXPECTATIONS_DIR.glob("*.json")}
    assert on_disk == set(SUITES)
    # Every batch is validated in runs/batches.py, wherever the task runner checks it.
    batch_source = (SRC / "manifest_exchange" / "runs" / "batches.py").read_text()
    for name in SUITES:
        assert f'load_suite("{name}")' in batch_source
        assert load_suite(name).columns


def test_every_sql_file_sits_in_a_layer_folder_under_a_unique_stem() -> None:
    paths = sorted(SQL_DIR.rglob("*.sql"))
    assert paths
    for path in paths:
        assert path.parent.parent == SQL_DIR, f"{path} is not directly in a layer folder"
        assert path.parent.name in SQL_LAYERS, f"{path} is not in one of {SQL_LAYERS}"
    stems = [path.stem for path in paths]
    assert sorted(set(stems)) == sorted(stems), "a stem is used twice: callers name files by stem"
    # The layers hold what their names say; a relation is put where what it reads puts it.
    for path in paths:
        layer, stem = path.parent.name, path.stem
        if layer == "macros":
            assert stem.startswith("macro_"), path
        elif layer == "exchange":
            assert stem.startswith("exchange_"), path
        else:
            assert stem.startswith(("stg_", "paxlst_", "airport_csv_")), path


def test_sql_takes_values_as_bind_parameters_not_python_formatting() -> None:
    for path in SQL_DIR.rglob("*.sql"):
        text = path.read_text()
        assert not re.search(r"\{[a-z_]*\}", text), f"{path.name} looks like a Python format string"
        assert "%(" not in text


def test_only_the_orchestration_package_imports_prefect() -> None:
    orchestration = SRC / "manifest_exchange" / "orchestration"
    for path in SRC.rglob("*.py"):
        if orchestration in path.parents:
            continue
        assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path


def _deployments() -> list[dict[str, Any]]:
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    deployments: list[dict[str, Any]] = config["deployments"]
    return deployments


def test_every_prefect_yaml_entrypoint_imports_and_takes_its_parameters() -> None:
    names = set()
    for deployment in _deployments():
        file, _, _ = deployment["entrypoint"].partition(":")
        assert (PROJECT_ROOT / file).is_file()
        flow = load_flow_from_entrypoint(str(PROJECT_ROOT / deployment["entrypoint"]))
        schema = flow.parameters
        parameters = set(deployment.get("parameters", {}))
        assert parameters <= set(schema.properties), deployment["name"]
        assert set(schema.required or []) <= parameters, deployment["name"]
        names.add(deployment["name"])
    assert names == {
        "tw-jp-exchange",
        "tw-jp-backfill",
        "tw-jp-reconcile",
        "tw-jp-retention",
        "partners-exchange",
    }


def test_deployments_run_one_at_a_time_and_name_blocks_not_secrets() -> None:
    for deployment in _deployments():
        limit = deployment["concurrency_limit"]
        assert limit["limit"] == 1
        assert limit["collision_strategy"] in {"ENQUEUE", "CANCEL_NEW"}
        parameters = deployment["parameters"]
        assert parameters["s3_credentials_block"].startswith("mx-")
        for value in parameters.values():
            assert "secret" not in str(value).lower()
    text = (PROJECT_ROOT / "prefect.yaml").read_text()
    assert not re.search(r"(?i)aws_secret|access_key|MX_HMAC_KEY\b", text)
