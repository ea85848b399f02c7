-- One row per object: its interchange envelope (UNB ... UNZ). Input: stg_paxlst_segments.
with

segments as (
    select
        object_id,
        position,
        segment,
        tag
    from stg_paxlst_segments
    where tag in ('UNB', 'UNZ', 'UNH', 'UNG')
),

envelopes as (
    select
        object_id,
        arg_min(segment, position) filter (where tag = 'UNB') as unb_segment,
        arg_min(segment, position) filter (where tag = 'UNZ') as unz_segment,
        count(*) filter (where tag = 'UNH') as message_count,
        count(*) filter (where tag = 'UNG') as group_count
    from segments
    group by object_id
),

final as (
    select
        object_id,
        unb_segment is not null as has_unb,
        unz_segment is not null as has_unz,
        nullif(edifact_component(unb_segment, 2, 1), '') as syntax_identifier,
        nullif(edifact_component(unb_segment, 3, 1), '') as sender_id,
        nullif(edifact_component(unb_segment, 4, 1), '') as recipient_id,
        edifact_date(edifact_component(unb_segment, 5, 1), '20') as prepared_date,
        nullif(edifact_element(unb_segment, 6), '') as interchange_ref,
        try_cast(edifact_element(unz_segment, 2) as integer) as unz_count,
        nullif(edifact_element(unz_segment, 3), '') as unz_ref,
        message_count,
        group_count,
        -- UNZ counts functional groups when there are any, otherwise messages.
        case when group_count > 0 then group_count else message_count end
            as expected_unz_count
    from envelopes
)

select * from final
