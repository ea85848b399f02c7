-- Lines of the airport exports that cannot become a traveller: those DuckDB rejected while
-- reading and readable lines without a traveller type. Each is one unreadable traveller.
-- Inputs: stg_airport_csv_rejects, stg_airport_csv_travellers.
with

rejected as (
    select
        object_id,
        line_number,
        reason
    from stg_airport_csv_rejects
),

incomplete as (
    select
        object_id,
        line_number,
        'line ' || line_number || ': ' || problem as reason
    from stg_airport_csv_travellers
    where problem is not null
),

final as (
    select * from rejected
    union all
    select * from incomplete
)

select * from final
order by object_id, line_number
