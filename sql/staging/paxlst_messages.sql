-- One row per message with its envelope, its flight and whether it could be read.
-- The flight is the leg leaving the origin country and the leg entering the destination
-- country: LOC 125/87 where the sender marked them, otherwise (LOC 92 legs only) the last leg
-- departing $origin_country and the first later leg arriving in $destination_country.
-- Inputs: stg_paxlst_messages, stg_paxlst_interchanges, stg_paxlst_legs, airports.
with

messages as (select * from stg_paxlst_messages),

interchanges as (select * from stg_paxlst_interchanges),

legs as (
    select
        legs.*,
        dep.country as dep_country,
        arr.country as arr_country
    from stg_paxlst_legs as legs
    left join airports as dep on dep.iata = legs.dep_airport
    left join airports as arr on arr.iata = legs.arr_airport
),

departure_legs as (
    select
        object_id,
        message_seq,
        count(*) as leg_count,
        coalesce(
            min(leg_seq) filter (where dep_qualifier = '125'),
            max(leg_seq) filter (where dep_country = $origin_country),
            min(leg_seq)
        ) as dep_leg_seq
    from legs
    group by object_id, message_seq
),

arrival_legs as (
    select
        legs.object_id,
        legs.message_seq,
        coalesce(
            min(legs.leg_seq) filter (where legs.arr_qualifier = '87'),
            min(legs.leg_seq) filter (
                where legs.arr_country = $destination_country
                and legs.leg_seq >= departure_legs.dep_leg_seq
            ),
            max(legs.leg_seq)
        ) as arr_leg_seq
    from legs
    inner join departure_legs using (object_id, message_seq)
    group by legs.object_id, legs.message_seq
),

flights as (
    select
        departure_legs.object_id,
        departure_legs.message_seq,
        departure_legs.leg_count,
        dep.carrier_code,
        nullif(lpad(dep.flight_digits, 4, '0') || dep.flight_suffix, '') as flight_number,
        dep.dep_airport,
        arr.arr_airport,
        dep.sched_departure_local,
        arr.sched_arrival_local,
        dep.departure_raw,
        arr.arrival_raw
    from departure_legs
    inner join arrival_legs using (object_id, message_seq)
    inner join legs as dep
        on
            dep.object_id = departure_legs.object_id
            and dep.message_seq = departure_legs.message_seq
            and dep.leg_seq = departure_legs.dep_leg_seq
    inner join legs as arr
        on
            arr.object_id = arrival_legs.object_id
            and arr.message_seq = arrival_legs.message_seq
            and arr.leg_seq = arrival_legs.arr_leg_seq
),

final as (
    select
        messages.object_id,
        messages.message_seq,
        messages.unh_position,
        messages.message_ref,
        messages.message_type,
        messages.message_version,
        messages.common_access_ref,
        messages.part_number,
        messages.part_indicator,
        messages.has_unt,
        messages.unt_segment_count,
        messages.actual_segment_count,
        messages.unt_message_ref,
        messages.bgm_code,
        messages.bgm_function,
        messages.transaction_ref,
        messages.transaction_revision,
        messages.cnt_passengers,
        messages.cnt_crew,
        messages.person_count,
        messages.payload_sha256,
        interchanges.interchange_ref,
        interchanges.sender_id,
        interchanges.prepared_date,
        interchanges.has_unz,
        interchanges.unz_count,
        interchanges.unz_ref,
        interchanges.message_count as interchange_message_count,
        interchanges.expected_unz_count,
        coalesce(flights.leg_count, 0) as leg_count,
        flights.carrier_code,
        flights.flight_number,
        flights.dep_airport,
        flights.arr_airport,
        flights.departure_raw,
        flights.arrival_raw,
        flights.sched_departure_local,
        flights.sched_arrival_local,
        cast(flights.sched_departure_local as date) as flight_date,
        case
            when not messages.has_unt then 'message_truncated'
            when coalesce(messages.message_type, '') != 'PAXLST' then 'not_paxlst'
        end as error_code,
        'paxlst' as source_format
    from messages
    left join interchanges using (object_id)
    left join flights using (object_id, message_seq)
)

select * from final
order by object_id, message_seq
