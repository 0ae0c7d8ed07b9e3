-- daily_workflow_stats: one row per completion day × workflow (key: completion_date, workflow_id).
-- completion_date is the UTC date of updated_at of terminal jobs (succeeded, failed, stopped).
-- Duration statistics over jobs with a known elapsed_seconds; percentiles interpolate linearly.
create or replace view telestream_up.daily_workflow_stats as

with jobs as (

    select * from telestream_up.job_durations

),

completed as (

    select
        cast(updated_at at time zone 'UTC' as date) as completion_date,
        workflow_id,
        workflow_name,
        state,
        elapsed_seconds
    from jobs
    where is_terminal

),

final as (

    select
        completion_date,
        workflow_id,
        max(workflow_name) as workflow_name,
        count(*) as completed_jobs,
        count(*) filter (where state = 'succeeded') as succeeded_jobs,
        count(*) filter (where state = 'failed') as failed_jobs,
        count(*) filter (where state = 'stopped') as stopped_jobs,
        count(*) filter (where state = 'succeeded')
            / nullif(count(*) filter (where state in ('succeeded', 'failed')), 0)::double as success_rate,
        avg(elapsed_seconds) as mean_seconds,
        quantile_cont(elapsed_seconds, 0.50) as p50_seconds,
        quantile_cont(elapsed_seconds, 0.90) as p90_seconds,
        max(elapsed_seconds) as max_seconds
    from completed
    group by completion_date, workflow_id

)

select * from final
