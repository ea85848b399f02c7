"""Every SQL and expectations file is used, every file the code names exists, layering holds."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect.flows import load_flow_from_entrypoint

from manifest_exchange.airport_csv import exports as airport_csv
from manifest_exchange.paths import EXPECTATIONS_DIR, PROJECT_ROOT, SQL_DIR, SQL_LAYERS
from manifest_exchange.paxlst.parser import MACROS, RELATIONS
from manifest_exchange.publish import partner
from manifest_exchange.quality import failures
from manifest_exchange.quality.suites import SUITES, load_suite
from manifest_exchange.transform import exchange as transform

SRC = PROJECT_ROOT / "src"
PACKAGE = SRC / "manifest_exchange"


def _sql_named_in(path: Path) -> set[str]:
    return set(re.findall(r'run_sql\(\s*"([a-z_]+)"', path.read_text()))


def test_every_sql_file_is_used_and_exists() -> None:
    on_disk = {p.stem for p in SQL_DIR.rglob("*.sql")}
    csv_relations = {airport_csv.ROWS_RELATION, *airport_csv.RELATIONS}
    used = set(MACROS) | set(RELATIONS) | csv_relations | _sql_named_in(Path(transform.__file__))
    used.add(failures.MACROS)
    used.add(partner.CURRENT_RECORDS_MACRO)
    assert on_disk == used


def test_every_expectation_suite_is_used_and_valid() -> None:
    on_disk = {p.stem for p in EXPECTATIONS_DIR.glob("*.json")}
    assert on_disk == set(SUITES)
    # Every batch is validated in runs/batches.py, wherever the task runner checks it.
    batch_source = (PACKAGE / "runs" / "batches.py").read_text()
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


def test_only_orchestration_and_local_tooling_import_prefect() -> None:
    allowed = {PACKAGE / "orchestration", PACKAGE / "local"}
    for path in PACKAGE.rglob("*.py"):
        if allowed & set(path.parents):
            continue
        assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path


def _module_level_imports(path: Path) -> set[str]:
    """Modules a file imports when it is loaded (not those imported inside functions)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_production_path_never_imports_the_local_tooling() -> None:
    local = PACKAGE / "local"
    production = [p for p in PACKAGE.rglob("*.py") if local not in p.parents]
    production += list((PROJECT_ROOT / "flows").glob("*.py"))
    for path in production:
        imported = _module_level_imports(path)
        assert not any(name.startswith("manifest_exchange.local") for name in imported), path


def test_loading_every_production_module_leaves_the_local_tooling_unloaded() -> None:
    """The check above, as Python sees it: a fresh interpreter imports every production
    module, the console script and the flows, and ``manifest_exchange.local`` stays out."""
    local = PACKAGE / "local"
    modules = [
        ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
        if local not in path.parents and path.parent != local
    ]
    script = """
import importlib, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
from manifest_exchange.cli import load_exchange_flow
load_exchange_flow()
loaded = sorted(name for name in sys.modules if name.startswith("manifest_exchange.local"))
print(",".join(loaded))
"""
    result = subprocess.run(
        [sys.executable, "-c", script, *modules],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert result.stdout.strip() == ""


def test_package_init_files_hold_no_code() -> None:
    """Named modules hold the code; a package's ``__init__.py`` only says what is in it. The
    top package's sets Arrow's memory pool, which has to happen on import."""
    for path in PACKAGE.rglob("*/__init__.py"):
        body = ast.parse(path.read_text()).body
        is_docstring = [
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) for node in body
        ]
        assert is_docstring in ([], [True]), path


def test_the_publish_lock_lives_apart_from_the_ledger() -> None:
    ledger = _module_level_imports(PACKAGE / "storage" / "ledger.py")
    assert "manifest_exchange.storage.locks.StateLock" in ledger
    assert "class StateLock" not in (PACKAGE / "storage" / "ledger.py").read_text()
    assert "manifest_exchange.storage.ledger" not in _module_level_imports(
        PACKAGE / "storage" / "locks.py"
    )


def test_flows_are_a_table_of_contents() -> None:
    """Flows wire tasks to package functions: no SQL, Arrow compute, S3 calls or loops over
    batches of their own."""
    for path in (PROJECT_ROOT / "flows").glob("*.py"):
        imported = _module_level_imports(path)
        for library in ("duckdb", "pyarrow.compute", "boto3", "great_expectations"):
            assert not any(name.startswith(library) for name in imported), (path, library)
        assert "task_runner.submit" not in path.read_text(), path


def test_the_exchange_flows_share_one_parameter_model() -> None:
    flows = {
        name: load_flow_from_entrypoint(str(PROJECT_ROOT / f"flows/exchange.py:{name}"))
        for name in ("exchange_manifests", "backfill_manifests", "exchange_partners")
    }
    for name, flow in flows.items():
        options = flow.parameters.properties["options"]
        assert options["$ref"].endswith("/RunOptions") or "allOf" in options, name
        assert not {"runner", "batch_mb", "s3_credentials_block"} & set(
            flow.parameters.properties
        ), name


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
        "tw-jp-listener",
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
        blocks = parameters.get("options", parameters)
        assert blocks["s3_credentials_block"].startswith("mx-")
        for value in parameters.values():
            assert "secret" not in str(value).lower()
    text = (PROJECT_ROOT / "prefect.yaml").read_text()
    assert not re.search(r"(?i)aws_secret|access_key|MX_HMAC_KEY\b", text)


def test_ui_up_lists_every_deployment_of_prefect_yaml() -> None:
    from manifest_exchange.local.prefect_server import deployments_of

    listed = deployments_of(PROJECT_ROOT)
    assert [name.split("/")[1] for name in listed] == [d["name"] for d in _deployments()]
    for name, deployment in zip(listed, _deployments(), strict=True):
        assert (
            name.split("/")[0]
            == load_flow_from_entrypoint(str(PROJECT_ROOT / deployment["entrypoint"])).name
        )


def test_test_files_have_unique_names() -> None:
    """pytest imports test files by basename (no packages under tests/): two alike stop the
    whole session at collection."""
    names = [path.name for path in (PROJECT_ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
