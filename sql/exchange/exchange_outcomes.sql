-- Every traveller's outcome (published, out_of_scope, duplicate or quarantined), reasons,
-- dq_flags and manifest_revision: the newest revision in a run wins, content the partner has is
-- a duplicate, a changed record goes out one revision above the partner's.
-- Inputs: exchange_travellers, message_issues, traveller_issues, list_issues, published_records.
-- Only the columns this step adds, unsorted: transform.exchange_outcomes sorts and joins them.
with

-- A traveller whose record the partner does not have, but whose name and birth date on the
-- flight belong to exactly one record it has (an airport export with another document, after
-- the airline's list was published), is that record: it becomes a new revision of it.
published_people as (
    select
        person_key,
        min(record_id) as record_id
    from published_records
    where person_key is not null
    group by person_key
    having count(distinct record_id) = 1
),

published_ids as (
    select distinct record_id from published_records
),

travellers as (
    select
        incoming.person_id,
        incoming.message_id,
        incoming.list_key,
        incoming.message_seq,
        incoming.receive_order,
        incoming.transaction_revision,
        incoming.content_sha256,
        incoming.stage_reasons,
        incoming.stage_outcome,
        case
            when published_ids.record_id is null
                then coalesce(published_people.record_id, incoming.record_id)
            else incoming.record_id
        end as record_id
    from exchange_travellers as incoming
    left join published_ids on incoming.record_id = published_ids.record_id
    left join published_people on incoming.person_key = published_people.person_key
),

traveller_errors as (
    select
        cast(row_id as bigint) as person_id,
        list_sort(list(distinct check_name)) as reasons
    from traveller_issues
    where severity = 'error'
    group by row_id
),

traveller_warnings as (
    select
        cast(row_id as bigint) as person_id,
        list(distinct check_name) as flags
    from traveller_issues
    where severity = 'warning'
    group by row_id
),

list_warnings as (
    select
        row_id as list_key,
        list(distinct check_name) as flags
    from list_issues
    where severity = 'warning'
    group by row_id
),

message_warnings as (
    select
        row_id as message_id,
        list(distinct check_name) as flags
    from message_issues
    where severity = 'warning'
    group by row_id
),

-- The partner's current version of each record.
published as (
    select
        record_id,
        max(manifest_revision) as published_revision,
        arg_max(content_sha256, manifest_revision) as published_content_sha256,
        max(sent_revision) as published_sent_revision
    from published_records
    group by record_id
),

checked as (
    select
        travellers.*,
        coalesce(travellers.stage_reasons, traveller_errors.reasons) as checked_reasons,
        coalesce(
            travellers.stage_outcome,
            case when traveller_errors.reasons is not null then 'quarantined' end
        ) as checked_outcome,
        list_sort(list_distinct(flatten([
            coalesce(traveller_warnings.flags, []),
            coalesce(list_warnings.flags, []),
            coalesce(message_warnings.flags, [])
        ]))) as dq_flags
    from travellers
    left join traveller_errors on travellers.person_id = traveller_errors.person_id
    left join traveller_warnings on travellers.person_id = traveller_warnings.person_id
    left join list_warnings on travellers.list_key = list_warnings.list_key
    left join message_warnings on travellers.message_id = message_warnings.message_id
),

ranked as (
    select
        checked.person_id,
        checked.transaction_revision,
        checked.content_sha256,
        published.published_revision,
        published.published_content_sha256,
        published.published_sent_revision,
        row_number() over (
            partition by checked.record_id
            order by
                coalesce(checked.transaction_revision, 0) desc,
                checked.receive_order desc,
                checked.message_seq desc,
                checked.person_id desc
        ) as revision_rank
    from checked
    left join published on checked.record_id = published.record_id
    where checked.checked_outcome is null
),

decided as (
    select
        person_id,
        case
            when revision_rank > 1 then ['superseded_in_run']
            when content_sha256 = published_content_sha256 then ['already_published']
            when transaction_revision < published_sent_revision then ['older_revision']
        end as duplicate_reasons,
        case
            when published_revision is null then coalesce(transaction_revision, 1)
            else greatest(coalesce(transaction_revision, 0), published_revision + 1)
        end as manifest_revision
    from ranked
),

final as (
    select
        checked.person_id,
        checked.record_id,
        checked.checked_reasons,
        checked.checked_outcome,
        checked.dq_flags,
        case
            when checked.checked_outcome is not null then checked.checked_outcome
            when decided.duplicate_reasons is not null then 'duplicate'
            else 'published'
        end as outcome,
        coalesce(checked.checked_reasons, decided.duplicate_reasons, []) as reasons,
        decided.manifest_revision
    from checked
    left join decided on checked.person_id = decided.person_id
)

select * from final
