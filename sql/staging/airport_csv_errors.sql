-- Why a line of an airport export could not be read, in the parser's error shape: the line
-- number stands where a PAXLST error names the segment position.
-- Input: airport_csv_unreadable_lines.
with

unreadable_lines as (select * from airport_csv_unreadable_lines),

final as (
    select
        object_id,
        cast(line_number as bigint) as message_seq,
        cast(line_number as bigint) as segment_position,
        'csv_line_rejected' as error_code,
        reason
    from unreadable_lines
)

select * from final
order by object_id, segment_position
