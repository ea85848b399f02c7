-- One row per parsed message: its flight under exchange v1 naming, whether the agreement covers
-- the flight, whether it resends an earlier message of this run, and the columns the message
-- suite (expectations/paxlst_messages.json) checks.
-- Inputs: parsed_messages, parsed_objects, airports. Parameters: $origin_country,
-- $destination_country, and from transform/limits.py the plausible departure window
-- ($flight_date_min .. $flight_date_max) and the longest message function and carrier code.
with

messages as (select * from parsed_messages),

objects as (select * from parsed_objects),

airports as (select * from airports),

located as (
    select
        messages.*,
        objects.receive_order,
        objects.received_at,
        objects.source_sha256,
        dep.country as dep_country,
        arr.country as arr_country,
        timezone(dep.tz, messages.sched_departure_local) as departure_utc,
        timezone(arr.tz, messages.sched_arrival_local) as arrival_utc,
        messages.source_format = 'paxlst' as has_envelope
    from messages
    inner join objects on messages.object_key = objects.object_key
    left join airports as dep on messages.dep_airport = dep.iata
    left join airports as arr on messages.arr_airport = arr.iata
),

dated as (
    select
        *,
        flight_date between $flight_date_min and $flight_date_max as is_flight_date_plausible,
        -- The first published value longer than its limit (transform/limits.py), by name.
        case
            when length(bgm_code || coalesce(bgm_function, '')) > $message_function_max_length
                then 'message_function'
            when length(carrier_code) > $carrier_code_max_length then 'carrier_code'
        end as oversized_field
    from located
),

final as (
    select
        object_key || '#' || message_seq as message_id,
        object_key,
        message_seq,
        receive_order,
        received_at,
        source_sha256,
        error_code as parse_error,
        person_count,
        message_type,
        bgm_code,
        bgm_function,
        bgm_code || coalesce(bgm_function, '') as message_function,
        common_access_ref,
        coalesce(part_number, 1) as part_number,
        coalesce(part_indicator, 'F') as part_indicator,
        transaction_revision,
        payload_sha256,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        dep_country,
        arr_country,
        sched_departure_local,
        sched_arrival_local,
        -- Only for a plausible date: 0001-01-01 in Taipei is a UTC time before year 1, which
        -- pyarrow and pandas cannot read (the message is quarantined for its date anyway).
        case when is_flight_date_plausible then departure_utc end as sched_departure_utc,
        flight_date,
        cnt_passengers,
        carrier_code || flight_number || '-' || dep_airport || '-' || arr_airport || '-'
        || strftime(flight_date, '%Y%m%d') as flight_key,
        -- The parts of one list share the common access reference; a revision is a new list.
        -- An airport export is one list per flight: its object stands for the reference.
        carrier_code || flight_number || '-' || dep_airport || '-' || arr_airport || '-'
        || strftime(flight_date, '%Y%m%d') || '|'
        || case
            when source_format = 'paxlst' then coalesce(common_access_ref, '')
            else source_format || ':' || object_key
        end || '|'
        || bgm_code || coalesce(bgm_function, '') || '|'
        || coalesce(cast(transaction_revision as varchar), '') as list_key,
        coalesce(
            dep_country = $origin_country and arr_country = $destination_country, false
        ) as is_in_scope_flight,
        -- An exact resend has the payload (BGM..UNT) of a message that arrived earlier.
        error_code is null
        and row_number() over (
            partition by error_code is null, payload_sha256
            order by receive_order, message_seq
        ) > 1 as is_resend,
        source_format,
        -- Checked by the message suite; the EDIFACT envelope checks are null (not applicable)
        -- for an airport export, and the suite's checks pass over nulls.
        date_diff('minute', departure_utc, arrival_utc) as flight_minutes,
        is_flight_date_plausible,
        oversized_field,
        unt_segment_count - actual_segment_count as unt_count_difference,
        case
            when has_envelope then coalesce(unt_message_ref = message_ref, false)
        end as has_matching_unt_ref,
        has_unz,
        unz_count - expected_unz_count as unz_count_difference,
        case
            when has_envelope then coalesce(unz_ref = interchange_ref, false)
        end as has_matching_unz_ref
    from dated
)

select * from final
order by receive_order, message_seq
