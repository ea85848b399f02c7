-- One row per passenger list (the parts sharing a flight, common access reference, function
-- and revision) that holds travellers still in the running, with the columns the list suite
-- checks. CNT counts every passenger of the flight, so person counts include all of them.
-- Inputs: exchange_messages, exchange_travellers.
with

messages as (
    select * from exchange_messages
    where parse_error is null and not is_resend
),

candidate_lists as (
    select distinct list_key
    from exchange_travellers
    where stage_outcome is null
),

parts as (
    select
        messages.list_key,
        count(distinct messages.part_number) as part_count,
        max(messages.part_number) filter (where messages.part_indicator = 'F') as final_part,
        -- A plain sum is HUGEINT, which reaches GX as Decimal and slows its reports (0021).
        sum(messages.person_count)::bigint as person_count,
        max(messages.cnt_passengers) as cnt_passengers
    from messages
    inner join candidate_lists on messages.list_key = candidate_lists.list_key
    group by messages.list_key
),

final as (
    select
        list_key,
        part_count,
        person_count,
        cnt_passengers,
        final_part is not null as has_final_part,
        -- Only a complete list (every part up to the final one) can be held against CNT.
        case
            when final_part is not null and part_count = final_part
                then person_count - cnt_passengers
        end as count_difference
    from parts
)

select * from final
order by list_key
