-- Per parsed traveller, the columns this step adds: record id, content hash, the outcomes that
-- need no validation (out of scope, message quarantined, exact resend) and the traveller
-- suite's derived columns. transform.exchange_travellers puts them beside the persons' own in
-- Arrow (wide rows are not copied through DuckDB) and sorts them there, so no order by.
-- Inputs: parsed_persons, exchange_messages, message_issues. Parameters: the agreement's
-- $traveller_types and $excluded_nationalities, and the limits of transform/limits.py.
-- doc_number_shape, has_unknown_nationality and has_unknown_issuing_state, which the traveller
-- suite checks, are added by transform.exchange_travellers in Arrow.
with

persons as (select * from parsed_persons),

-- Lists numbered in their key's order, so the suite checks documents per list without the
-- key (decision 0020); numbered here, before the wide rows join in.
messages as (
    select
        exchange_messages.*,
        case
            when exchange_messages.list_key is not null
                then dense_rank() over (order by exchange_messages.list_key)
        end as list_ordinal
    from exchange_messages
),

message_errors as (
    select
        row_id as message_id,
        list_sort(list(distinct check_name)) as reasons
    from message_issues
    where severity = 'error'
    group by row_id
),

typed as (
    select
        persons.*,
        messages.message_id,
        messages.list_key,
        messages.list_ordinal,
        messages.flight_key,
        messages.message_function,
        messages.sched_departure_utc,
        messages.receive_order,
        messages.received_at,
        messages.source_sha256,
        messages.source_format,
        messages.is_resend,
        messages.is_in_scope_flight,
        messages.dep_country is not null and messages.arr_country is not null
            as is_flight_known,
        message_errors.reasons as message_reasons,
        case persons.role
            when 'passenger' then 'PASSENGER'
            when 'transit' then 'TRANSIT'
            else 'CREW'
        end as traveller_type,
        -- TYPE|ISSUER|NUMBER, the input of doc_match_hmac; the number is already normalised.
        case
            when persons.doc_number is not null
                then concat_ws(
                    '|',
                    coalesce(persons.doc_type, ''),
                    coalesce(persons.doc_issuing_state, ''),
                    persons.doc_number
                )
        end as doc_match_input
    from persons
    inner join messages
        on
            persons.object_key = messages.object_key
            and persons.message_seq = messages.message_seq
    left join message_errors on messages.message_id = message_errors.message_id
),

-- The same person in two sources of one flight (an airline list and an airport export) is
-- matched on the document first, then on name and birth date: the first documented row of
-- the person (in receive order) lends its document to the person's rows in other lists, so
-- they share one record id and only the newest is published. Within one list (all parts of
-- it) the document alone decides: two documents there are two people.
people as (
    select
        flight_key,
        surname,
        given_names,
        date_of_birth,
        arg_min(doc_match_input, [receive_order, message_seq, person_id]) as anchor_doc,
        arg_min(list_key, [receive_order, message_seq, person_id]) as anchor_list_key
    from typed
    where
        doc_match_input is not null
        and surname is not null
        and date_of_birth is not null
        and flight_key is not null
    group by flight_key, surname, given_names, date_of_birth
),

matched as (
    select
        typed.*,
        case
            when typed.doc_match_input is null or typed.list_key != people.anchor_list_key
                then coalesce(people.anchor_doc, typed.doc_match_input)
            else typed.doc_match_input
        end as person_doc
    from typed
    left join people
        on
            typed.flight_key = people.flight_key
            and typed.surname = people.surname
            and typed.given_names is not distinct from people.given_names
            and typed.date_of_birth = people.date_of_birth
),

