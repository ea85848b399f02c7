-- One row per readable line of the airport exports, shaped as the PAXLST reader's persons:
-- the list (message) it belongs to, its role and its values. segment_position is the line.
-- Inputs: stg_airport_csv_travellers, airport_csv_messages.
with

travellers as (
    select * from stg_airport_csv_travellers
    where problem is null
),

lists as (
    select * from airport_csv_messages
    where error_code is null
),

final as (
    select
        travellers.object_id,
        lists.message_seq,
        cast(travellers.line_number as bigint) as segment_position,
        lists.bgm_code,
        lists.payload_sha256,
        lists.part_number,
        lists.part_indicator,
        case travellers.traveller_type
            when 'PASSENGER' then 'passenger'
            when 'TRANSIT' then 'transit'
            else 'crew'
        end as role,
        travellers.carrier_code,
        travellers.flight_number,
        travellers.dep_airport,
        travellers.arr_airport,
        travellers.sched_departure_local,
        travellers.sched_arrival_local,
        travellers.flight_date,
        travellers.surname,
        travellers.given_names,
        travellers.sex,
        travellers.date_of_birth,
        travellers.nationality,
        case
            when travellers.nationality is not null then [travellers.nationality]
            else []
        end as nationalities,
        travellers.residence_country,
        travellers.embark_airport,
        travellers.debark_airport,
        travellers.doc_type,
        travellers.doc_number,
        travellers.doc_issuing_state,
        travellers.doc_expiry_date,
        travellers.pnr_locator,
        travellers.seat,
        -- Same rule as the PAXLST reader: UNOA letters, digits, space and some punctuation.
        regexp_matches(
            coalesce(travellers.surname, '') || coalesce(travellers.given_names, ''),
            '[^A-Z0-9 .,()/=''+:?!"%&*;<>-]'
        ) as has_non_unoa_chars
    from travellers
    inner join lists
        on
            travellers.object_id = lists.object_id
            and travellers.list_seq = lists.message_seq
)

select * from final
order by object_id, segment_position
