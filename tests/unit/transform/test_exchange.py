"""Pure helpers of the exchange transform (the SQL steps are tested through the flow)."""

from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from manifest_exchange.transform.exchange import doc_match_hmacs, document_shapes

# RFC 4231, test case 2: HMAC-SHA256 with key "Jefe".
RFC_4231_KEY = b"Jefe"
RFC_4231_DATA = "what do ya want for nothing?"
RFC_4231_HMAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_doc_match_hmacs_are_hmac_sha256_in_hex_one_per_input() -> None:
    inputs = [RFC_4231_DATA, None, "P|TWN|A12345678", "P|TWN|A12345679", RFC_4231_DATA]
    digests = doc_match_hmacs(RFC_4231_KEY, inputs)
    # Each input is hashed on its own: the copies of the keyed HMAC do not share state.
    assert digests[0] == digests[4] == RFC_4231_HMAC
    assert digests[1] is None
    assert digests[2] != digests[3]
    assert doc_match_hmacs(RFC_4231_KEY, ["P|TWN|A12345678"]) == [digests[2]]


def _document_numbers() -> list[str | None]:
    rng = random.Random(11)
    alphabet = "AZMaz09 -<.ÄÉßΩ日本" + "\u00a0"
    numbers: list[str | None] = ["", None, "A12345678", "p-1234<<", "ÄB9", "日本12"]
    numbers += ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(2000)]
    return numbers


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_document_shapes_are_what_sql_translate_gives(kind: pa.DataType) -> None:
    """Capitals to A, digits to 9, everything else (lower case, other scripts) kept."""
    numbers = _document_numbers()
    expected = [
        row[0]
        for row in duckdb.execute(
            "select translate(n, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', "
            "'AAAAAAAAAAAAAAAAAAAAAAAAAA9999999999') from unnest(?) with ordinality as t(n, i) "
            "order by i",
            [numbers],
        ).fetchall()
    ]
    # Chunks that are slices, so values start past their buffers' first byte.
    whole = pa.array(["padding", *numbers, "padding"], kind)
    chunked = pa.chunked_array([whole.slice(1, 700), whole.slice(701, len(numbers) - 700)])
    shapes = document_shapes(chunked)
    assert shapes.type == kind
    assert shapes.to_pylist() == expected
    assert shapes.to_pylist()[:6] == ["", None, "A99999999", "p-9999<<", "ÄA9", "日本99"]


def test_document_shapes_refuse_what_is_not_text() -> None:
    with pytest.raises(TypeError, match="must be strings"):
        document_shapes(pa.chunked_array([pa.array([1, 2])]))
