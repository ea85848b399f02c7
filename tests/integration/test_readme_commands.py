"""The commands of ``README.md`` and ``docs/operations.md``, run verbatim in ``bash``.

A user once followed the tour's load command and the documented run found nothing: the pages
and the code had drifted apart. So the commands are not copied here: each is found in its page
by what it says, and editing a page changes what runs. They run from the project root (they
name ``.venv/bin/...``) against the session's store: its home is ``MX_HOME``, which is where
``stack env`` looks for a running stack, so the pages' ``eval`` lines reach it as written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from manifest_exchange.local.commands import load_commands
from manifest_exchange.local.prefect_server import Locations
from manifest_exchange.local.stack import EmbeddedStack
from manifest_exchange.storage.s3 import S3Client, S3Location, get_bytes, iter_objects

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).parents[2]
README = PROJECT_ROOT / "README.md"
OPERATIONS_DOC = PROJECT_ROOT / "docs" / "operations.md"
# Where the pages say the console script is after `make setup`.
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
# A fenced bash block, also one indented inside a numbered list (the tour's are).
FENCED_BASH = re.compile(r"^(?P<indent> *)```bash\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
# An example backfill `prefix` the pages give: the inline code after `prefix` naming a day.
BACKFILL_PREFIX = re.compile(r"`prefix`[^`]*`(\d{4}-\d{2}-\d{2}/[^`]*)`")
COMMAND_TIMEOUT_S = 300

# The blocks, each told by fragments only it holds.
LOAD_BLOCK = (README, "stack env --identity loader", " generate ")
INSPECT_BLOCK = (README, "stack env --identity pipeline", "parse --summary")
PARTNER_BLOCK = (README, "partner verify", "partner fetch")
SYNOPSIS_BLOCK = (OPERATIONS_DOC, "manifest-exchange stack up|down")
REPLAY_BLOCK = (OPERATIONS_DOC, "manifest-exchange run", "replay")


def bash_block(page: Path, *fragments: str) -> str:
    """The one fenced bash block of ``page`` that holds every fragment, dedented.

    Found by content rather than by position or a marker, so rewording the page around it keeps
    the test on it, and any change to the block itself changes what runs.
    """
    blocks = [match["body"] for match in FENCED_BASH.finditer(page.read_text())]
    found = [textwrap.dedent(b) for b in blocks if all(fragment in b for fragment in fragments)]
    assert len(found) == 1, f"{page.name}: {len(found)} bash blocks hold {fragments}"
    return found[0]


def command_lines(block: str, start: str) -> list[str]:
    """The lines of ``block`` that start with ``start`` (a synopsis lists options on
    continuation lines; its first line is a complete command)."""
    found = [line for line in block.splitlines() if line.startswith(start)]
    assert found, f"no line starts with {start!r}"
    return found


def option(command: str, name: str) -> str:
    """The value of the option ``name`` in a documented command line."""
    words = shlex.split(command)
    return words[words.index(name) + 1]


def run_bash(script: str, environment: dict[str, str], cwd: Path = PROJECT_ROOT) -> str:
    """Run ``script`` as a user pasting it would, stopping at the first failing line; its
    stdout, once it exited 0 with nothing alarming on stderr (the runs log there at INFO)."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
    )  # fmt: skip
    assert result.returncode == 0, (script, result.stderr[-3000:])
    alarming = [
        line
        for line in result.stderr.splitlines()
        if line.startswith(("ERROR", "error", "Traceback", "bash:")) or "not found" in line
    ]
    assert not alarming, (script, result.stderr[-3000:])
    return result.stdout


def written_report(pipeline: S3Client, printed: str) -> dict[str, Any]:
    """The JSON report of the run whose lines are ``printed``: they end with where it is."""
    location = re.search(r"report: (s3://\S+)", printed)
    assert location, printed
    report = S3Location.parse(location[1])
    found: dict[str, Any] = json.loads(get_bytes(pipeline, report.bucket, report.prefix))
    return found


@dataclass(frozen=True)
class Tour:
    """The session's store after the tour: its load block, then the README's inspection
    block followed by the run line of docs/operations.md's synopsis."""

    stack: EmbeddedStack
    shell: dict[str, str]
    generated: dict[str, Any]
    inspect_and_run: str

    @property
    def pipeline(self) -> S3Client:
        return self.stack.client("pipeline")

    def inspect_and_run_once(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The parse summary the inspection printed first, and the report of the run after."""
        printed = run_bash(self.inspect_and_run, self.shell)
        summary, end = json.JSONDecoder().raw_decode(printed)
        return summary, written_report(self.pipeline, printed[end:])

    def as_identity(self, identity: str) -> dict[str, str]:
        """The shell with an identity's settings, for blocks that take them as already set."""
        return self.shell | self.stack.environment(identity)


@pytest.fixture(scope="module")
def tour(embedded_stack: EmbeddedStack, prefect_api: str) -> Tour:
    assert (VENV_BIN / "manifest-exchange").is_file(), "the pages' commands need `make setup`"
    # A user's shell: no store settings until the pages' `eval` lines set them; the console
    # script on PATH, as docs/operations.md uses it; the session's Prefect server (a run uses
    # PREFECT_API_URL when set instead of starting a temporary one).
    shell = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "MX_", "PREFECT_API_URL"))
    }
    shell |= {
        "MX_HOME": str(embedded_stack.root.parent),
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PREFECT_API_URL": prefect_api,
    }
    generated = json.loads(run_bash(bash_block(*LOAD_BLOCK), shell))
    documented_run = command_lines(bash_block(*SYNOPSIS_BLOCK), "manifest-exchange run ")[0]
    return Tour(embedded_stack, shell, generated, bash_block(*INSPECT_BLOCK) + documented_run)


