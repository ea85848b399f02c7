-- The airport exports as the parser's messages: the readable lines of one export for one
-- flight form a list (passengers and transit in one, crew in another), numbered by their first
-- line; each rejected line is an unreadable message of one traveller, numbered by its line,
-- so it is quarantined and counted like a PAXLST message that could not be read.
-- Inputs: stg_airport_csv_travellers, airport_csv_unreadable_lines.
with

travellers as (
    select * from stg_airport_csv_travellers
    where problem is null
),

unreadable_lines as (select * from airport_csv_unreadable_lines),

lists as (
    select
        object_id,
        min(line_number) as message_seq,
        is_crew,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        sched_departure_local,
        sched_arrival_local,
        flight_date,
        count(*) as person_count,
        -- The same travellers with the same values give the same hash, so an export sent
        -- again is recognised as a resend whatever its line order or object key.
        sha256(string_agg(
            cast(to_json([
                traveller_type, surname, given_names, sex, cast(date_of_birth as varchar),
                nationality, residence_country, embark_airport, debark_airport, doc_type,
                doc_number, doc_issuing_state, cast(doc_expiry_date as varchar), pnr_locator,
                seat
            ]) as varchar),
            chr(10) order by doc_number, surname, given_names, line_number
        )) as payload_sha256
    from travellers
    group by
        object_id,
        is_crew,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        sched_departure_local,
        sched_arrival_local,
        flight_date
),

readable as (
    select
        object_id,
        cast(message_seq as bigint) as message_seq,
        cast(message_seq as bigint) as unh_position,
        'AIRPORT_CSV' as message_type,
        1 as part_number,
        'F' as part_indicator,
        case when is_crew then '250' else '745' end as bgm_code,
        person_count,
        payload_sha256,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        sched_departure_local,
        sched_arrival_local,
        flight_date,
        null as error_code
    from lists
),

unreadable as (
    select
        object_id,
        cast(line_number as bigint) as message_seq,
        cast(line_number as bigint) as unh_position,
        'AIRPORT_CSV' as message_type,
        1 as part_number,
        'F' as part_indicator,
        null as bgm_code,
        1 as person_count,
        null as payload_sha256,
        null as carrier_code,
        null as flight_number,
        null as dep_airport,
        null as arr_airport,
        cast(null as timestamp) as sched_departure_local,
        cast(null as timestamp) as sched_arrival_local,
        cast(null as date) as flight_date,
        'csv_line_rejected' as error_code
    from unreadable_lines
),

final as (
    select
        *,
        'airport_csv' as source_format
    from (
        select * from readable
        union all
        select * from unreadable
    ) as messages
)

select * from final
order by object_id, message_seq
