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

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.digests import sha256_hex
from manifest_exchange.paxlst.syntax import COMPONENT, ELEMENT, TERMINATOR

GROUP_HEADER, GROUP_PERSON, GROUP_TRAILER = 1, 2, 3
GROUP_KINDS = {GROUP_HEADER: "header", GROUP_PERSON: "person", GROUP_TRAILER: "trailer"}
_TRAILER_TAGS = ("CNT", "UNT", "UNB", "UNG", "UNE", "UNZ")
_NOT_PAYLOAD = ("UNH", "UNT", "UNB", "UNG", "UNE", "UNZ")
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
    return SplitBatch(
        segments=_outside_persons(placed),
        persons=_pivot_persons(placed),
        payloads=_payload_hashes(placed),
    )


@dataclass(frozen=True)
class _Pieces:
    """The trimmed pieces of a batch's text (empty ones too) and their bytes, not copied."""

    text: pa.Array
    starts: np.ndarray
    lengths: np.ndarray
    data: np.ndarray

    @classmethod
    def of(cls, text: pa.Array) -> _Pieces:
        _, offsets_buffer, data_buffer = text.buffers()
        offsets = np.frombuffer(offsets_buffer, np.int64)[text.offset : text.offset + len(text) + 1]
        data = np.frombuffer(data_buffer, np.uint8) if data_buffer else np.zeros(0, np.uint8)
        return cls(text, offsets[:-1], np.diff(offsets), data)

    def heads(self, pieces: np.ndarray) -> np.ndarray:
        """The first eight bytes of each piece as a little-endian integer, zeros past its end.

        Tags and field prefixes are compared on these, one integer operation per segment, where
        a string kernel would copy or scan every segment for every comparison.
        """
        padded = np.zeros(len(self.data) + _HEAD_BYTES, np.uint8)
        padded[: len(self.data)] = self.data
        # Element i of this view is the eight bytes from byte i on (unaligned reads).
        words = np.ndarray((len(self.data) + 1,), "<u8", padded, strides=(1,))
        heads: np.ndarray = words[self.starts[pieces]]
        heads &= _HEAD_MASKS[np.minimum(self.lengths[pieces], _HEAD_BYTES)]
        return heads

    def take(self, pieces: np.ndarray) -> pa.Array:
        return self.text.take(pa.array(pieces, pa.int64()))


_HEAD_BYTES = 8
_HEAD_MASKS = np.array([(1 << (8 * n)) - 1 for n in range(_HEAD_BYTES + 1)], np.uint64)
_ASCII_UPPER = np.arange(256, dtype=np.uint32)
_ASCII_UPPER[ord("a") : ord("z") + 1] -= ord("a") - ord("A")


def _packed(text: str) -> int:
    """Text packed as :meth:`_Pieces.heads` packs a segment's first bytes."""
    data = text.encode("ascii")
    if len(data) > _HEAD_BYTES:
        raise ValueError(f"{text!r} is longer than the {_HEAD_BYTES} bytes of a segment head")
    return int.from_bytes(data, "little")


