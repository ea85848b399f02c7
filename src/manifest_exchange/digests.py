"""SHA-256 of many small byte strings, on threads that share the GIL.

``hashlib`` releases the GIL for inputs of 2,048 bytes or more, and taking it back beside a
thread busy in Python waits up to the switch interval; pieces below that size keep the GIL
(decision 0014). A batch's parser hashes every object and every message this way; large single
files (a drop's Parquet, an upload's checksum) still use ``hashlib`` directly and let other
threads run.
"""

from __future__ import annotations

import hashlib

# One byte under CPython's HASHLIB_GIL_MINSIZE. A hash object that was once given a larger
# piece releases the GIL for every later piece too, so no piece may be larger.
_PIECE_BYTES = 2047


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """The hex SHA-256 of ``data``, computed without releasing the GIL."""
    digest = hashlib.sha256()
    view = memoryview(data).cast("B")
    for start in range(0, len(view), _PIECE_BYTES):
        digest.update(view[start : start + _PIECE_BYTES])
    return digest.hexdigest()
