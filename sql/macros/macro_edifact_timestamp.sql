-- edifact_timestamp(value): DTM value as a timestamp. 201 (YYMMDDHHMM) is the norm; 203
-- (CCYYMMDDHHMM) and date-only 101/102 forms are accepted. Anything else is null, year 0000
-- too (DuckDB reads it as 1 BC, which pyarrow cannot).
create or replace macro edifact_timestamp(value) as
case length(value)
    when 10 then try_strptime('20' || value, '%Y%m%d%H%M')
    when 12 then try_strptime(case when value >= '0001' then value end, '%Y%m%d%H%M')
    when 6 then try_strptime('20' || value, '%Y%m%d')
    when 8 then try_strptime(case when value >= '0001' then value end, '%Y%m%d')
end
