-- current_records(published): the current record of every traveller in a relation of published
-- rows (a view over drops, the Iceberg table, fetched files): the highest manifest_revision per
-- record_id, with every column the relation has. The partner guide quotes this file;
-- `partner fetch --current` runs it.
create or replace macro current_records(published) as table
    select *  -- noqa: AM04
    from query_table(published)
    qualify row_number() over (
        partition by record_id
        order by manifest_revision desc, published_at desc
    ) = 1
