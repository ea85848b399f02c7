"""Run ``manifest-exchange`` and SIGKILL (or SIGSTOP) the process at one stage boundary.

``python kill_at.py <point> run --source ... --state ... --partner ...``. The kill is real
(no ``finally`` blocks, no lock release, no Prefect state change), placed exactly by wrapping
the function that ends the stage; nothing in the pipeline knows about it.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from manifest_exchange.local.stack import PARTNER_BUCKET
from manifest_exchange.publish import drop_table, publisher
from manifest_exchange.runs import batches, settle
from manifest_exchange.storage import ledger, locks


def _kill_after(
    owner: Any,
    name: str,
    when: Callable[..., bool] = lambda *a, **k: True,
    sent: signal.Signals = signal.SIGKILL,
) -> None:
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            os.kill(os.getpid(), sent)
        return result

    setattr(owner, name, wrapper)


def _kill_before(owner: Any, name: str) -> None:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(owner, name, wrapper)


POINTS: dict[str, Callable[[], None]] = {
    "after-claim": lambda: _kill_after(ledger.Ledger, "claim"),
    "after-parse": lambda: _kill_after(batches, "read_manifests"),
    # The partner's data files are written, the manifest and _SUCCESS are not.
    "after-data-files": lambda: _kill_after(
        publisher, "put_many", lambda client, bucket, items, **_: bucket == PARTNER_BUCKET
    ),
    # Data files and manifest written; the lock check right before _SUCCESS is the last step.
    "before-success": lambda: _kill_after(locks.PublishLock, "is_held_by"),
    # Format v3: the drop is complete (_SUCCESS); its table commit and _latest.json are not.
    "before-table-commit": lambda: _kill_before(drop_table.DropTable, "commit"),
    # The drop is complete and in the record index; the ledger has not recorded its objects.
    "after-publish": lambda: _kill_after(publisher.DropPublisher, "publish"),
    # The batch's quarantine is written; its ledger outcomes are not.
    "before-ledger": lambda: _kill_before(settle, "finish_ledger"),
    # The ledger has recorded the batch's objects; its staging folder is still there.
    "after-ledger": lambda: _kill_after(settle, "finish_ledger"),
    # Not killed: stopped (SIGSTOP) once its objects are parsed, for the test to resume later.
    "stop-after-parse": lambda: _kill_after(batches, "read_manifests", sent=signal.SIGSTOP),
}

if __name__ == "__main__":
    POINTS[sys.argv[1]]()
    from manifest_exchange.cli import main

    sys.exit(main(sys.argv[2:]))
