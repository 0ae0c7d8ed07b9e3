-- workflow_duration_stats: one row per workflow (key: workflow_id).
-- Counts over all jobs; duration statistics over terminal jobs with a known elapsed_seconds,
-- percentiles by linear interpolation (quantile_cont). success_rate = succeeded / (succeeded + failed).
create or replace view telestream_up.workflow_duration_stats as

with jobs as (

    select * from telestream_up.job_durations

),

final as (

    select
        workflow_id,
        max(workflow_name) as workflow_name,
        count(*) as jobs,
        count(*) filter (where is_terminal) as terminal_jobs,
        count(*) filter (where state = 'succeeded') as succeeded_jobs,
        count(*) filter (where state = 'failed') as failed_jobs,
        count(*) filter (where state = 'stopped') as stopped_jobs,
        count(*) filter (where state = 'succeeded')
            / nullif(count(*) filter (where state in ('succeeded', 'failed')), 0)::double as success_rate,
        avg(elapsed_seconds) filter (where is_terminal) as mean_seconds,
        quantile_cont(elapsed_seconds, 0.50) filter (where is_terminal) as p50_seconds,
        quantile_cont(elapsed_seconds, 0.90) filter (where is_terminal) as p90_seconds,
        quantile_cont(elapsed_seconds, 0.95) filter (where is_terminal) as p95_seconds,
        quantile_cont(elapsed_seconds, 0.99) filter (where is_terminal) as p99_seconds,
        max(elapsed_seconds) filter (where is_terminal) as max_seconds
    from jobs
    group by workflow_id

)

select * from final
