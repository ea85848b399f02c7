"""Every SQL file is used by the code, and every file the code names exists."""

from __future__ import annotations

import re
from pathlib import Path

from manifest_exchange.paths import SQL_DIR
from manifest_exchange.paxlst.parser import MACROS, RELATIONS

SRC = Path(__file__).parent.parent / "src"


def test_every_sql_file_is_used_and_exists() -> None:
    on_disk = {p.stem for p in SQL_DIR.glob("*.sql")}
    used = set(MACROS) | set(RELATIONS)
    assert on_disk == used


def test_sql_takes_values_as_bind_parameters_not_python_formatting() -> None:
    for path in SQL_DIR.glob("*.sql"):
        text = path.read_text()
        assert not re.search(r"\{[a-z_]*\}", text), f"{path.name} looks like a Python format string"
        assert "%(" not in text


def test_package_never_imports_prefect() -> None:
    for path in SRC.rglob("*.py"):
        assert not re.search(r"^\s*(from|import) prefect", path.read_text(), re.M), path
