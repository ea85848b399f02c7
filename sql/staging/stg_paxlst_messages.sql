-- One row per message (UNH ... UNT): header, trailer, counts and the payload hash used to spot
-- resends (BGM..UNT without the envelope, so a new UNB/UNH reference does not hide a duplicate;
-- hashed in paxlst/segments.py). Inputs: stg_paxlst_segments, raw_persons, raw_payloads.
with

segments as (
    select * from stg_paxlst_segments
    where message_seq > 0
),

person_counts as (
    select
        message_seq,
        count(*) as person_count
    from raw_persons
    group by message_seq
),

per_message as (
    select
        object_id,
        message_seq,
        min(position) filter (where tag = 'UNH') as unh_position,
        min(segment_index) filter (where tag = 'UNH') as unh_index,
        min(position) filter (where tag = 'UNT') as unt_position,
        min(segment_index) filter (where tag = 'UNT') as unt_index,
        arg_min(segment, position) filter (where tag = 'UNH') as unh_segment,
        arg_min(segment, position) filter (where tag = 'UNT') as unt_segment,
        arg_min(segment, position) filter (where tag = 'BGM') as bgm_segment,
        arg_min(segment, position) filter (where tag = 'RFF' and qualifier = 'TN') as tn_segment,
        arg_min(segment, position) filter (where tag = 'CNT' and qualifier = '42')
            as cnt_pax_segment,
        arg_min(segment, position) filter (where tag = 'CNT' and qualifier = '41')
            as cnt_crew_segment
    from segments
    group by object_id, message_seq
),

final as (
    select
        per_message.object_id,
        per_message.message_seq,
        per_message.unh_position,
        edifact_element(per_message.unh_segment, 2) as message_ref,
        edifact_component(per_message.unh_segment, 3, 1) as message_type,
        edifact_component(per_message.unh_segment, 3, 2)
        || ':'
        || edifact_component(per_message.unh_segment, 3, 3) as message_version,
        nullif(edifact_element(per_message.unh_segment, 4), '') as common_access_ref,
        try_cast(nullif(edifact_component(per_message.unh_segment, 5, 1), '') as integer)
            as part_number,
        nullif(upper(edifact_component(per_message.unh_segment, 5, 2)), '') as part_indicator,
        per_message.unt_position is not null as has_unt,
        try_cast(edifact_element(per_message.unt_segment, 2) as integer) as unt_segment_count,
        per_message.unt_index - per_message.unh_index + 1 as actual_segment_count,
        nullif(edifact_element(per_message.unt_segment, 3), '') as unt_message_ref,
        nullif(edifact_component(per_message.bgm_segment, 2, 1), '') as bgm_code,
        nullif(edifact_component(per_message.bgm_segment, 3, 1), '') as bgm_function,
        nullif(edifact_component(per_message.tn_segment, 2, 2), '') as transaction_ref,
        try_cast(nullif(edifact_component(per_message.tn_segment, 2, 5), '') as integer)
            as transaction_revision,
        -- CNT+42:n is the norm; some senders write CNT+41+8.
        try_cast(coalesce(
            nullif(edifact_component(per_message.cnt_pax_segment, 2, 2), ''),
            edifact_element(per_message.cnt_pax_segment, 3)
        ) as integer) as cnt_passengers,
        try_cast(coalesce(
            nullif(edifact_component(per_message.cnt_crew_segment, 2, 2), ''),
            edifact_element(per_message.cnt_crew_segment, 3)
        ) as integer) as cnt_crew,
        coalesce(person_counts.person_count, 0) as person_count,
        raw_payloads.payload_sha256
    from per_message
    left join person_counts using (message_seq)
    left join raw_payloads using (message_seq)
)

select * from final
