-- edifact_date(value, century): a YYMMDD value in the given century ('19' or '20'), or a
-- CCYYMMDD value as sent. Impossible dates (month 13, 30 February, year 0000, which DuckDB reads
-- as 1 BC and pyarrow cannot) are null.
create or replace macro edifact_date(value, century) as
case length(value)
    when 6 then cast(try_strptime(century || value, '%Y%m%d') as date)
    when 8 then cast(try_strptime(case when value >= '0001' then value end, '%Y%m%d') as date)
end
