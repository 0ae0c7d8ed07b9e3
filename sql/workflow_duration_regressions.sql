-- workflow_duration_regressions: one row per workflow × completion day (key: workflow_id, completion_date).
-- Like dbt_artifacts' model-performance mart: the day's median duration against the median of
-- the same workflow's jobs completed in the 28 days before it. is_regression when the ratio
-- exceeds 1.5 and the baseline covers at least 3 distinct days.
create or replace view telestream_up.workflow_duration_regressions as

with jobs as (

    select * from telestream_up.job_durations

),

completed as (

    select
        workflow_id,
        workflow_name,
        cast(updated_at at time zone 'UTC' as date) as completion_date,
        elapsed_seconds
    from jobs
    where is_terminal and elapsed_seconds is not null

),

daily as (

    select
        workflow_id,
        completion_date,
        max(workflow_name) as workflow_name,
        count(*) as completed_jobs,
        quantile_cont(elapsed_seconds, 0.5) as median_seconds
    from completed
    group by workflow_id, completion_date

),

baseline as (

    select
        daily.workflow_id,
        daily.completion_date,
        quantile_cont(completed.elapsed_seconds, 0.5) as baseline_median_seconds,
        count(distinct completed.completion_date) as baseline_days,
        count(*) as baseline_jobs
    from daily
    inner join completed
        on completed.workflow_id = daily.workflow_id
        and completed.completion_date >= daily.completion_date - 28
        and completed.completion_date < daily.completion_date
    group by daily.workflow_id, daily.completion_date

),

final as (

    select
        daily.workflow_id,
        daily.workflow_name,
        daily.completion_date,
        daily.completed_jobs,
        daily.median_seconds,
        baseline.baseline_median_seconds,
        coalesce(baseline.baseline_days, 0) as baseline_days,
        coalesce(baseline.baseline_jobs, 0) as baseline_jobs,
        daily.median_seconds / nullif(baseline.baseline_median_seconds, 0) as ratio_to_baseline,
        coalesce(
            baseline.baseline_days >= 3
            and daily.median_seconds / nullif(baseline.baseline_median_seconds, 0) > 1.5,
            false
        ) as is_regression
    from daily
    left join baseline
        on baseline.workflow_id = daily.workflow_id
        and baseline.completion_date = daily.completion_date

)

select * from final
