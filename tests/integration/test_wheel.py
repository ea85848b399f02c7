"""The built wheel carries what the pipeline reads at run time (SQL, suites, flows), so a fresh
virtual env with only the wheel and its locked dependencies parses and runs the exchange from
any working directory: what a Dask worker or a production host gets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from exchange_support import Exchange, expected_outcomes, make_corpus
from manifest_exchange.paths import PROJECT_ROOT

pytestmark = pytest.mark.integration

FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "gtas" / "Test1.txt"


def _uv() -> str:
    pinned = PROJECT_ROOT / ".tools" / "bin" / "uv"
    found = str(pinned) if pinned.is_file() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the wheel: run `make setup`")
    return found


def _uv_run(*args: str) -> None:
    result = subprocess.run(
        [_uv(), *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _outside_the_checkout() -> dict[str, str]:
    """This environment without anything that would point Python at the source tree."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    _uv_run("build", "--wheel", "--out-dir", str(dist), "-q")
    (built,) = dist.glob("manifest_exchange-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual env with the built wheel and the locked runtime dependencies; its bin/."""
    root = tmp_path_factory.mktemp("venv")
    requirements, venv = root / "requirements.txt", root / "venv"
    _uv_run("export", "--frozen", "--no-dev", "--no-emit-project", "--format", "requirements-txt",
            "-q", "-o", str(requirements))  # fmt: skip
    _uv_run("venv", "-q", "--python", sys.executable, str(venv))
    _uv_run("pip", "install", "-q", "--python", str(venv / "bin" / "python"),
            "-r", str(requirements), str(wheel))  # fmt: skip
    return venv / "bin"


def test_the_wheel_carries_sql_suites_and_flows(wheel: Path) -> None:
    root = PROJECT_ROOT
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = "manifest_exchange/_bundled"
    for folder, pattern in (("sql", "**/*.sql"), ("expectations", "*.json"), ("flows", "*.py")):
        for path in (root / folder).glob(pattern):
            assert f"{bundled}/{path.relative_to(root).as_posix()}" in names, path
    assert f"{bundled}/prefect.yaml" in names
    assert "manifest_exchange/agreements/tw-jp.toml" in names


def test_installed_wheel_parses_from_any_directory(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed / "manifest-exchange"), "parse", "--summary", str(FIXTURE)],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        env=_outside_the_checkout(),
    )
    summary = json.loads(result.stdout)
    assert summary["persons"] > 0
    assert summary["unreadable_objects"] == 0
    assert summary["errors_by_code"] == {}


def test_installed_wheel_runs_the_exchange_from_any_directory(
    installed: Path, exchange: Exchange, prefect_api: str, tmp_path: Path
) -> None:
    corpus = make_corpus(flights=3, seed=71)
    exchange.upload(corpus)
    result = subprocess.run(
        [
            str(installed / "manifest-exchange"),
            "run",
            "--source",
            exchange.locations["source"],
            "--state",
            exchange.locations["state"],
            "--partner",
            exchange.locations["partner"],
            "--json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={**_outside_the_checkout(), **exchange.environment(), "PREFECT_API_URL": prefect_api},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["published"] == expected_outcomes(corpus)["published"] > 0
    assert exchange.audit().ok
