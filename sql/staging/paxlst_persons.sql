-- One row per person in a readable message, with exchange field names, the flight of its
-- message, country codes normalised to alpha-3 (D -> DEU, alpha-2 -> alpha-3) and two-digit
-- birth years resolved so that the date of birth is not after departure.
-- Inputs: stg_paxlst_persons, paxlst_messages, countries.
-- No order by: the parser sorts these wide rows in Arrow, which is cheaper (decision 0021).
with

persons as (select * from stg_paxlst_persons),

messages as (
    select * from paxlst_messages
    where error_code is null
),

-- Every NAT, normalised, by list_sort (an ordered aggregate is far slower, decision 0021);
-- nationality keeps the first one as sent.
nationalities as (
    select
        raw.object_id,
        raw.nad_position,
        list_sort(list(coalesce(countries.alpha3, raw.code))) as nationalities
    from (
        select
            object_id,
            nad_position,
            unnest(nationalities_raw) as code
        from persons
    ) as raw
    left join countries on raw.code = countries.code
    group by raw.object_id, raw.nad_position
),

resolved as (
    select
        persons.*,
        messages.message_ref,
        messages.common_access_ref,
        messages.part_number,
        messages.part_indicator,
        messages.bgm_code,
        messages.bgm_function,
        messages.transaction_revision,
        messages.carrier_code,
        messages.flight_number,
        messages.dep_airport,
        messages.arr_airport,
        messages.sched_departure_local,
        messages.sched_arrival_local,
        messages.flight_date,
        messages.payload_sha256,
        coalesce(messages.flight_date, messages.prepared_date) as reference_date,
        edifact_date(persons.date_of_birth_raw, '20') as dob_2000s,
        edifact_date(persons.date_of_birth_raw, '19') as dob_1900s,
        coalesce(nationalities.nationalities, []) as nationalities,
        coalesce(first_nationality.alpha3, persons.nationalities_raw[1]) as nationality
    from persons
    inner join messages using (object_id, message_seq)
    left join nationalities using (object_id, nad_position)
    left join countries as first_nationality
        on persons.nationalities_raw[1] = first_nationality.code
),

final as (
    select
        resolved.object_id,
        resolved.message_seq,
        resolved.nad_position as segment_position,
        resolved.message_ref,
        resolved.common_access_ref,
        resolved.part_number,
        resolved.part_indicator,
        resolved.bgm_code,
        resolved.bgm_function,
        resolved.transaction_revision,
        resolved.payload_sha256,
        case resolved.party_qualifier
            when 'FL' then 'passenger'
            when 'DDU' then 'transit'
            else 'crew'
        end as role,
        resolved.party_qualifier,
        resolved.carrier_code,
        resolved.flight_number,
        resolved.dep_airport,
        resolved.arr_airport,
        resolved.sched_departure_local,
        resolved.sched_arrival_local,
        resolved.flight_date,
        nullif(resolved.surname, '') as surname,
        nullif(resolved.given_names, '') as given_names,
        nullif(resolved.sex, '') as sex,
        case
            when resolved.dob_2000s > resolved.reference_date then resolved.dob_1900s
            else resolved.dob_2000s
        end as date_of_birth,
        resolved.date_of_birth_raw,
        resolved.nationality,
        resolved.nationalities,
        coalesce(residence.alpha3, nullif(resolved.residence_raw, '')) as residence_country,
        nullif(resolved.embark_airport, '') as embark_airport,
        nullif(resolved.debark_airport, '') as debark_airport,
        resolved.doc_type,
        resolved.doc_number,
        coalesce(issuer.alpha3, nullif(resolved.doc_issuer_raw, '')) as doc_issuing_state,
        edifact_date(resolved.doc_expiry_raw, '20') as doc_expiry_date,
        resolved.doc_expiry_raw,
        resolved.doc_count,
        resolved.doc_expiry_count,
        resolved.pnr_locator,
        resolved.seat,
        resolved.passenger_ref,
        -- UNOA: upper-case letters, digits, space and a little punctuation.
        regexp_matches(
            coalesce(resolved.surname, '') || coalesce(resolved.given_names, ''),
            '[^A-Z0-9 .,()/=''+:?!"%&*;<>-]'
        ) as has_non_unoa_chars
    from resolved
    left join countries as residence on residence.code = resolved.residence_raw
    left join countries as issuer on issuer.code = resolved.doc_issuer_raw
)

select * from final
