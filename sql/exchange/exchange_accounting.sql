-- Travellers per flight, source format and outcome: every parsed traveller once, plus the
-- travellers of messages that could not be read at all (counted from their NAD segments, or
-- one per rejected line of an airport export), quarantined.
-- Inputs: exchange_outcomes, exchange_messages.
with

outcomes as (
    select
        flight_key,
        source_format,
        outcome,
        count(*) as travellers
    from exchange_outcomes
    group by flight_key, source_format, outcome
),

unreadable as (
    select
        flight_key,
        source_format,
        'quarantined' as outcome,
        sum(person_count) as travellers
    from exchange_messages
    where parse_error is not null
    group by flight_key, source_format
),

final as (
    select
        flight_key,
        source_format,
        outcome,
        sum(travellers) as travellers
    from (
        select * from outcomes
        union all
        select * from unreadable
    ) as counted
    group by flight_key, source_format, outcome
)

select * from final
order by flight_key, source_format, outcome
