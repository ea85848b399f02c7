-- edifact_element(segment, n): the n-th data element of a canonical segment (1 is the tag),
-- trimmed of stray spaces; '' when there is none. Canonical text separates elements with
-- chr(29) (see paxlst/syntax.py); the pattern writes it as RE2's \x1d.
create or replace macro edifact_element(segment, n) as
trim(regexp_extract(segment, printf('^(?:[^\x1d]*\x1d){%d}([^\x1d]*)', n - 1), 1))
