"""Reuse each expectation's configuration within one GX validation.

GX 1.24 derives ``Expectation.configuration`` anew on every read, copying every ``value_set``;
those reads were more than half of GX's time in a validation (decision 0015).

While :func:`memoised_configurations` is active, the second read of an expectation object's
configuration is kept (with the object, so its id is not reused) and later reads return it.
The first is not: GX substitutes suite parameters into the suite's configurations in place,
and it reads each of those once. Its working objects are read about nine times each, and
neither they nor the configurations kept for them change during the validation, so every read
returns what GX would have derived (``tests/unit/test_quality_gx_memo.py`` checks this on the
suites). The memo is dropped when the validation ends, and the property is replaced only for
the GX minor version this was checked against; with any other, GX runs unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHECKED_GX_VERSIONS = ("1.24.",)

_memo: dict[int, tuple[Any, Any]] | None = None
_memo_owner: int | None = None
_install_lock = threading.Lock()
# GX's own derivation, once the memoising property replaced it.
_derive: Any = None


def install() -> bool:
    """Replace ``Expectation.configuration`` with the memoising property (once).

    Returns whether the memo is in place (False for a GX version it was not checked against).
    """
    global _derive
    import great_expectations
    from great_expectations.expectations.expectation import Expectation

    if not great_expectations.__version__.startswith(CHECKED_GX_VERSIONS):
        return False
    with _install_lock:
        if _derive is None:
            derive = vars(Expectation)["configuration"].fget

            def configuration(self: Any) -> Any:
                memo = _memo if _memo_owner == threading.get_ident() else None
                if memo is None:
                    return derive(self)
                seen = memo.get(id(self))
                if seen is None or seen[0] is not self:
                    # The first read is not kept: GX changes the suite's configurations in
                    # place (it substitutes parameters), and it reads those only once.
                    memo[id(self)] = (self, None)
                    return derive(self)
                if seen[1] is None:
                    memo[id(self)] = (self, derive(self))
                return memo[id(self)][1]

            configuration.__doc__ = derive.__doc__
            Expectation.configuration = property(configuration)  # type: ignore[method-assign,assignment]
            _derive = derive
    return True


@contextmanager
def memoised_configurations() -> Iterator[None]:
    """Within the block, on this thread, each expectation's configuration is derived once.

    Callers hold the validator's lock, so one block is active at a time; reads from other
    threads are derived as usual.
    """
    global _memo, _memo_owner
    if _memo is not None:
        raise RuntimeError("configurations are already memoised (blocks do not nest)")
    _memo, _memo_owner = {}, threading.get_ident()
    try:
        yield
    finally:
        _memo, _memo_owner = None, None
