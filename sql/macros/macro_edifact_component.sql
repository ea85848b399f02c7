-- edifact_component(segment, n, m): component m of element n (split on chr(29), then chr(31)),
-- trimmed, or ''. A regular expression: split_part binds slowly (decision 0021).
create or replace macro edifact_component(segment, n, m) as
trim(regexp_extract(
    segment,
    printf('^(?:[^\x1d]*\x1d){%d}(?:[^\x1d\x1f]*\x1f){%d}([^\x1d\x1f]*)', n - 1, m - 1),
    1
))
