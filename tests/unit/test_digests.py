from __future__ import annotations

import hashlib

import pyarrow as pa
import pytest

from manifest_exchange import digests
from manifest_exchange.digests import sha256_hex

SIZES = [0, 1, 2046, 2047, 2048, 4094, 4095, 13_000, 1_000_003]


@pytest.mark.parametrize("size", SIZES)
def test_the_digest_is_sha256_of_the_whole_input(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_hex(data) == expected
    assert sha256_hex(bytearray(data)) == expected
    assert sha256_hex(memoryview(data)) == expected
    assert sha256_hex(pa.py_buffer(data)) == expected


def test_no_piece_reaches_the_size_at_which_hashlib_releases_the_gil(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pieces: list[int] = []
    sha256 = hashlib.sha256

    class Recording:
        def __init__(self) -> None:
            self.inner = sha256()

        def update(self, piece: memoryview) -> None:
            pieces.append(len(piece))
            self.inner.update(piece)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(digests.hashlib, "sha256", Recording)
    data = b"UNH+1+PAXLST:D:05B:UN:IATA'" * 2000
    assert sha256_hex(data) == sha256(data).hexdigest()
    assert sum(pieces) == len(data)
    assert max(pieces) < 2048
