-- running_jobs: one row per job not yet in a terminal state (key: job_id).
-- age_seconds = now - created_at; seconds_since_update = now - updated_at (stuck jobs stand out).
create or replace view telestream_up.running_jobs as

with jobs as (

    select * from telestream_up.job_durations

),

final as (

    select
        job_id,
        workflow_id,
        workflow_name,
        job_name,
        state,
        progress,
        created_at,
        updated_at,
        epoch(current_timestamp) - epoch(created_at) as age_seconds,
        epoch(current_timestamp) - epoch(updated_at) as seconds_since_update
    from jobs
    where not is_terminal

)

select * from final
