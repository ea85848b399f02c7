"""Faults against the real store and Prefect: nothing lost, nothing duplicated, no partial drop.

Every scenario ends with the exactly-once audit (``manifest-exchange audit``) and a check
against the generator's ground truth, so "the run failed cleanly and the next one finished
the work" is proven, not assumed. Timeouts for abandoned claims and locks are set to seconds
so that take-overs happen within the test.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange_support import FLIGHT_DATE, Exchange, expected_outcomes, make_corpus
from fault_support import TAKEOVER_S, assert_exactly_once, settle
from faulty_proxy import FaultyProxy
from manifest_exchange.local.commands import upload_corpus
from manifest_exchange.local.generate.paxlst import Corpus, GeneratorOptions, generate_day
from manifest_exchange.local.stack import SOURCE_BUCKET, STATE_BUCKET, EmbeddedStack
from manifest_exchange.publish.partner import fetch_drops, verify_drops
from manifest_exchange.storage.s3 import S3Location, iter_objects

pytestmark = pytest.mark.integration

KILLER = Path(__file__).with_name("kill_at.py")


def _cli_command(exchange: Exchange, *prefix: str) -> list[str]:
    command = [sys.executable, *prefix, "run", "--json"]
    for name, value in exchange.locations.items():
        command += [f"--{name}", value]
    return command


def _cli_env(exchange: Exchange, prefect_api: str) -> dict[str, str]:
    return {
        **os.environ,
        **exchange.environment(),
        "PREFECT_API_URL": prefect_api,
        "MX_CLAIM_TIMEOUT_S": str(TAKEOVER_S),
        "MX_LOCK_TIMEOUT_S": str(TAKEOVER_S),
    }


def test_throttling_and_lost_answers_lose_and_duplicate_nothing(
    quick_takeover: Exchange, monkeypatch: pytest.MonkeyPatch
) -> None:
    exchange = quick_takeover
    corpus = make_corpus(flights=6, seed=71, defect_rate=0.05, flight_defect_rate=0.0)
    exchange.upload(corpus)
    upstream = exchange.stack.s3_settings("pipeline").endpoint_url
    assert upstream is not None
    proxy = FaultyProxy(upstream, refuse=0.25, lose_answer=0.05, seed=7).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint_url)
    try:
        failures = settle(exchange)
    finally:
        proxy.stop()

    # The run makes some 130 requests of the store (fewer since Data Docs went, decision 0023):
    # a quarter refused is the campaign this test means.
    assert proxy.counts["refused"] > 25
    assert proxy.counts["refused"] >= 0.2 * sum(proxy.counts.values())
    assert proxy.counts["answer_lost"] > 3
    fault = f"503 SlowDown 25 % + lost answers 5 % ({dict(proxy.counts)})"
    assert_exactly_once(exchange, corpus, fault, len(failures))


@pytest.mark.parametrize("runs", [2, 4])
def test_concurrent_runs_publish_each_traveller_once(
    quick_takeover: Exchange, prefect_api: str, runs: int
) -> None:
    exchange = quick_takeover
    corpus = make_corpus(flights=8, seed=72 + runs)
    exchange.upload(corpus)
    # The claim timeout stays long here: live runs must not take each other's claims.
    env = {**_cli_env(exchange, prefect_api), "MX_CLAIM_TIMEOUT_S": "600"}
    command = _cli_command(exchange, "-m", "manifest_exchange.cli")

    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(runs)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()[-3000:]
    reports = [json.loads(out.decode().strip().splitlines()[-1]) for out, _ in outputs]
    assert sum(r["objects"]["claimed"] for r in reports) == len(corpus.objects)
    assert_exactly_once(exchange, corpus, f"{runs} concurrent runs", runs)


KILL_POINTS = [
    "after-claim",
    "after-parse",
    "after-data-files",
    "before-success",
    "after-publish",
    "before-ledger",
    "after-ledger",
]
# Kills after these leave a complete drop that the partner may already read.
KILLED_AFTER_SUCCESS = {"after-publish", "before-ledger", "after-ledger"}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_at_a_stage_boundary_is_finished_by_the_next(
    quick_takeover: Exchange, prefect_api: str, point: str, tmp_path: Path
) -> None:
    exchange = quick_takeover
    corpus = make_corpus(flights=4, seed=80, defect_rate=0.05, flight_defect_rate=0.0)
    assert expected_outcomes(corpus)["quarantined_rows"] > 0
    exchange.upload(corpus)

    killed = subprocess.run(
        _cli_command(exchange, str(KILLER), point),
        env=_cli_env(exchange, prefect_api),
        capture_output=True,
        timeout=600,
        check=False,
    )

    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-3000:]
    partner = exchange.stack.client("partner")
    visible = fetch_drops(partner, exchange.partner, tmp_path)  # only complete drops are read
    pending = verify_drops(partner, exchange.partner).pending
    assert len(pending) == (1 if point in {"after-data-files", "before-success"} else 0)
    runs = settle(exchange)
    assert set(runs) == {"ok"}
    assert_exactly_once(exchange, corpus, f"flow process killed {point}", 1 + len(runs))
    # Only a kill after publishing leaves a complete drop; the next run must not repeat it.
    assert (visible != []) == (point in KILLED_AFTER_SUCCESS)


def test_a_stalled_run_resumes_after_its_work_was_taken_over(
    quick_takeover: Exchange, prefect_api: str
) -> None:
    """A run stopped (SIGSTOP) after parsing outlives its claims; the next run takes its
    objects over and settles them; the stalled run then resumes and must neither publish nor
    quarantine nor record anything a second time."""
    exchange = quick_takeover
    corpus = make_corpus(flights=4, seed=81, defect_rate=0.05, flight_defect_rate=0.0)
    assert expected_outcomes(corpus)["quarantined_rows"] > 0
    exchange.upload(corpus)
    stalled = subprocess.Popen(
        _cli_command(exchange, str(KILLER), "stop-after-parse"),
        env=_cli_env(exchange, prefect_api),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    while Path(f"/proc/{stalled.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert stalled.poll() is None, "the run ended before it was stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        time.sleep(TAKEOVER_S + 0.5)
        taken_over = exchange.run()
    finally:
        stalled.send_signal(signal.SIGCONT)
    _, stderr = stalled.communicate(timeout=600)

    assert taken_over["objects"]["taken_over"] == len(corpus.objects)
    assert stalled.returncode == 0, stderr.decode()[-3000:]
    assert_exactly_once(exchange, corpus, "run stalled after parsing, taken over, resumed", 2)
    assert b"settled by another run meanwhile" in stderr


@pytest.mark.parametrize("moment", ["claimed", "staged"])
def test_the_store_killed_mid_run_and_restarted(
    quick_takeover: Exchange, embedded_stack: EmbeddedStack, prefect_api: str, moment: str
) -> None:
    exchange = quick_takeover
    corpus = make_corpus(flights=10, seed=90)
    exchange.upload(corpus)
    run = subprocess.Popen(
        _cli_command(exchange, "-m", "manifest_exchange.cli"),
        env=_cli_env(exchange, prefect_api),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    watched = S3Location(
        STATE_BUCKET, f"{exchange.name}/{'claims' if moment == 'claimed' else 'staging'}"
    )
    deadline = time.monotonic() + 300
    while not any(True for _ in iter_objects(exchange.pipeline, watched)):
        assert run.poll() is None, "the run ended before the moment to kill the store"
        assert time.monotonic() < deadline
        time.sleep(0.05)

    state = embedded_stack.running_state()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    time.sleep(1)
    embedded_stack.up()
    run.communicate(timeout=600)  # it may finish (retries) or fail; both are fine

    runs = settle(exchange)
    outcome = "finished" if run.returncode == 0 else "failed"
    fault = f"store SIGKILLed once {moment}, restarted (that run {outcome})"
    assert_exactly_once(exchange, corpus, fault, 1 + len(runs))


STORM_KILLS = 15
STORM_SECONDS = 240.0


def _wait_for_more_objects(
    exchange: Exchange,
    folder: S3Location,
    known: int,
    run: subprocess.Popen[bytes],
    *,
    timeout_s: float,
) -> None:
    """Until ``folder`` holds more than ``known`` objects, the run ends, or time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and run.poll() is None:
        if sum(1 for _ in iter_objects(exchange.pipeline, folder)) > known:
            return
        time.sleep(0.1)


