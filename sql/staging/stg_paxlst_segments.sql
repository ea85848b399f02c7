-- One row per segment outside person groups (envelope, message headers, trailers, strays) with
-- the elements and components the later steps read, split once here. Input: raw_segments, built
-- in paxlst/segments.py (canonical text split at chr(30), with the running message/leg/group
-- counters, which Arrow computes faster than a sorted window). Persons are in raw_persons.
with

segments as (select * from raw_segments),

final as (
    select
        object_id,
        position,
        segment_index,
        segment,
        tag,
        message_seq,
        after_unt,
        leg_seq,
        group_seq,
        group_kind,
        edifact_component(segment, 2, 1) as qualifier,
        edifact_component(segment, 2, 2) as e2c2,
        edifact_component(segment, 3, 1) as e3c1
    from segments
)

select * from final
