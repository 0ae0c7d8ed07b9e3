-- job_durations: one row per UP workflow job (key: job_id).
-- Durations two ways: elapsed_seconds as UP reports it (elapsed_time parsed) and
-- duration_from_timestamps_seconds = updated_at - created_at, which UP documents as equal. It is
-- computed from whole microseconds (epoch(updated_at) - epoch(created_at) subtracts two doubles near
-- 1.7e9 and reads 59.9 s as 59.90000009536743), on UTC wall times so that sqlglot's translation
-- (Postgres: timestamp - timestamp) cannot gain or lose an hour at a daylight-saving change.
create or replace view telestream_up.job_durations as

with jobs as (

    select * from telestream_up.workflow_jobs

),

final as (

    select
        id as job_id,
        space_id,
        workflow_id,
        workflow_name,
        name as job_name,
        workflow_version,
        state,
        progress,
        created_at,
        updated_at,
        elapsed_time,
        elapsed_seconds,
        date_diff('microsecond', created_at at time zone 'UTC', updated_at at time zone 'UTC')
            / 1e6 as duration_from_timestamps_seconds,
        state in ('succeeded', 'failed', 'stopped') as is_terminal
    from jobs

)

select * from final
