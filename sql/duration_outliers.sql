-- duration_outliers: one row per terminal job slower than its workflow's p95 (key: job_id).
-- p50/p95 are over the workflow's terminal jobs with a known elapsed_seconds (linear interpolation).
create or replace view telestream_up.duration_outliers as

with jobs as (

    select * from telestream_up.job_durations

),

terminal as (

    select * from jobs
    where is_terminal and elapsed_seconds is not null

),

workflow_percentiles as (

    select
        workflow_id,
        quantile_cont(elapsed_seconds, 0.50) as workflow_p50_seconds,
        quantile_cont(elapsed_seconds, 0.95) as workflow_p95_seconds
    from terminal
    group by workflow_id

),

final as (

    select
        terminal.job_id,
        terminal.workflow_id,
        terminal.workflow_name,
        terminal.job_name,
        terminal.state,
        terminal.created_at,
        terminal.updated_at,
        terminal.elapsed_seconds,
        workflow_percentiles.workflow_p50_seconds,
        workflow_percentiles.workflow_p95_seconds,
        terminal.elapsed_seconds / nullif(workflow_percentiles.workflow_p50_seconds, 0) as ratio_to_p50
    from terminal
    inner join workflow_percentiles
        on workflow_percentiles.workflow_id = terminal.workflow_id
    where terminal.elapsed_seconds > workflow_percentiles.workflow_p95_seconds

)

select * from final