keyed as (
    select
        matched.*,
        -- The document identifies a traveller; without one, name, birth date and nationality.
        coalesce(
            'doc|' || matched.person_doc,
            concat_ws(
                '|',
                'name',
                coalesce(matched.surname, ''),
                coalesce(matched.given_names, ''),
                coalesce(cast(matched.date_of_birth as varchar), matched.date_of_birth_raw, ''),
                coalesce(matched.nationality, '')
            )
        ) as traveller_key,
        case
            when matched.is_flight_known and not matched.is_in_scope_flight
                then ['flight_not_in_agreement']
            when not list_contains($traveller_types, matched.traveller_type) then ['traveller_type']
            when list_has_any(matched.nationalities, $excluded_nationalities)
                then ['excluded_nationality']
            when matched.message_reasons is not null then matched.message_reasons
            when matched.is_resend then ['resend']
        end as stage_reasons,
        matched.doc_expiry_date <= matched.flight_date + to_years($doc_valid_years_max::integer)
            as is_doc_expiry_plausible,
        -- The first published value longer than its limit (transform/limits.py), by name.
        case
            when length(matched.surname) > $surname_max_length then 'surname'
            when length(matched.given_names) > $given_names_max_length then 'given_names'
            when length(matched.residence_country) > $residence_country_max_length
                then 'residence_country'
            when length(matched.embark_airport) > $embark_airport_max_length
                then 'embark_airport'
            when length(matched.debark_airport) > $debark_airport_max_length
                then 'debark_airport'
        end as oversized_field
    from matched
),

-- Documents numbered in their sort order, so the suite can check them for repeats without
-- seeing them. Numbered apart from the wide rows: a window over those sorts every column.
documents as (
    select distinct doc_match_input
    from typed
    where doc_match_input is not null
),

doc_ordinals as (
    select
        doc_match_input,
        row_number() over (order by doc_match_input) as doc_ordinal
    from documents
),

final as (
    select
        keyed.person_id,
        keyed.message_id,
        keyed.list_key,
        keyed.flight_key,
        keyed.message_function,
        keyed.sched_departure_utc,
        keyed.receive_order,
        keyed.received_at,
        keyed.source_sha256,
        keyed.source_format,
        keyed.is_resend,
        keyed.traveller_type,
        keyed.doc_match_input,
        keyed.stage_reasons,
        substr(sha256(keyed.flight_key || '|' || keyed.traveller_key), 1, 32) as record_id,
        -- The person on the flight whatever the document: lets a later run match an airport
        -- export with another document to the record already published (exchange_outcomes).
        case
            when keyed.surname is not null and keyed.date_of_birth is not null
                then substr(sha256(concat_ws(
                    '|',
                    keyed.flight_key,
                    keyed.surname,
                    coalesce(keyed.given_names, ''),
                    keyed.date_of_birth
                )), 1, 32)
        end as person_key,
        -- What the partner would see change; lineage, timestamps and flags are left out.
        -- A JSON list keeps nulls apart from empty strings, so the hash is unambiguous.
        sha256(cast(to_json([
            keyed.flight_key,
            keyed.traveller_type,
            keyed.surname,
            keyed.given_names,
            keyed.sex,
            cast(keyed.date_of_birth as varchar),
            keyed.nationality,
            keyed.residence_country,
            keyed.embark_airport,
            keyed.debark_airport,
            keyed.doc_type,
            keyed.doc_number,
            keyed.doc_issuing_state,
            cast(keyed.doc_expiry_date as varchar),
            cast(keyed.sched_departure_local as varchar),
            cast(keyed.sched_arrival_local as varchar)
        ]) as varchar)) as content_sha256,
        case
            when keyed.stage_reasons[1] in (
                'flight_not_in_agreement', 'traveller_type', 'excluded_nationality'
            ) then 'out_of_scope'
            when keyed.stage_reasons[1] = 'resend' then 'duplicate'
            when keyed.stage_reasons is not null then 'quarantined'
        end as stage_outcome,
        -- Checked by the traveller suite; derived so that no personal value reaches GX.
        keyed.surname is not null as has_surname,
        date_diff('day', keyed.date_of_birth, keyed.flight_date) / 365.25 as age_years,
        -- doc_number_shape goes here, added in Arrow by transform.exchange_travellers (0021).
        date_diff('day', keyed.flight_date, keyed.doc_expiry_date)
            as doc_valid_days_after_departure,
        keyed.is_doc_expiry_plausible,
        keyed.oversized_field,
        keyed.list_ordinal,
        case when keyed.stage_reasons is null then doc_ordinals.doc_ordinal end as doc_ordinal
    from keyed
    left join doc_ordinals on keyed.doc_match_input = doc_ordinals.doc_match_input
)

select * from final
