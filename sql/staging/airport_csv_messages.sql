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
        list_seq,
        is_crew,
        -- Equal on every line of a list (they define it).
        any_value(carrier_code) as carrier_code,
        any_value(flight_number) as flight_number,
        any_value(dep_airport) as dep_airport,
        any_value(arr_airport) as arr_airport,
        any_value(sched_departure_local) as sched_departure_local,
        any_value(sched_arrival_local) as sched_arrival_local,
        any_value(flight_date) as flight_date,
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
    group by object_id, list_seq, is_crew
),

readable as (
    select
        object_id,
        cast(list_seq as bigint) as message_seq,
        case when is_crew then '250' else '745' end as bgm_code,
        person_count,
        payload_sha256,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        sched_departure_local,
        sched_arrival_local,
        flight_date
    from lists
),

-- Columns an unreadable line has no value for are left out: the union fills them with nulls.
unreadable as (
    select
        object_id,
        cast(line_number as bigint) as message_seq,
        1 as person_count,
        'csv_line_rejected' as error_code
    from unreadable_lines
),

final as (
    select
        *,
        message_seq as unh_position,
        'AIRPORT_CSV' as message_type,
        1 as part_number,
        'F' as part_indicator,
        'airport_csv' as source_format
    from (
        select * from readable
        union all by name
        select * from unreadable
    ) as messages
)

select * from final
order by object_id, message_seq
