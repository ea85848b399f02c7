-- edifact_element(segment, n): the n-th data element of a canonical segment (1 is the tag),
-- trimmed of stray spaces. Canonical text separates elements with chr(29); see paxlst/syntax.py.
create or replace macro edifact_element(segment, n) as
    trim(split_part(segment, chr(29), n))
