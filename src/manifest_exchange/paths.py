"""The one place that locates the project's sibling folders (sql/, expectations/, local state)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# src/manifest_exchange -> project root; sql/ and expectations/ live beside src/.
PROJECT_ROOT = PACKAGE_DIR.parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
FLOWS_DIR = PROJECT_ROOT / "flows"
REFERENCE_DIR = PACKAGE_DIR / "reference"
DEFAULT_HOME = PROJECT_ROOT / ".local"


def sql_path(name: str) -> Path:
    """Return the path of ``sql/<name>.sql``, failing loudly if it does not exist."""
    path = SQL_DIR / f"{name}.sql"
    if not path.is_file():
        raise FileNotFoundError(f"SQL file not found: {path}")
    return path


def read_sql(name: str) -> str:
    """Read one statement from ``sql/<name>.sql``."""
    return sql_path(name).read_text(encoding="utf-8")


_PARAMETER = re.compile(r"\$([a-z_]+)")


def read_sql_with_parameters(
    name: str, values: Mapping[str, object]
) -> tuple[str, dict[str, object]]:
    """Read ``sql/<name>.sql`` and pick, from ``values``, the ``$name`` parameters it binds."""
    sql = read_sql(name)
    return sql, {key: values[key] for key in _PARAMETER.findall(sql)}
