-- workflow_duration_regressions: one row per workflow × completion day (key: workflow_id, completion_date).
-- Is this workflow slower today than it was last month, beyond what chance explains?
--
-- The day's median duration is compared with the baseline median: the same workflow's jobs
-- completed in the 28 days that end a week before the day (days d-35 … d-8). The week's gap
-- keeps a slowdown that started a few days ago out of its own baseline, so a step change stays
-- flagged at full strength for a week instead of fading as slow days enter the baseline.
--
-- A fixed rule ("median > 1.5x baseline") fires on noise: the median of 1-3 jobs of a workflow
-- whose durations vary 2x from job to job is above 1.5x its usual value on about one day in
-- four (23 % of demo workflow-days were flagged with nothing changed). So the threshold is set
-- from the data. Durations are roughly log-normal per workflow; the baseline's spread of
-- ln(duration) is estimated robustly from its interquartile range (log_spread = IQR / 1.349, so
-- a few stuck or instant jobs do not move it). The standard error of ln(day median / baseline
-- median) is then 1.2533 * log_spread * sqrt(1/day jobs + 1/baseline jobs) (the sample median's
-- asymptotic error). A day is flagged when its ratio exceeds
--     threshold_ratio = exp(greatest(ln(1.2), 3.5 * standard_error)),
-- i.e. 3.5 standard errors above the baseline (about 1 false flag in 4,000 judged days if nothing
-- changed; the margin also covers the spread being estimated from a few dozen jobs) and never
-- for less than a 1.2x change, which nobody would act on.
-- min_detectable_ratio = exp(ln(threshold_ratio) + 3 * standard_error) is the smallest slowdown
-- the day's job count catches almost surely (a real slowdown of that size is flagged with
-- probability ~99.9 %): with 3 jobs of a widely varying workflow only a 10x slowdown is
-- detectable; a 1.5x one needs dozens to hundreds of jobs a day. is_judged says the day has
-- enough jobs to catch a 1.5x slowdown (min_detectable_ratio <= 1.5).
-- Judged at all (threshold_ratio not null) only with >= 3 jobs on the day and a baseline of
-- >= 20 jobs over >= 7 distinct days.
create or replace view telestream_up.workflow_duration_regressions as

with jobs as (

    select * from telestream_up.job_durations

),

completed as (

    select
        workflow_id,
        workflow_name,
        cast(updated_at at time zone 'UTC' as date) as completion_date,
        elapsed_seconds,
        ln(greatest(elapsed_seconds, 0.001)) as log_seconds
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
        (quantile_cont(completed.log_seconds, 0.75) - quantile_cont(completed.log_seconds, 0.25)) / 1.349
            as baseline_log_spread,
        count(distinct completed.completion_date) as baseline_days,
        count(*) as baseline_jobs
    from daily
    inner join completed
        on completed.workflow_id = daily.workflow_id
        and completed.completion_date >= daily.completion_date - 35
        and completed.completion_date <= daily.completion_date - 8
    group by daily.workflow_id, daily.completion_date

),

compared as (

    select
        daily.workflow_id,
        daily.workflow_name,
        daily.completion_date,
        daily.completed_jobs,
        daily.median_seconds,
        baseline.baseline_median_seconds,
        coalesce(baseline.baseline_days, 0) as baseline_days,
        coalesce(baseline.baseline_jobs, 0) as baseline_jobs,
        baseline.baseline_log_spread,
        daily.median_seconds / nullif(baseline.baseline_median_seconds, 0) as ratio_to_baseline,
        case
            when daily.completed_jobs >= 3 and baseline.baseline_jobs >= 20 and baseline.baseline_days >= 7
                then 1.2533 * baseline.baseline_log_spread
                    * sqrt(1.0 / daily.completed_jobs + 1.0 / baseline.baseline_jobs)
        end as standard_error
    from daily
    left join baseline
        on baseline.workflow_id = daily.workflow_id
        and baseline.completion_date = daily.completion_date

),

thresholds as (

    select
        *,
        greatest(ln(1.2), 3.5 * standard_error) as log_threshold
    from compared

),

final as (

    select
        workflow_id,
        workflow_name,
        completion_date,
        completed_jobs,
        median_seconds,
        baseline_median_seconds,
        baseline_days,
        baseline_jobs,
        baseline_log_spread,
        ratio_to_baseline,
        case when standard_error is not null then exp(log_threshold) end as threshold_ratio,
        case when standard_error is not null then exp(log_threshold + 3 * standard_error) end as min_detectable_ratio,
        coalesce(standard_error is not null and exp(log_threshold + 3 * standard_error) <= 1.5, false) as is_judged,
        coalesce(standard_error is not null and ratio_to_baseline > exp(log_threshold), false) as is_regression
    from thresholds

)

select * from final