def _tag_codes(heads: np.ndarray) -> np.ndarray:
    """Each segment's first three bytes, ASCII upper-cased and packed. Equal to
    ``_packed(tag)`` exactly when the tag column (upper(trim(first three))) equals ``tag``."""
    code = np.zeros(len(heads), np.uint32)
    for k in range(3):
        byte = ((heads >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.intp)
        code |= _ASCII_UPPER[byte] << np.uint32(8 * k)
    return code


def _starts_with(heads: np.ndarray, prefix: str) -> np.ndarray:
    """Whether each head starts with ``prefix`` (exact case). Bytes past a segment's end are
    zeros, which no prefix holds, so a shorter segment never matches."""
    matches: np.ndarray = (heads & _HEAD_MASKS[len(prefix)]) == np.uint64(_packed(prefix))
    return matches


_UNH, _UNT, _TDT, _NAD = (_packed(tag) for tag in ("UNH", "UNT", "TDT", "NAD"))
_TRAILER_CODES = np.array([_packed(tag) for tag in _TRAILER_TAGS], np.uint32)
_NOT_PAYLOAD_CODES = np.array([_packed(tag) for tag in _NOT_PAYLOAD], np.uint32)


@dataclass(frozen=True)
class _Placed:
    """Every segment of a batch (a non-empty piece), in order, and where it belongs.

    Arrays are per segment; ``piece`` indexes :attr:`pieces`.
    """

    pieces: _Pieces
    piece: np.ndarray
    chunk_of: np.ndarray
    chunk_first_piece: np.ndarray
    chunk_offsets: np.ndarray
    object_id: np.ndarray
    head: np.ndarray
    code: np.ndarray
    kind_of_row: np.ndarray
    group_seq: np.ndarray
    message_seq: np.ndarray
    after_unt: np.ndarray
    leg_seq: np.ndarray

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """1-based position of segments in their object (empty pieces count, as in UNT)."""
        chunk = self.chunk_of[rows]
        positions: np.ndarray = self.piece[rows] - self.chunk_first_piece[chunk] + 1
        positions += self.chunk_offsets[chunk]
        return positions


def _place_segments(object_ids: pa.Array, offsets: pa.Array, texts: pa.Array) -> _Placed:
    split = pc.split_pattern(texts, TERMINATOR)
    pieces = _Pieces.of(pc.utf8_trim(pc.list_flatten(split), " \t\r\n"))
    piece = np.flatnonzero(pieces.lengths)
    chunk_of = pc.list_parent_indices(split).to_numpy()[piece]
    ids = object_ids.to_numpy(zero_copy_only=False)[chunk_of]
    head = pieces.heads(piece)
    code = _tag_codes(head)

    object_start = np.ones(len(ids), dtype=bool)
    object_start[1:] = ids[1:] != ids[:-1]
    is_unh = code == _UNH
    is_unt = code == _UNT
    is_tdt = code == _TDT

    message_seq, run_start = _runs(is_unh | object_start, is_unh)
    unt_before = np.cumsum(is_unt, dtype=np.int32) - is_unt  # UNTs strictly before each row
    after_unt = (unt_before - unt_before[run_start]) > 0
    leg_seq, _ = _runs(is_tdt | is_unh | object_start, is_tdt)
    # A NAD after UNT or outside any message is a stray, not a person of some message.
    in_message = (message_seq > 0) & ~after_unt
    # The person-start pattern needs a regex; only NAD segments can match it, so only they run it.
    nad_rows = np.flatnonzero((code == _NAD) & in_message)
    is_person = np.zeros(len(ids), dtype=bool)
    nad_text = pieces.take(piece[nad_rows])
    is_person[nad_rows] = _mask(pc.match_substring_regex(nad_text, _PERSON_START))

    kind = np.where(
        is_unh,
        GROUP_HEADER,
        np.where(
            is_person, GROUP_PERSON, np.where(np.isin(code, _TRAILER_CODES), GROUP_TRAILER, 0)
        ),
    ).astype(np.int8)
    kind[object_start & (kind == 0)] = GROUP_TRAILER
    group_seq = np.cumsum(kind != 0, dtype=np.int32)
    kind_of_group = np.zeros(int(group_seq[-1]) + 1 if len(group_seq) else 1, dtype=np.int8)
    kind_of_group[group_seq[kind != 0]] = kind[kind != 0]
    return _Placed(
        pieces=pieces,
        piece=piece,
        chunk_of=chunk_of,
        chunk_first_piece=split.offsets.to_numpy()[:-1],
        chunk_offsets=offsets.to_numpy(zero_copy_only=False),
        object_id=ids,
        head=head,
        code=code,
        kind_of_row=kind_of_group[group_seq],
        group_seq=group_seq,
        message_seq=message_seq,
        after_unt=after_unt,
        leg_seq=leg_seq,
    )


def _outside_persons(placed: _Placed) -> pa.Table:
    """The segments outside person groups, with their placing, for the SQL."""
    rows = np.flatnonzero(placed.kind_of_row != GROUP_PERSON)
    segment = placed.pieces.take(placed.piece[rows])
    names = pa.array([None, *GROUP_KINDS.values()], pa.string())
    return pa.table(
        {
            "object_id": pa.array(placed.object_id[rows], pa.int32()),
            "position": pa.array(placed.positions(rows), pa.int64()),
            "segment_index": pa.array(rows + 1, pa.int64()),
            "segment": segment,
            # ASCII upper-casing, as the tag codes the segments were placed by.
            "tag": pc.ascii_upper(pc.utf8_trim(pc.utf8_slice_codeunits(segment, 0, 3), " ")),
            "message_seq": pa.array(placed.message_seq[rows], pa.int64()),
            "after_unt": pa.array(placed.after_unt[rows], pa.bool_()),
            "leg_seq": pa.array(placed.leg_seq[rows], pa.int64()),
            "group_seq": pa.array(placed.group_seq[rows], pa.int64()),
            "group_kind": names.take(pa.array(placed.kind_of_row[rows])),
        }
    )


def _pivot_persons(placed: _Placed) -> pa.Table:
    """One row per person group: where it starts and the first segment for each field."""
    rows = np.flatnonzero(placed.kind_of_row == GROUP_PERSON)
    groups = placed.group_seq[rows]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]
    starts = rows[first]
    # For every person row, the index of its person (persons are in row order).
    person_of = np.cumsum(first) - 1
    pieces = placed.pieces
    piece = placed.piece[rows]
    columns: dict[str, pa.Array] = {
        "object_id": pa.array(placed.object_id[starts], pa.int32()),
        "message_seq": pa.array(placed.message_seq[starts], pa.int64()),
        "nad_position": pa.array(placed.positions(starts), pa.int64()),
        "nad_segment": pieces.take(placed.piece[starts]),
    }
    # Each field's prefix is compared on the segment heads, only where the tag is its tag.
    code, head = placed.code[rows], placed.head[rows]
    by_tag: dict[str, np.ndarray] = {}
    matches: dict[str, np.ndarray] = {}
    for name, prefix in {**PERSON_SEGMENTS, **PERSON_LISTS}.items():
        tag = prefix[:3]
        if tag not in by_tag:
            by_tag[tag] = np.flatnonzero(code == _packed(tag))
        tagged = by_tag[tag]
        matches[name] = tagged[_starts_with(head[tagged], prefix)]
    for name in PERSON_SEGMENTS:
        columns[name] = _first_per_person(pieces, piece, matches[name], person_of, len(starts))
    for count_name, field in PERSON_COUNTS.items():
        counts = np.bincount(person_of[matches[field]], minlength=len(starts))
        columns[count_name] = pa.array(counts, pa.int64())
    for name in PERSON_LISTS:
        hits = matches[name]
        counts = np.bincount(person_of[hits], minlength=len(starts))
        list_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        columns[name] = pa.ListArray.from_arrays(pa.array(list_offsets), pieces.take(piece[hits]))
    return pa.table(columns)


