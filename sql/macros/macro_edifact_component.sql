-- edifact_component(segment, n, m): component m of data element n (elements split on chr(29),
-- components on chr(31)), trimmed; '' when the segment has no such component. A regular
-- expression, not split_part: DuckDB binds split_part as a list split and index, which made
-- binding the parser's queries cost more than running them on a small batch.
create or replace macro edifact_component(segment, n, m) as
trim(regexp_extract(
    segment,
    printf('^(?:[^\x1d]*\x1d){%d}(?:[^\x1d\x1f]*\x1f){%d}([^\x1d\x1f]*)', n - 1, m - 1),
    1
))
