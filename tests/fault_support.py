"""Shared by the fault tests: quick take-overs, settling what faults left, and the exactly-once
check against the generator's ground truth."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

from exchange_support import Exchange, expected_outcomes
from manifest_exchange.local.generate.paxlst import Corpus
from manifest_exchange.publish.partner import verify_drops

TAKEOVER_S = 3.0


def settle(exchange: Exchange, max_runs: int = 6) -> list[str]:
    """Run until every object has an outcome; returns one entry per run ("ok" or its error)."""
    failures: list[str] = []
    for _ in range(max_runs):
        time.sleep(TAKEOVER_S + 0.5)  # let what a failed or killed run held expire
        try:
            exchange.run()
            failures.append("ok")
        except Exception as error:  # a failed run is allowed; losing work is not
            failures.append(type(error).__name__)
        state = exchange.audit()
        if not state.not_yet_processed and not state.miscounted_objects:
            return failures
    raise AssertionError(f"work still unfinished after {max_runs} runs: {failures}")


def assert_exactly_once(
    exchange: Exchange,
    corpora: Corpus | list[Corpus],
    fault: str,
    runs: int,
    partial_seen: int = 0,
) -> None:
    """Audit, compare with ground truth, and print the row of the faults table:
    fault | runs | travellers in | lost | duplicated | partial drops | quarantine lost."""
    report = exchange.audit(later=dt.timedelta(hours=1))
    expected: Counter[str] = Counter()
    for corpus in corpora if isinstance(corpora, list) else [corpora]:
        expected.update(expected_outcomes(corpus))
    lost = max(0, expected["published"] - report.published_rows) + sum(
        m["travellers"] - m["accounted"] for m in report.miscounted_objects
    )
    duplicated = len(report.duplicate_publications)
    quarantine_lost = max(0, expected["quarantined_rows"] - report.quarantine_rows)
    print(
        f"\nFAULTS | {fault} | {runs} | {sum(expected.values())} | {lost} | {duplicated} "
        f"| {partial_seen + len(report.drop_problems)} | {quarantine_lost} |"
    )
    assert report.ok, report.as_dict()
    assert report.published_rows == expected["published"]
    assert report.ledger_published == expected["published"]
    # Every traveller the ledger counts as quarantined has its row with a reason, once.
    assert report.quarantine_rows == report.ledger_quarantined == expected["quarantined_rows"]
    partner = verify_drops(exchange.stack.client("partner"), exchange.partner)
    assert partner.is_ok
    assert partner.pending == []
