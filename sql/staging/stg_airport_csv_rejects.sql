-- One row per rejected line of the airport exports, with why, in words that carry no value
-- from the line (DuckDB's own messages quote the value, which may be a birth date).
-- Inputs: reject_errors, reject_scans (filled by store_rejects while stg_airport_csv_rows ran).
with

errors as (select * from reject_errors),

scans as (select * from reject_scans),

explained as (
    select
        cast(regexp_extract(scans.file_path, '([0-9]+)\.csv$', 1) as integer) as object_id,
        errors.line as line_number,
        case errors.error_type
            when 'CAST'
                then
                    coalesce(errors.column_name, '?') || ' is not a valid value of its type'
            when 'MISSING COLUMNS' then 'fewer values than the header names (line cut off?)'
            when 'TOO MANY COLUMNS' then 'more values than the header names'
            when 'INVALID ENCODING' then 'not valid UTF-8'
            when 'INVALID UNICODE' then 'not valid UTF-8'
            when 'UNQUOTED VALUE' then 'a quote inside an unquoted value'
            when 'LINE SIZE OVER MAXIMUM' then 'the line is too long'
            else lower(errors.error_type)
        end as problem
    from errors
    inner join scans
        on
            errors.scan_id = scans.scan_id
            and errors.file_id = scans.file_id
),

final as (
    select
        object_id,
        line_number,
        'line ' || line_number || ': ' || string_agg(distinct problem, '; ' order by problem)
            as reason
    from explained
    group by object_id, line_number
)

select * from final
order by object_id, line_number
