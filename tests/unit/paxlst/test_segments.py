from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from manifest_exchange.paxlst.segments import (
    PERSON_LISTS,
    PERSON_SEGMENTS,
    SplitBatch,
    _packed,
    _Pieces,
    _starts_with,
    _tag_codes,
    split_batch,
)
from manifest_exchange.paxlst.syntax import COMPONENT, ELEMENT, canonicalise

TWO_OBJECTS = [
    b"UNB+X'UNH+1+PAXLST'BGM+745'TDT+20+CI1'LOC+125+TPE'NAD+FL+++A'DTM+329:800101'"
    b"DTM+329:990101'NAT+2+USA'NAT+2+JPN'NAD+FL+++B'DOC+P+1'DOC+V+2'CNT+42:2'UNT+12+1'UNZ+1+X'",
    b"UNB+Y'UNH+2+PAXLST'BGM+250'NAD+FM+++C'UNT+4+2'UNH+3+PAXLST'BGM+745'UNT+3+3'UNZ+2+Y'"
    b"NAD+FL+++STRAY'",
]


def _split(objects: list[bytes] = TWO_OBJECTS) -> SplitBatch:
    texts = [canonicalise(data).text for data in objects]
    return split_batch(
        pa.array(range(len(texts)), pa.int32()),
        pa.array([0] * len(texts), pa.int64()),
        pa.array(texts, pa.large_string()),
    )


def test_positions_restart_per_object() -> None:
    rows = _split().segments.to_pylist()
    assert [r["position"] for r in rows if r["object_id"] == 1][:3] == [1, 2, 3]
    assert rows[0]["tag"] == "UNB"


def test_messages_and_legs_are_numbered_outside_person_groups() -> None:
    rows = _split().segments.to_pylist()
    assert (rows[0]["tag"], rows[0]["message_seq"], rows[0]["group_kind"]) == ("UNB", 0, "trailer")
    assert all(r["group_kind"] != "person" for r in rows)
    # The envelope's UNZ stays with the last message but is marked as after its UNT.
    assert all(r["after_unt"] for r in rows if r["tag"] == "UNZ")
    # Only segments after a TDT in the same message carry a leg number.
    assert {r["leg_seq"] for r in rows if r["tag"] == "BGM"} == {0}
    assert next(r for r in rows if r["tag"] == "LOC")["leg_seq"] > 0
    assert len({r["message_seq"] for r in rows if r["tag"] == "UNH"}) == 3
    # A NAD after the last UNT is a stray segment, not a person.
    stray = [r for r in rows if r["tag"] == "NAD"]
    assert len(stray) == 1
    assert stray[0]["after_unt"]


def test_persons_carry_the_first_segment_of_each_field() -> None:
    split = _split()
    persons = split.persons.to_pylist()
    assert len(persons) == 3
    first, second, crew = persons
    unh = {r["message_seq"] for r in split.segments.to_pylist() if r["tag"] == "UNH"}
    assert first["message_seq"] in unh
    assert first["nad_segment"].endswith("A")
    assert first["dob_segment"].endswith("800101")  # the second DTM 329 is ignored
    assert [s[-3:] for s in first["nat_segments"]] == ["USA", "JPN"]
    assert first["doc_segment"] is None
    assert first["doc_count"] == 0
    assert second["doc_segment"].endswith("1")
    assert second["doc_count"] == 2
    assert second["nat_segments"] == []
    assert crew["object_id"] == 1
    assert crew["nad_position"] == 4


def test_payload_hash_ignores_the_envelope_and_layout() -> None:
    message = b"BGM+745'NAD+FL+++A'CNT+42:1'"
    first = b"UNB+X'UNH+1+PAXLST'" + message + b"UNT+5+1'UNZ+1+X'"
    again = (
        b"UNA:+.? 'UNB+Z'\r\nUNH+9+PAXLST'\r\n" + message.replace(b"'", b"'\r\n  ") + b"UNT+5+9'"
    )
    payloads = _split([first, again]).payloads.column("payload_sha256").to_pylist()
    assert len(payloads) == 2
    assert payloads[0] == payloads[1]


def test_segment_heads_agree_with_the_string_kernels() -> None:
    """Tags and field prefixes read from packed segment heads are what the strings say."""
    rng = random.Random(7)
    alphabet = ["D", "T", "M", "d", "L", "O", "C", "1", "3", "9", " ", "Ä", ELEMENT, COMPONENT]
    texts = ["", "DT", "DTM", "dtm" + ELEMENT, "LOC" + ELEMENT + "91" + ELEMENT + "TWN"]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(3000)]
    prefixes = [*PERSON_SEGMENTS.values(), *PERSON_LISTS.values()]
    # Each prefix, a near miss (its last separator swapped, cut short) and in lower case.
    for prefix in prefixes:
        swapped = prefix[:-1] + (COMPONENT if prefix[-1] == ELEMENT else ELEMENT)
        texts += [prefix + "X", prefix, swapped + "X", prefix[:-1], prefix.lower() + "X"]
    # A slice, so the array does not start at its buffers' first offset.
    array = pa.array(["padding", *texts], pa.large_string()).slice(1)
    pieces = _Pieces.of(array)
    heads = pieces.heads(np.arange(len(texts)))
    tags = np.array(
        pc.ascii_upper(pc.utf8_trim(pc.utf8_slice_codeunits(array, 0, 3), " ")).to_pylist()
    )
    codes = _tag_codes(heads)
    for tag in ("DTM", "LOC", "NAD", "UNH"):
        assert ((codes == _packed(tag)) == (tags == tag)).all(), tag
    for prefix in prefixes:
        expected = pc.starts_with(array, prefix).to_numpy(zero_copy_only=False)
        assert (_starts_with(heads, prefix) == expected).all(), prefix
        assert expected.any(), f"no text starts with {prefix!r}: the test proves nothing"


def test_a_field_prefix_longer_than_a_segment_head_is_refused() -> None:
    with pytest.raises(ValueError, match="longer than the 8 bytes"):
        _packed(f"RFF{ELEMENT}ABCDE{COMPONENT}")