def _first_per_person(
    pieces: _Pieces, piece: np.ndarray, hits: np.ndarray, person_of: np.ndarray, persons: int
) -> pa.Array:
    """Per person, the first of its rows in ``hits`` (ascending), or null."""
    owners = person_of[hits]
    first = np.ones(len(hits), dtype=bool)
    first[1:] = owners[1:] != owners[:-1]
    take = np.full(persons, -1, dtype=np.int64)
    take[owners[first]] = piece[hits[first]]
    return pieces.text.take(pa.array(take, mask=take < 0))


def _payload_hashes(placed: _Placed) -> pa.Table:
    """SHA-256 of each message's canonical payload: layout and separators do not count."""
    payload = (
        (placed.message_seq > 0) & ~placed.after_unt & ~np.isin(placed.code, _NOT_PAYLOAD_CODES)
    )
    rows = np.flatnonzero(payload)
    messages = placed.message_seq[rows]
    boundary = np.ones(len(rows), dtype=bool)
    boundary[1:] = messages[1:] != messages[:-1]
    offsets = np.concatenate([np.flatnonzero(boundary), [len(rows)]]).astype(np.int64)
    values = placed.pieces.take(placed.piece[rows]).cast(pa.large_string())
    joined = pc.binary_join(
        pa.LargeListArray.from_arrays(pa.array(offsets), values),
        pa.scalar(TERMINATOR, pa.large_string()),
    )
    hashes = [sha256_hex(value.as_buffer()) for value in joined]
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
    run = np.cumsum(starts, dtype=np.int32)
    first_rows = np.flatnonzero(starts)
    run_start = first_rows[run - 1] if len(first_rows) else np.zeros(0, dtype=np.int64)
    seq = np.where(counted[run_start], run, 0)
    return seq, run_start
