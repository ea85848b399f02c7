"""The figures table of docs/benchmarks.md is what bench/summarise_results.py makes of the
committed results, and the script picks the newest result per benchmark and corpus size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from manifest_exchange.paths import PROJECT_ROOT


def _load_script() -> ModuleType:
    path = PROJECT_ROOT / "bench" / "summarise_results.py"
    spec = importlib.util.spec_from_file_location("summarise_results", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up while the class is made.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


summary = _load_script()


def test_the_committed_table_is_what_the_committed_results_give() -> None:
    page = summary.PAGE.read_text(encoding="utf-8")
    assert page == summary.with_table(page, summary.summary_table(summary.RESULTS))
    assert summary.main(["--check"]) == 0


def _exchange(folder: Path, stamp: str, columns: dict[str, dict[str, str]]) -> None:
    sizes = list(columns)
    names = list(next(iter(columns.values())))
    lines = ["| figure | " + " | ".join(sizes) + " |", "|---|" + "---|" * len(sizes)]
    lines += [f"| {n} | " + " | ".join(columns[s][n] for s in sizes) + " |" for n in names]
    (folder / f"exchange-{stamp}.md").write_text("\n".join(lines) + "\n- cores: 2\n")


def test_each_size_comes_from_the_newest_result_that_measured_it(tmp_path: Path) -> None:
    older = {"100000": {"travellers": "1"}, "1000000": {"travellers": "2"}}
    _exchange(tmp_path, "20261101T000000Z", older)
    _exchange(tmp_path, "20261102T000000Z", {"1000000": {"travellers": "3000"}})
    rows = summary.summary_table(tmp_path).splitlines()
    first = "travellers / objects / MB"
    assert f"| exchange 100k, {first} | 1 / n/a / n/a | `exchange-20261101T000000Z.md` |" in rows
    assert f"| exchange 1M, {first} | 3,000 / n/a / n/a | `exchange-20261102T000000Z.md` |" in rows
    assert not any(row.startswith("| exchange 1M") and "| 2 /" in row for row in rows)


def test_figures_are_printed_as_the_bench_rounded_them() -> None:
    assert summary.number("1113274") == "1,113,274"
    assert summary.number("1234.56") == "1,234.56"
    assert summary.number("0.335") == "0.335"
    assert summary.number("True") == "yes"
    assert summary.number("None") == "n/a"
    assert summary.number(None) == "n/a"


def test_only_the_text_between_the_markers_is_replaced() -> None:
    page = f"intro\n{summary.START}\nold\n{summary.END}\noutro\n"
    assert summary.with_table(page, "new") == f"intro\n{summary.START}\nnew\n{summary.END}\noutro\n"
    with pytest.raises(ValueError, match="exactly one"):
        summary.with_table("no markers", "new")
