-- One row per readable line of the airport exports, with its line number, its list and the
-- values normalised as the PAXLST reader normalises them (upper case, flight number padded to four
-- digits, country codes to alpha-3, document numbers without spaces, '<' and '-').
-- Inputs: airport_csv_rows (what stg_airport_csv_rows read, with row_seq in file order),
-- stg_airport_csv_rejects, countries.
with

lines as (
    select
        *,
        cast(regexp_extract(filename, '([0-9]+)\.csv$', 1) as integer) as object_id,
        row_number() over (partition by filename order by row_seq) as row_in_file
    from airport_csv_rows
),

rejected as (select * from stg_airport_csv_rejects),

-- Readable lines come back in file order without their numbers: the k-th readable line of a
-- file is line k + 1 (the header) + the rejected lines before it. A rejected line r_j (the
-- j-th) comes before the k-th readable line when r_j - j <= k.
rejected_ranked as (
    select
        object_id,
        line_number - row_number() over (partition by object_id order by line_number)
            as readable_before
    from rejected
),

numbered as (
    select
        lines.*,
        lines.row_in_file + 1 + (
            select count(*)
            from rejected_ranked
            where
                rejected_ranked.object_id = lines.object_id
                and rejected_ranked.readable_before <= lines.row_in_file
        ) as line_number
    from lines
),

normalised as (
    select
        object_id,
        line_number,
        nullif(upper(trim(carrier_code)), '') as carrier_code,
        upper(trim(flight_number)) as flight_number_raw,
        nullif(upper(trim(dep_airport)), '') as dep_airport,
        nullif(upper(trim(arr_airport)), '') as arr_airport,
        -- Year 0000 reads as 1 BC, which pyarrow cannot read: no date, as for PAXLST.
        case
            when sched_departure_local >= timestamp '0001-01-01' then sched_departure_local
        end as sched_departure_local,
        case
            when sched_arrival_local >= timestamp '0001-01-01' then sched_arrival_local
        end as sched_arrival_local,
        cast(traveller_type as varchar) as traveller_type,
        nullif(upper(trim(surname)), '') as surname,
        -- Given names are joined by one space, as the PAXLST reader joins components.
        nullif(upper(regexp_replace(trim(given_names), '\s+', ' ', 'g')), '') as given_names,
        nullif(upper(trim(sex)), '') as sex,
        case when date_of_birth >= date '0001-01-01' then date_of_birth end as date_of_birth,
        nullif(upper(trim(nationality)), '') as nationality_raw,
        nullif(upper(trim(residence_country)), '') as residence_raw,
        nullif(upper(trim(embark_airport)), '') as embark_airport,
        nullif(upper(trim(debark_airport)), '') as debark_airport,
        nullif(upper(trim(doc_type)), '') as doc_type,
        nullif(
            replace(replace(replace(upper(doc_number), ' ', ''), '<', ''), '-', ''), ''
        ) as doc_number,
        nullif(upper(trim(doc_issuing_state)), '') as doc_issuer_raw,
        case
            when doc_expiry_date >= date '0001-01-01' then doc_expiry_date
        end as doc_expiry_date,
        nullif(trim(pnr_locator), '') as pnr_locator,
        nullif(upper(trim(seat)), '') as seat
    from numbered
),

typed as (
    select
        normalised.object_id,
        normalised.line_number,
        normalised.carrier_code,
        normalised.flight_number_raw,
        normalised.dep_airport,
        normalised.arr_airport,
        normalised.sched_departure_local,
        normalised.sched_arrival_local,
        normalised.traveller_type,
        normalised.surname,
        normalised.given_names,
        normalised.sex,
        normalised.date_of_birth,
        normalised.embark_airport,
        normalised.debark_airport,
        normalised.doc_type,
        normalised.doc_number,
        normalised.doc_expiry_date,
        normalised.pnr_locator,
        normalised.seat,
        -- Digits (up to four) and an optional suffix letter; anything else is no number, which
        -- the message suite quarantines.
        case
            when regexp_full_match(normalised.flight_number_raw, '[0-9]{1,4}[A-Z]?')
                then
                    lpad(regexp_extract(normalised.flight_number_raw, '^[0-9]+'), 4, '0')
                    || regexp_extract(normalised.flight_number_raw, '[A-Z]?$')
        end as flight_number,
        cast(normalised.sched_departure_local as date) as flight_date,
        coalesce(nationality.alpha3, normalised.nationality_raw) as nationality,
        coalesce(residence.alpha3, normalised.residence_raw) as residence_country,
        coalesce(issuer.alpha3, normalised.doc_issuer_raw) as doc_issuing_state,
        coalesce(normalised.traveller_type = 'CREW', false) as is_crew,
        -- A line that does not say who the traveller is cannot be put in scope or out of it.
        case
            when normalised.traveller_type is null then 'traveller_type is empty'
        end as problem
    from normalised
    left join countries as nationality on normalised.nationality_raw = nationality.code
    left join countries as residence on normalised.residence_raw = residence.code
    left join countries as issuer on normalised.doc_issuer_raw = issuer.code
),

final as (
    select
        *,
        -- The list a readable line belongs to: its export's lines of the same flight (crew
        -- apart), named by the list's first line.
        case
            when problem is null
                then min(line_number) over (
                    partition by
                        object_id,
                        problem is null,
                        is_crew,
                        carrier_code,
                        flight_number,
                        dep_airport,
                        arr_airport,
                        sched_departure_local,
                        sched_arrival_local
                )
        end as list_seq
    from typed
)

select * from final
order by object_id, line_number
