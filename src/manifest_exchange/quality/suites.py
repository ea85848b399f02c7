"""The expectation suites in ``expectations/`` and the project's additions to GX's format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from manifest_exchange.paths import EXPECTATIONS_DIR
from manifest_exchange.quality.failures import (
    UnsupportedExpectationError,
    check_supported,
)

SEVERITIES = ("error", "warning")


SUITES = ("paxlst_messages", "paxlst_travellers", "paxlst_lists")


class SuiteError(ValueError):
    """A suite file is malformed (missing row id, check name or severity)."""


@dataclass(frozen=True)
class Suite:
    name: str
    row_id: str
    definition: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        """The row id and every column an expectation reads, in first-use order."""
        names = [self.row_id]
        for expectation in self.definition["expectations"]:
            names.extend(columns_of(expectation["kwargs"]))
        return list(dict.fromkeys(names))


def columns_of(kwargs: dict[str, Any]) -> list[str]:
    """The columns one expectation reads, from its ``kwargs``."""
    names = [kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs]
    return [*names, *kwargs.get("column_list", [])]


def load_suite(name: str, directory: Path = EXPECTATIONS_DIR) -> Suite:
    """Read ``expectations/<name>.json`` and check the project's additions."""
    path = directory / f"{name}.json"
    definition = json.loads(path.read_text(encoding="utf-8"))
    row_id = definition.get("meta", {}).get("row_id")
    if not row_id:
        raise SuiteError(f"{path}: meta.row_id is missing")
    checks = []
    for expectation in definition["expectations"]:
        meta = expectation.get("meta", {})
        if (
            not meta.get("check")
            or meta.get("severity") not in SEVERITIES
            or not meta.get("description")
        ):
            raise SuiteError(
                f"{path}: {expectation['type']} needs meta.check, meta.description (shown in "
                f"the run's data-quality artifact) and meta.severity in {SEVERITIES}"
            )
        checks.append(meta["check"])
        try:
            check_supported(expectation)
        except UnsupportedExpectationError as error:
            raise SuiteError(f"{path}: {meta['check']}: {error}") from error
    repeated = sorted({check for check in checks if checks.count(check) > 1})
    if repeated:
        raise SuiteError(f"{path}: check names must be unique, repeated: {repeated}")
    return Suite(name=name, row_id=row_id, definition=definition)
