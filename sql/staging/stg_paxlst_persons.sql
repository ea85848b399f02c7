-- One row per person (NAD FL/FM/DDU/DDT up to the next person, CNT or UNT) with the values as
-- sent. Input: raw_persons, built in paxlst/segments.py: per person, the first segment behind
-- each field (a second DTM 36 is ignored) and all its NAT segments.
with

persons as (select * from raw_persons),

-- The NAD carries four fields: split once, not once per field (decision 0021).
names as (
    select
        *,
        string_split(nad_segment, chr(29)) as nad_elements,
        string_split(nad_elements[5], chr(31)) as name_components
    from persons
),

final as (
    select
        object_id,
        message_seq,
        nad_position,
        trim(split_part(nad_elements[2], chr(31), 1)) as party_qualifier,
        upper(trim(name_components[1])) as surname,
        -- Every component after the surname is a given name (C080 has four; a sender's fifth
        -- or more are kept too, and the suite holds the whole to its length limit). Empty
        -- components are left out, so they leave no double spaces.
        upper(array_to_string(
            list_filter(list_transform(name_components[2:], c -> trim(c)), c -> c != ''),
            ' '
        )) as given_names,
        upper(edifact_component(att_segment, 4, 1)) as sex,
        edifact_component(dob_segment, 2, 2) as date_of_birth_raw,
        upper(edifact_component(residence_segment, 3, 1)) as residence_raw,
        upper(edifact_component(embark_segment, 3, 1)) as embark_airport,
        upper(edifact_component(debark_segment, 3, 1)) as debark_airport,
        list_transform(nat_segments, nat -> upper(edifact_component(nat, 3, 1)))
            as nationalities_raw,
        -- The first DOC is the travel document; DTM 36 and LOC 91 follow it.
        nullif(upper(edifact_component(doc_segment, 2, 1)), '') as doc_type,
        -- Numbers are compared without the spaces, '<' and '-' some senders keep.
        nullif(
            replace(
                replace(replace(upper(edifact_component(doc_segment, 3, 1)), ' ', ''), '<', ''),
                '-',
                ''
            ),
            ''
        ) as doc_number,
        doc_count,
        edifact_component(doc_expiry_segment, 2, 2) as doc_expiry_raw,
        doc_expiry_count,
        upper(edifact_component(doc_issuer_segment, 3, 1)) as doc_issuer_raw,
        edifact_component(pnr_segment, 2, 2) as pnr_locator,
        edifact_component(seat_segment, 2, 2) as seat,
        edifact_component(passenger_ref_segment, 2, 2) as passenger_ref
    from names
)

select * from final
