-- Why a message or part of an object could not be read, with the segment position.
-- Object-level failures (empty, binary, not EDIFACT) are raised before SQL; see paxlst/syntax.py.
-- Inputs: paxlst_messages, stg_paxlst_segments, stg_paxlst_interchanges.
with

message_errors as (
    select
        object_id,
        message_seq,
        unh_position as segment_position,
        error_code,
        case error_code
            when 'message_truncated'
                then
                    'message ' || coalesce(message_ref, '?') || ' has no UNT: the transmission '
                    || 'was cut off or the message is not terminated'
            when 'not_paxlst'
                then
                    'message ' || coalesce(message_ref, '?') || ' is of type '
                    || coalesce(message_type, 'unknown') || ', not PAXLST'
        end as reason
    from paxlst_messages
    where error_code is not null
),

stray_segments as (
    select
        object_id,
        null::bigint as message_seq,
        min(position) as segment_position,
        'segments_outside_message' as error_code,
        count(*) || ' segment(s) outside any UNH..UNT message, first at this position'
            as reason
    from stg_paxlst_segments
    -- Between UNT and the next UNH only envelope segments belong; the messages stay readable.
    where (message_seq = 0 or after_unt) and tag not in ('UNB', 'UNG', 'UNE', 'UNZ')
    group by object_id
),

no_messages as (
    select
        object_id,
        null::bigint as message_seq,
        null::bigint as segment_position,
        'no_messages' as error_code,
        'the interchange holds no UNH message' as reason
    from stg_paxlst_interchanges
    where message_count = 0
),

final as (
    select * from message_errors
    union all
    select * from stray_segments
    union all
    select * from no_messages
)

select * from final
order by object_id, segment_position
