"""Canonical text -> segments, person groups and message payload hashes, in Arrow and numpy.

Placing a segment (which message, person group or flight leg it belongs to) is a running count
over segment order, and a person is the run of segments from one NAD FL/FM/DDU/DDT to the next
group start. DuckDB would need a sorted window for the counts and a hash aggregate over every
segment for the persons; Arrow and numpy do both in linear passes over segments that are
already in order (several times faster here). What the segments *mean* is still read by the SQL
in ``sql/``: this module only hands it, per person, the raw segment behind each field.

Ids are global to the batch, so grouping needs no object id: ``message_seq`` is 0 outside a
message, ``leg_seq`` is 0 outside a flight leg, and every row has a ``group_seq``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.paxlst.syntax import COMPONENT, ELEMENT, TERMINATOR

GROUP_HEADER, GROUP_PERSON, GROUP_TRAILER = 1, 2, 3
GROUP_KINDS = {GROUP_HEADER: "header", GROUP_PERSON: "person", GROUP_TRAILER: "trailer"}
_TRAILER_TAGS = pa.array(["CNT", "UNT", "UNB", "UNG", "UNE", "UNZ"])
_NOT_PAYLOAD = pa.array(["UNH", "UNT", "UNB", "UNG", "UNE", "UNZ"])
_PERSON_START = f"^NAD *{ELEMENT} *(FL|FM|DDU|DDT) *($|{ELEMENT}|{COMPONENT})"

# Person fields: column -> the start of the segment that carries it, in canonical text.
# The first such segment in the person's group wins (a second DTM 36 is ignored).
PERSON_SEGMENTS: dict[str, str] = {
    "att_segment": f"ATT{ELEMENT}2{ELEMENT}",
    "dob_segment": f"DTM{ELEMENT}329{COMPONENT}",
    "residence_segment": f"LOC{ELEMENT}174{ELEMENT}",
    "embark_segment": f"LOC{ELEMENT}178{ELEMENT}",
    "debark_segment": f"LOC{ELEMENT}179{ELEMENT}",
    "doc_segment": f"DOC{ELEMENT}",
    "doc_expiry_segment": f"DTM{ELEMENT}36{COMPONENT}",
    "doc_issuer_segment": f"LOC{ELEMENT}91{ELEMENT}",
    "pnr_segment": f"RFF{ELEMENT}AVF{COMPONENT}",
    "seat_segment": f"RFF{ELEMENT}SEA{COMPONENT}",
    "passenger_ref_segment": f"RFF{ELEMENT}ABO{COMPONENT}",
}
# Segments that may repeat in one person and are all kept, or counted.
PERSON_LISTS = {"nat_segments": f"NAT{ELEMENT}"}
PERSON_COUNTS = {"doc_count": "doc_segment", "doc_expiry_count": "doc_expiry_segment"}


@dataclass(frozen=True)
class SplitBatch:
    """One batch of canonical text, split and placed.

    Attributes:
        segments: every segment outside person groups (envelope, headers, trailers, strays).
        persons: one row per person group with the raw segment behind each field.
        payloads: one row per message with the SHA-256 of its payload (BGM..UNT, no envelope).
    """

    segments: pa.Table
    persons: pa.Table
    payloads: pa.Table


def split_batch(object_ids: pa.Array, offsets: pa.Array, texts: pa.Array) -> SplitBatch:
    """Split canonical chunks into segments, persons and message payloads.

    Args:
        object_ids: the object of each chunk (chunks of one object are adjacent, in order).
        offsets: how many segments of the object precede each chunk.
        texts: the chunks' canonical text.
    """
    placed = _place_segments(object_ids, offsets, texts)
    is_person = placed.kind_of_row == GROUP_PERSON
    return SplitBatch(
        segments=placed.table.filter(pa.array(~is_person)),
        persons=_pivot_persons(placed, is_person),
        payloads=_payload_hashes(placed),
    )


@dataclass(frozen=True)
class _Placed:
    table: pa.Table
    segment: pa.Array
    kind_of_row: np.ndarray
    group_seq: np.ndarray
    message_seq: np.ndarray
    after_unt: np.ndarray


def _place_segments(object_ids: pa.Array, offsets: pa.Array, texts: pa.Array) -> _Placed:
    pieces = pc.split_pattern(texts, TERMINATOR)
    flat = pc.list_flatten(pieces)
    chunk_of = pc.list_parent_indices(pieces).to_numpy()
    starts = pieces.offsets.to_numpy()[:-1]
    position = (
        np.arange(len(flat), dtype=np.int64)
        - starts[chunk_of]
        + 1
        + offsets.to_numpy(zero_copy_only=False)[chunk_of]
    )
    segment = pc.utf8_trim(flat, " \t\r\n")
    keep = pc.not_equal(segment, "")
    segment = segment.filter(keep)
    object_id = object_ids.take(pa.array(chunk_of)).filter(keep)
    position = position[keep.to_numpy(zero_copy_only=False)]
    tag = pc.utf8_upper(pc.utf8_trim(pc.utf8_slice_codeunits(segment, 0, 3), " "))

    ids = object_id.to_numpy(zero_copy_only=False)
    object_start = np.ones(len(ids), dtype=bool)
    object_start[1:] = ids[1:] != ids[:-1]
    is_unh = _mask(pc.equal(tag, "UNH"))
    is_unt = _mask(pc.equal(tag, "UNT"))
    is_tdt = _mask(pc.equal(tag, "TDT"))

    message_seq, run_start = _runs(is_unh | object_start, is_unh)
    unt_before = np.cumsum(is_unt) - is_unt  # UNTs strictly before each row
    after_unt = (unt_before - unt_before[run_start]) > 0
    leg_seq, _ = _runs(is_tdt | is_unh | object_start, is_tdt)
    # A NAD after UNT or outside any message is a stray, not a person of some message.
    in_message = (message_seq > 0) & ~after_unt
    # The person-start pattern needs a regex; only NAD segments can match it, so only they run it.
    nad_rows = np.flatnonzero(_mask(pc.equal(tag, "NAD")))
    is_person = np.zeros(len(ids), dtype=bool)
    is_person[nad_rows] = _mask(pc.match_substring_regex(segment.take(nad_rows), _PERSON_START))
    is_person &= in_message
    is_trailer = _mask(pc.is_in(tag, _TRAILER_TAGS))

    kind = np.where(
        is_unh,
        GROUP_HEADER,
        np.where(is_person, GROUP_PERSON, np.where(is_trailer, GROUP_TRAILER, 0)),
    )
    kind = np.where(object_start & (kind == 0), GROUP_TRAILER, kind)
    group_seq = np.cumsum(kind != 0)
    kind_of_group = np.zeros(int(group_seq[-1]) + 1 if len(group_seq) else 1, dtype=np.int8)
    kind_of_group[group_seq[kind != 0]] = kind[kind != 0]
    kind_of_row = kind_of_group[group_seq]
    names = pa.array([None, *GROUP_KINDS.values()], pa.string())

    table = pa.table(
        {
            "object_id": object_id,
            "position": pa.array(position, pa.int64()),
            "segment_index": pa.array(np.arange(1, len(ids) + 1), pa.int64()),
            "segment": segment,
            "tag": tag,
            "message_seq": pa.array(message_seq, pa.int64()),
            "after_unt": pa.array(after_unt, pa.bool_()),
            "leg_seq": pa.array(leg_seq, pa.int64()),
            "group_seq": pa.array(group_seq, pa.int64()),
            "group_kind": names.take(pa.array(kind_of_row)),
        }
    )
    return _Placed(table, segment, kind_of_row, group_seq, message_seq, after_unt)


def _pivot_persons(placed: _Placed, is_person: np.ndarray) -> pa.Table:
    """One row per person group: where it starts and the first segment for each field."""
    rows = np.flatnonzero(is_person)
    groups = placed.group_seq[rows]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]
    starts = rows[first]
    # For every person row, the index of its person (persons are in row order).
    person_of = np.cumsum(first) - 1
    segment = placed.segment.filter(pa.array(is_person))
    table = placed.table
    columns: dict[str, pa.Array] = {
        "object_id": table.column("object_id").take(starts),
        "message_seq": table.column("message_seq").take(starts),
        "nad_position": table.column("position").take(starts),
        "nad_segment": placed.segment.take(starts),
    }
    matches = {
        name: _mask(pc.starts_with(segment, prefix)) for name, prefix in PERSON_SEGMENTS.items()
    }
    for name, hit in matches.items():
        columns[name] = _first_per_person(segment, hit, person_of, len(starts))
    for count_name, field in PERSON_COUNTS.items():
        counts = np.bincount(person_of[matches[field]], minlength=len(starts))
        columns[count_name] = pa.array(counts, pa.int64())
    for name, prefix in PERSON_LISTS.items():
        hit = _mask(pc.starts_with(segment, prefix))
        counts = np.bincount(person_of[hit], minlength=len(starts))
        list_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        columns[name] = pa.ListArray.from_arrays(
            pa.array(list_offsets), segment.filter(pa.array(hit))
        )
    return pa.table(columns)


def _first_per_person(
    segment: pa.Array, hit: np.ndarray, person_of: np.ndarray, persons: int
) -> pa.Array:
    rows = np.flatnonzero(hit)
    owners = person_of[rows]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = owners[1:] != owners[:-1]
    take = np.full(persons, -1, dtype=np.int64)
    take[owners[first]] = rows[first]
    return segment.take(pa.array(take, mask=take < 0))


def _payload_hashes(placed: _Placed) -> pa.Table:
    """SHA-256 of each message's canonical payload: layout and separators do not count."""
    tag = placed.table.column("tag")
    payload = (placed.message_seq > 0) & ~placed.after_unt & ~_mask(pc.is_in(tag, _NOT_PAYLOAD))
    rows = np.flatnonzero(payload)
    messages = placed.message_seq[rows]
    boundary = np.ones(len(rows), dtype=bool)
    boundary[1:] = messages[1:] != messages[:-1]
    offsets = np.concatenate([np.flatnonzero(boundary), [len(rows)]]).astype(np.int64)
    values = placed.segment.take(pa.array(rows)).cast(pa.large_string())
    joined = pc.binary_join(
        pa.LargeListArray.from_arrays(pa.array(offsets), values),
        pa.scalar(TERMINATOR, pa.large_string()),
    )
    hashes = [hashlib.sha256(value.as_buffer()).hexdigest() for value in joined]
    return pa.table(
        {
            "message_seq": pa.array(messages[boundary], pa.int64()),
            "payload_sha256": pa.array(hashes, pa.string()),
        }
    )


def _mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow result as a numpy mask (nulls count as false)."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _runs(starts: np.ndarray, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Number the runs that begin where ``starts`` is true.

    Returns ``(seq, run_start)``: a run's number where its first row is ``counted`` (else 0),
    and the index of each row's run start.
    """
    run = np.cumsum(starts)
    first_rows = np.flatnonzero(starts)
    run_start = first_rows[run - 1] if len(first_rows) else np.zeros(0, dtype=np.int64)
    seq = np.where(counted[run_start], run, 0)
    return seq, run_start
