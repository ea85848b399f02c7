"""The one place that locates the project's folders: sql/, expectations/, flows/ and local state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# src/manifest_exchange -> project root; sql/, expectations/ and flows/ live beside src/.
PROJECT_ROOT = PACKAGE_DIR.parent.parent
# A built wheel carries copies of those folders inside the package (pyproject's
# force-include), so an installed package runs from any working directory; a source
# checkout reads the top-level folders, which stay the source.
BUNDLED_DIR = PACKAGE_DIR / "_bundled"
IS_INSTALLED_FROM_WHEEL = BUNDLED_DIR.is_dir()
_DATA_ROOT = BUNDLED_DIR if IS_INSTALLED_FROM_WHEEL else PROJECT_ROOT
SQL_DIR = _DATA_ROOT / "sql"
# sql/ is split by layer; a relation or macro is named by its file's stem, unique across them.
SQL_LAYERS = ("staging", "exchange", "macros")
EXPECTATIONS_DIR = _DATA_ROOT / "expectations"
FLOWS_DIR = _DATA_ROOT / "flows"
REFERENCE_DIR = PACKAGE_DIR / "reference"
DEFAULT_HOME = (Path.cwd() if IS_INSTALLED_FROM_WHEEL else PROJECT_ROOT) / ".local"


class AmbiguousSqlNameError(LookupError):
    """A stem names a ``.sql`` file in more than one layer folder."""


def sql_path(name: str) -> Path:
    """Return the path of ``sql/<layer>/<name>.sql``, whichever layer holds it.

    Raises:
        FileNotFoundError: no layer folder holds ``<name>.sql``.
        AmbiguousSqlNameError: more than one does, so the name would not say which is run.
    """
    found = [path for layer in SQL_LAYERS if (path := SQL_DIR / layer / f"{name}.sql").is_file()]
    if not found:
        layers = ", ".join(f"sql/{layer}/" for layer in SQL_LAYERS)
        raise FileNotFoundError(f"SQL file {name}.sql not found in {layers}")
    if len(found) > 1:
        raise AmbiguousSqlNameError(
            f"SQL file {name}.sql is in more than one layer: {', '.join(map(str, found))}"
        )
    return found[0]


def read_sql(name: str) -> str:
    """Read one statement from ``sql/<layer>/<name>.sql``."""
    return sql_path(name).read_text(encoding="utf-8")


_PARAMETER = re.compile(r"\$([a-z_]+)")


def read_sql_with_parameters(
    name: str, values: Mapping[str, object]
) -> tuple[str, dict[str, object]]:
    """Read a statement (:func:`read_sql`) and pick from ``values`` the ``$name`` it binds."""
    sql = read_sql(name)
    return sql, {key: values[key] for key in _PARAMETER.findall(sql)}
