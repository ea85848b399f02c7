"""Summarise py-spy's collapsed stacks (``--format raw``): where the samples went.

Usage: ``python bench/profile_summary.py PROFILE.txt [--top 25]``. Prints two tables: the
project's own functions by inclusive share (a function and everything it calls), and every
function by self share (samples where it was the innermost frame). Idle threads (waiting on a
lock, a socket or a future) are left out, so shares are of busy samples.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Matched against the function's last name (py-spy qualifies methods: ``SocketIO.readinto``).
IDLE = re.compile(
    r"^(wait|_wait_for_tstate_lock|select|poll|do_poll|epoll|accept|recv|recv_into|read|"
    r"readinto|sleep|acquire|_worker|get|run_forever|_run_once|do_handshake)$"
)
PROJECT = ("manifest_exchange", "flows/exchange.py")


def summarise(path: Path, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    busy = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames or _is_idle(frames[-1]):
            continue
        samples = int(count)
        busy += samples
        own[_name(frames[-1])] += samples
        for name in {_name(f) for f in frames if any(p in f for p in PROJECT)}:
            inclusive[name] += samples
    lines = [f"busy samples: {busy}", "", "| project function (inclusive) | share |", "|---|---|"]
    lines += [f"| {n} | {100 * c / busy:.1f}% |" for n, c in inclusive.most_common(top)]
    lines += ["", "| function (self) | share |", "|---|---|"]
    lines += [f"| {n} | {100 * c / busy:.1f}% |" for n, c in own.most_common(top)]
    return "\n".join(lines)


def _is_idle(frame: str) -> bool:
    """True for a frame that waits: a lock, a socket, a selector, a sleep."""
    function = frame.split(" (", 1)[0]
    return bool(IDLE.match(function.rsplit(".", 1)[-1]))


def _name(frame: str) -> str:
    """``function (path/to/module.py:line)`` -> ``function (module.py)``."""
    match = re.match(r"(.*?) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, location = match.groups()
    return f"{function} ({'/'.join(Path(location).parts[-2:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