@pytest.fixture(scope="module")
def first_run(tour: Tour) -> tuple[dict[str, Any], dict[str, Any]]:
    return tour.inspect_and_run_once()


def test_the_load_lands_where_the_documented_run_and_backfills_look(
    tour: Tour, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    generate = command_lines(bash_block(*LOAD_BLOCK), ".venv/bin/manifest-exchange generate")[0]
    loaded_to, day = S3Location.parse(option(generate, "--to")), option(generate, "--date")
    run = command_lines(tour.inspect_and_run, "manifest-exchange run ")[0]
    source = S3Location.parse(option(run, "--source"))

    under_source = {info.key for info in iter_objects(tour.pipeline, source)}
    assert len(under_source) == tour.generated["objects"] > 0
    assert source == S3Location(loaded_to.bucket, loaded_to.key(day))
    # Nothing of the day anywhere else under the load's prefix (it once went to paxlst/paxlst/).
    elsewhere = [
        info.key
        for info in iter_objects(tour.pipeline, loaded_to)
        if day in info.key and info.key not in under_source
    ]
    assert not elsewhere, elsewhere[:3]
    summary, _ = first_run
    assert summary["objects"] == tour.generated["objects"]
    assert summary["persons"] > 0

    # The scheduled exchange and the backfill of `make ui` read the source the tour loads.
    assert S3Location.parse(Locations().source) == loaded_to
    readme_prefixes = BACKFILL_PREFIX.findall(README.read_text())
    assert readme_prefixes, "README step 7 no longer gives an example backfill prefix"
    for prefix in readme_prefixes + BACKFILL_PREFIX.findall(OPERATIONS_DOC.read_text()):
        backfill = S3Location.parse(f"{Locations().source}/{prefix}")
        selected = {info.key for info in iter_objects(tour.pipeline, backfill)}
        assert selected, f"the documented backfill prefix {prefix!r} selects nothing"
        assert selected <= under_source


def test_the_documented_run_claims_and_publishes_the_day(
    tour: Tour, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, report = first_run
    assert report["objects"]["claimed"] == tour.generated["objects"]
    assert report["published"] > 0
    assert len(report["drop_ids"]) == 1


def test_the_same_commands_again_publish_nothing(
    tour: Tour, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    _, second = tour.inspect_and_run_once()
    assert second["objects"]["claimed"] == 0
    assert (second["published"], second["drop_ids"]) == (0, [])


def test_the_partner_verifies_fetches_and_reads_the_drop(
    tour: Tour,
    first_run: tuple[dict[str, Any], dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The README's partner block in an empty folder (``fetch --to ./inbox --current``), its
    last line reading the current records with the project's own Python."""
    _, report = first_run
    partner_block = bash_block(*PARTNER_BLOCK)
    verify, fetch = command_lines(partner_block, "manifest-exchange partner ")
    partner = tour.as_identity("partner")
    verified = json.loads(run_bash(verify, partner, cwd=tmp_path))
    assert verified["ok"]
    assert (verified["drops_verified"], verified["rows"]) == (1, report["published"])
    assert verified["sequence"]["last"] == 1
    fetched = json.loads(run_bash(fetch, partner, cwd=tmp_path))
    assert fetched["fetched"] == report["drop_ids"]
    assert fetched["last_sequence"] == 1
    (read,) = command_lines(partner_block, "python ")
    assert int(run_bash(read, partner, cwd=tmp_path)) == report["published"]


def test_the_replay_command_publishes_a_second_copy(
    tour: Tour, first_run: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """docs/operations.md's "A full second copy of a day": a fresh ledger publishes it all."""
    _, first = first_run
    replay = written_report(
        tour.pipeline, run_bash(bash_block(*REPLAY_BLOCK), tour.as_identity("pipeline"))
    )
    assert replay["objects"]["claimed"] == tour.generated["objects"]
    assert replay["published"] == first["published"]
    assert replay["partner"] != first["partner"]


def test_make_ui_prints_the_tours_load_commands() -> None:
    """``make ui`` runs ``.venv/bin/manifest-exchange ui up``, whose hint must be the README's
    load block (it once left out the required ``--date``)."""
    assert load_commands(".venv/bin/manifest-exchange") == bash_block(*LOAD_BLOCK).splitlines()
