-- The readable lines of the airport exports in $files, typed by the documented layout
-- ($columns: the header's columns in file order with their types, see airport_csv/reader.py).
-- A line that does not fit (a value that does not cast, too few or too many columns, bad
-- UTF-8) is not dropped: store_rejects keeps it, with its line number, in reject_errors.
with

lines as (
    select *
    from read_csv(
        $files,
        columns = $columns,
        header = true,
        auto_detect = false,
        delim = ',',
        quote = '"',
        escape = '"',
        dateformat = '%Y-%m-%d',
        timestampformat = '%Y-%m-%d %H:%M',
        store_rejects = true,
        filename = true
    )
),

final as (
    select * from lines
)

-- The columns are the header's ($columns), so they cannot be listed here.
select * from final  -- noqa: AM04
