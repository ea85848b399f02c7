-- One row per person group (NAD FL/FM/DDU/DDT up to the next person, CNT or UNT) with the
-- values as sent. Input: stg_paxlst_segments.
with

segments as (
    select * from stg_paxlst_segments
    where group_kind = 'person'
),

per_person as (
    select
        object_id,
        message_seq,
        group_seq,
        min(position) as nad_position,
        arg_min(segment, position) filter (where tag = 'NAD') as nad_segment,
        arg_min(edifact_component(segment, 4, 1), position)
            filter (where tag = 'ATT' and qualifier = '2') as sex,
        arg_min(e2c2, position)
            filter (where tag = 'DTM' and qualifier = '329') as date_of_birth_raw,
        arg_min(e3c1, position)
            filter (where tag = 'LOC' and qualifier = '174') as residence_raw,
        arg_min(e3c1, position)
            filter (where tag = 'LOC' and qualifier = '178') as embark_airport,
        arg_min(e3c1, position)
            filter (where tag = 'LOC' and qualifier = '179') as debark_airport,
        list(upper(e3c1) order by position)
            filter (where tag = 'NAT') as nationalities_raw,
        -- The first DOC is the travel document; DTM 36 and LOC 91 follow it.
        arg_min(segment, position) filter (where tag = 'DOC') as doc_segment,
        count(*) filter (where tag = 'DOC') as doc_count,
        arg_min(e2c2, position)
            filter (where tag = 'DTM' and qualifier = '36') as doc_expiry_raw,
        count(*) filter (where tag = 'DTM' and qualifier = '36') as doc_expiry_count,
        arg_min(e3c1, position)
            filter (where tag = 'LOC' and qualifier = '91') as doc_issuer_raw,
        arg_min(e2c2, position)
            filter (where tag = 'RFF' and qualifier = 'AVF') as pnr_locator,
        arg_min(e2c2, position)
            filter (where tag = 'RFF' and qualifier = 'SEA') as seat,
        arg_min(e2c2, position)
            filter (where tag = 'RFF' and qualifier = 'ABO') as passenger_ref
    from segments
    group by object_id, message_seq, group_seq
),

final as (
    select
        object_id,
        message_seq,
        nad_position,
        edifact_component(nad_segment, 2, 1) as party_qualifier,
        upper(edifact_component(nad_segment, 5, 1)) as surname,
        upper(trim(regexp_replace(
            concat_ws(' ',
                edifact_component(nad_segment, 5, 2),
                edifact_component(nad_segment, 5, 3),
                edifact_component(nad_segment, 5, 4)),
            ' +', ' ', 'g'
        ))) as given_names,
        upper(sex) as sex,
        date_of_birth_raw,
        upper(residence_raw) as residence_raw,
        upper(embark_airport) as embark_airport,
        upper(debark_airport) as debark_airport,
        coalesce(nationalities_raw, []) as nationalities_raw,
        nullif(upper(edifact_component(doc_segment, 2, 1)), '') as doc_type,
        -- Numbers are compared without the spaces, '<' and '-' some senders keep.
        nullif(
            regexp_replace(upper(edifact_component(doc_segment, 3, 1)), '[ <-]', '', 'g'), ''
        ) as doc_number,
        doc_count,
        doc_expiry_raw,
        doc_expiry_count,
        upper(doc_issuer_raw) as doc_issuer_raw,
        pnr_locator,
        seat,
        passenger_ref
    from per_person
)

select * from final
