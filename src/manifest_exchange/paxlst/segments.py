"""Canonical text -> one Arrow row per segment, with the counters that place each segment.

Placing a segment (which message, person group or flight leg it belongs to) is a running
count over segment order. DuckDB would need a sorted window for that; Arrow and numpy do it
as one pass of cumulative sums over the already-ordered segments (about ten times faster here).
Field extraction stays in SQL (``sql/stg_paxlst_segments.sql`` and after).

Ids are global to the batch, so grouping needs no object id: ``message_seq`` is 0 outside a
message, ``leg_seq`` is 0 outside a flight leg, and every row has a ``group_seq``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifest_exchange.paxlst.syntax import ELEMENT, TERMINATOR

GROUP_HEADER, GROUP_PERSON, GROUP_TRAILER = 1, 2, 3
GROUP_KINDS = {GROUP_HEADER: "header", GROUP_PERSON: "person", GROUP_TRAILER: "trailer"}
_TRAILER_TAGS = pa.array(["CNT", "UNT", "UNB", "UNG", "UNE", "UNZ"])
_PERSON_START = f"^NAD *{ELEMENT} *(FL|FM|DDU|DDT) *($|{ELEMENT}|\x1f)"


def segment_table(object_ids: pa.Array, offsets: pa.Array, texts: pa.Array) -> pa.Table:
    """Split canonical chunks into segments and number them.

    Args:
        object_ids: the object of each chunk (chunks of one object are adjacent, in order).
        offsets: how many segments of the object precede each chunk.
        texts: the chunks' canonical text.

    Returns:
        A table with ``object_id``, ``position`` (1-based segment number in the object),
        ``segment_index`` (running count of non-empty segments), ``segment``, ``tag``,
        ``message_seq``, ``after_unt``, ``leg_seq``, ``group_seq`` and ``group_kind``.
    """
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
    is_unh = pc.equal(tag, "UNH").to_numpy(zero_copy_only=False)
    is_unt = pc.equal(tag, "UNT").to_numpy(zero_copy_only=False)
    is_tdt = pc.equal(tag, "TDT").to_numpy(zero_copy_only=False)
    is_person = pc.match_substring_regex(segment, _PERSON_START).to_numpy(zero_copy_only=False)
    is_trailer = pc.is_in(tag, _TRAILER_TAGS).to_numpy(zero_copy_only=False)

    message_seq, run_start = _runs(is_unh | object_start, is_unh)
    unt_before = np.cumsum(is_unt) - is_unt  # UNTs strictly before each row
    after_unt = (unt_before - unt_before[run_start]) > 0
    leg_seq, _ = _runs(is_tdt | is_unh | object_start, is_tdt)

    kind = np.where(
        is_unh,
        GROUP_HEADER,
        np.where(is_person, GROUP_PERSON, np.where(is_trailer, GROUP_TRAILER, 0)),
    )
    kind = np.where(object_start & (kind == 0), GROUP_TRAILER, kind)
    group_seq = np.cumsum(kind != 0)
    kind_of_group = np.zeros(int(group_seq[-1]) + 1 if len(group_seq) else 1, dtype=np.int8)
    kind_of_group[group_seq[kind != 0]] = kind[kind != 0]
    names = pa.array([None, *GROUP_KINDS.values()], pa.string())
    group_kind = names.take(pa.array(kind_of_group[group_seq]))

    return pa.table(
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
            "group_kind": group_kind,
        }
    )


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
