-- edifact_component(segment, n, m): component m of data element n (components split on chr(31)).
create or replace macro edifact_component(segment, n, m) as
    trim(split_part(split_part(segment, chr(29), n), chr(31), m))
