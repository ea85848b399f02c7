-- One macro per GX expectation type the suites use (kwargs in order): true where GX counts the
-- row unexpected, nulls passing as in GX. quality/failures.py checks the counts against GX's.
create or replace macro expect_column_values_to_not_be_null(value) as value is null;

create or replace macro expect_column_values_to_be_null(value) as value is not null;

-- A set of a few hundred values is probed through a hash join, not scanned per row as
-- list_contains would.
create or replace macro expect_column_values_to_be_in_set(value, value_set) as
value is not null and value not in (select unnest(value_set));

create or replace macro expect_column_values_to_not_be_in_set(value, value_set) as
value is not null and list_contains(value_set, value);

-- A missing bound (null) is no bound.
create or replace macro expect_column_values_to_be_between(value, min_value, max_value) as
value is not null and coalesce(value < min_value or value > max_value, false);

create or replace macro expect_column_values_to_match_regex(value, regex) as
value is not null and not regexp_matches(cast(value as varchar), regex);

-- key: the row's columns as one struct; key_missing: whether any of them is null.
create or replace macro expect_compound_columns_to_be_unique(key, key_missing) as
not key_missing and count(*) over (partition by key) > 1;
