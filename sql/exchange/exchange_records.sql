-- The records to publish: v1 columns in contract order, then v2's, the agreement's optional
-- ones and what the record index keeps; each agreement selects its schema version's columns.
-- doc_match_input becomes doc_match_hmac in Python (the key never enters SQL). No order by:
-- sorted in Arrow as the drop is partitioned (transform.RECORD_ORDER).
-- Input: exchange_outcomes. Parameters: $schema_version, $hmac_key_id, $published_at.
with

published as (
    select * from exchange_outcomes
    where outcome = 'published'
),

final as (
    select
        record_id,
        cast($schema_version as varchar) as schema_version,
        flight_key,
        carrier_code,
        flight_number,
        dep_airport,
        arr_airport,
        sched_departure_local,
        sched_arrival_local,
        sched_departure_utc,
        flight_date,
        traveller_type,
        surname,
        given_names,
        sex,
        date_of_birth,
        nationality,
        residence_country,
        embark_airport,
        debark_airport,
        doc_type,
        doc_number,
        doc_issuing_state,
        doc_expiry_date,
        doc_match_input,
        cast($hmac_key_id as varchar) as hmac_key_id,
        dq_flags,
        message_function,
        cast(manifest_revision as integer) as manifest_revision,
        object_key as source_object,
        source_sha256,
        received_at,
        cast($published_at as timestamptz) as published_at,
        pnr_locator,
        seat,
        passenger_ref,
        nationalities,
        source_format,
        content_sha256,
        transaction_revision as sent_revision,
        person_key
    from published
)

select * from final
