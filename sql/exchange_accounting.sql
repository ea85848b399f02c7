-- Travellers per flight and outcome: every parsed traveller once, plus the travellers of
-- messages that could not be read at all (counted from their NAD segments), quarantined.
-- Inputs: exchange_outcomes, exchange_messages.
with

outcomes as (
    select
        flight_key,
        outcome,
        count(*) as travellers
    from exchange_outcomes
    group by flight_key, outcome
),

unreadable as (
    select
        flight_key,
        'quarantined' as outcome,
        sum(person_count) as travellers
    from exchange_messages
    where parse_error is not null
    group by flight_key
),

final as (
    select
        flight_key,
        outcome,
        sum(travellers) as travellers
    from (
        select * from outcomes
        union all
        select * from unreadable
    )
    group by flight_key, outcome
)

select * from final
order by flight_key, outcome
