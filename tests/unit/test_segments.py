from __future__ import annotations

import pyarrow as pa

from manifest_exchange.paxlst.segments import segment_table
from manifest_exchange.paxlst.syntax import canonicalise

TWO_OBJECTS = [
    b"UNB+X'UNH+1+PAXLST'BGM+745'TDT+20+CI1'LOC+125+TPE'NAD+FL+++A'DTM+329:800101'"
    b"NAD+FL+++B'CNT+42:2'UNT+9+1'UNZ+1+X'",
    b"UNB+Y'UNH+2+PAXLST'BGM+250'NAD+FM+++C'UNT+4+2'UNH+3+PAXLST'BGM+745'UNT+3+3'UNZ+2+Y'",
]


def _table() -> pa.Table:
    texts = [canonicalise(data).text for data in TWO_OBJECTS]
    return segment_table(
        pa.array([0, 1], pa.int32()),
        pa.array([0, 0], pa.int64()),
        pa.array(texts, pa.large_string()),
    )


def test_positions_restart_per_object() -> None:
    rows = _table().to_pylist()
    assert [r["position"] for r in rows if r["object_id"] == 1][:3] == [1, 2, 3]
    assert rows[0]["tag"] == "UNB"


def test_messages_legs_and_person_groups_are_numbered() -> None:
    rows = _table().to_pylist()
    by_tag = [(r["tag"], r["message_seq"], r["group_kind"]) for r in rows]
    assert by_tag[0] == ("UNB", 0, "trailer")
    first_unh = next(r for r in rows if r["tag"] == "UNH")
    first_nad = next(r for r in rows if r["tag"] == "NAD")
    assert first_nad["message_seq"] == first_unh["message_seq"] > 0
    assert first_nad["group_kind"] == "person"
    # The envelope's UNZ stays with the last message but is marked as after its UNT.
    unz = [r for r in rows if r["tag"] == "UNZ"]
    assert all(r["after_unt"] for r in unz)
    people = [r for r in rows if r["group_kind"] == "person"]
    assert len({r["group_seq"] for r in people}) == 3
    # The DTM belongs to the first person's group, not to the header.
    dob = next(r for r in rows if r["tag"] == "DTM")
    first_person = next(r for r in rows if r["tag"] == "NAD")
    assert dob["group_seq"] == first_person["group_seq"]
    # Only segments after a TDT in the same message carry a leg number.
    assert {r["leg_seq"] for r in rows if r["tag"] == "BGM"} == {0}
    assert next(r for r in rows if r["tag"] == "LOC")["leg_seq"] > 0
    assert len({r["message_seq"] for r in rows if r["tag"] == "UNH"}) == 3
