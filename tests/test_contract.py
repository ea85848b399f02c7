"""Every SQL and expectations file is used, every file the code names exists, layering holds."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from manifest_exchange import transform
from manifest_exchange.cli import load_exchange_flow
from manifest_exchange.paths import EXPECTATIONS_DIR, FLOWS_DIR, PROJECT_ROOT, SQL_DIR
from manifest_exchange.paxlst.parser import MACROS, RELATIONS
from manifest_exchange.quality import SUITES, load_suite

SRC = PROJECT_ROOT / "src"


def _sql_named_in(path: Path) -> set[str]:
    return set(re.findall(r'run_sql\(\s*"([a-z_]+)"', path.read_text()))


def test_every_sql_file_is_used_and_exists() -> None:
    on_disk = {p.stem for p in SQL_DIR.glob("*.sql")}
    used = set(MACROS) | set(RELATIONS) | _sql_named_in(Path(transform.__file__))
    assert on_disk == used


def test_every_expectation_suite_is_used_and_valid() -> None:
    on_disk = {p.stem for p in EXPECTATIONS_DIR.glob("*.json")}
    assert on_disk == set(SUITES)
    flow_source = (FLOWS_DIR / "exchange.py").read_text()
    for name in SUITES:
        assert f'load_suite("{name}")' in flow_source
        assert load_suite(name).columns


def test_sql_takes_values_as_bind_parameters_not_python_formatting() -> None:
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text()
        assert not re.search(r"\{[a-z_]*\}", text), f"{path.name} looks like a Python format string"
        assert "%(" not in text


def test_package_never_imports_prefect() -> None:
    for path in SRC.rglob("*.py"):
        assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path


def test_every_prefect_yaml_entrypoint_imports() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())
    assert config["deployments"]
    for deployment in config["deployments"]:
        file, _, name = deployment["entrypoint"].partition(":")
        assert (PROJECT_ROOT / file).is_file()
        assert name == "exchange_manifests"
        flow = load_exchange_flow()
        assert flow.name == name  # type: ignore[attr-defined]
        parameters = set(deployment.get("parameters", {}))
        assert parameters <= set(flow.parameters.properties)  # type: ignore[attr-defined]