def test_a_kill_storm_with_new_work_for_every_killed_run(
    quick_takeover: Exchange, prefect_api: str
) -> None:
    """Fifteen runs SIGKILLed at random moments, each after a new day of manifests landed, so
    kills fall mid-work (claiming, parsing, staging, publishing, settling), then runs until
    everything is settled. Bounded by count and time."""
    exchange = quick_takeover
    chance = random.Random(2512)
    corpora: list[Corpus] = []
    loader = exchange.stack.client("loader")
    command = _cli_command(exchange, "-m", "manifest_exchange.cli")
    env = _cli_env(exchange, prefect_api)
    claims = S3Location(STATE_BUCKET, f"{exchange.name}/claims")
    staging = S3Location(STATE_BUCKET, f"{exchange.name}/staging")
    claim_records = 0
    mid_work = staged_after_kill = 0
    started = time.monotonic()
    for kill in range(STORM_KILLS):
        if time.monotonic() - started > STORM_SECONDS:
            break
        corpus = generate_day(
            GeneratorOptions(
                FLIGHT_DATE + dt.timedelta(days=kill),
                flights=2,
                seed=300 + kill,
                defect_rate=0.05,
                flight_defect_rate=0.0,
                resend_rate=0.0,
            )
        )
        upload_corpus(
            corpus, S3Location(SOURCE_BUCKET, exchange.source.key(f"r{kill:02d}")), loader
        )
        corpora.append(corpus)
        run = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # A run spends its first seconds importing and starting, and its work takes a couple
        # more: kill it at a random moment once it has claimed, however fast the code is.
        _wait_for_more_objects(exchange, claims, claim_records, run, timeout_s=60.0)
        time.sleep(chance.uniform(0.0, 2.0))
        run.kill()
        run.wait(timeout=60)
        # Mid-work: the killed run had claimed objects and left some without an outcome.
        claimed = sum(1 for _ in iter_objects(exchange.pipeline, claims))
        unfinished = bool(exchange.audit().not_yet_processed)
        mid_work += claimed > claim_records and unfinished
        claim_records = claimed
        staged_after_kill += any(True for _ in iter_objects(exchange.pipeline, staging))

    kills = len(corpora)
    assert kills >= 5, f"only {kills} kills within {STORM_SECONDS:.0f} s"
    assert mid_work >= max(3, kills // 5), f"only {mid_work} of {kills} kills landed mid-work"
    runs = settle(exchange)
    fault = (
        f"kill storm: {kills} runs SIGKILLed, each after new work landed "
        f"({mid_work} mid-work, {staged_after_kill} left a staged batch)"
    )
    assert_exactly_once(exchange, corpora, fault, kills + len(runs))
