-- One row per flight leg (TDT with its LOC/DTM) in a message header. A plain flight has one
-- leg with LOC 125/87; a progressive flight repeats TDT with LOC 92 legs.
-- Input: stg_paxlst_segments.
with

segments as (
    select * from stg_paxlst_segments
    where group_kind = 'header' and leg_seq > 0 and tag in ('TDT', 'LOC', 'DTM')
),

per_leg as (
    select
        object_id,
        message_seq,
        leg_seq,
        arg_min(segment, position) filter (where tag = 'TDT') as tdt_segment,
        arg_min(segment, position) filter (where tag = 'LOC' and qualifier in ('125', '92'))
            as dep_segment,
        arg_max(segment, position) filter (where tag = 'LOC' and qualifier in ('87', '92'))
            as arr_segment,
        arg_min(e2c2, position) filter (where tag = 'DTM' and qualifier = '189') as departure_raw,
        arg_min(e2c2, position) filter (where tag = 'DTM' and qualifier = '232') as arrival_raw
    from segments
    group by object_id, message_seq, leg_seq
),

designators as (
    select
        *,
        upper(replace(edifact_element(tdt_segment, 3), ' ', '')) as designator,
        nullif(upper(edifact_component(tdt_segment, 6, 1)), '') as carrier_element
    from per_leg
),

final as (
    select
        object_id,
        message_seq,
        leg_seq,
        coalesce(
            carrier_element,
            regexp_extract(designator, '^([A-Z0-9]{2}|[A-Z]{3})([0-9]{1,4})([A-Z]?)$', 1)
        ) as carrier_code,
        regexp_extract(designator, '([0-9]{1,4})([A-Z]?)$', 1) as flight_digits,
        regexp_extract(designator, '([0-9]{1,4})([A-Z]?)$', 2) as flight_suffix,
        upper(edifact_component(dep_segment, 3, 1)) as dep_airport,
        edifact_component(dep_segment, 2, 1) as dep_qualifier,
        upper(edifact_component(arr_segment, 3, 1)) as arr_airport,
        edifact_component(arr_segment, 2, 1) as arr_qualifier,
        departure_raw,
        arrival_raw,
        edifact_timestamp(departure_raw) as sched_departure_local,
        edifact_timestamp(arrival_raw) as sched_arrival_local
    from designators
)

select * from final
