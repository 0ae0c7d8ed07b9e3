-- workflow_time_breakdown: one row per workflow (key: workflow_id).
-- Where a finished job's time went: queue (created), processing (in-process, seen or implied)
-- and retry (waiting in retry), from job_state_intervals. Only jobs observed from their queue
-- to their end count (first episode created, last one terminal): for them every episode has
-- both bounds. Per phase: p50 and p90 of the per-job best estimates (quantile_cont) and the
-- mean bound width per job (max_seconds - min_seconds), which says how far to trust them;
-- share_retried = jobs with at least one retry / jobs; retries_per_job = retry episodes / jobs.
create or replace view telestream_up.workflow_time_breakdown as

with intervals as (

    select * from telestream_up.job_state_intervals

),

job_shapes as (

    select
        job_id,
        max(workflow_id) as workflow_id,
        max(workflow_name) as workflow_name,
        max(case when episode_number = 1 then state end) as first_state,
        count(*) filter (where is_terminal) as terminal_episodes,
        count(*) filter (where is_entry_unknown or is_open) as unbounded_episodes
    from intervals
    group by job_id

),

complete_jobs as (

    select * from job_shapes
    where first_state = 'created' and terminal_episodes = 1 and unbounded_episodes = 0

),

per_job as (

    select
        jobs.workflow_id,
        jobs.job_id,
        coalesce(sum(intervals.best_seconds) filter (where intervals.state = 'created'), 0) as queue_seconds,
        coalesce(sum(intervals.best_seconds) filter (where intervals.state = 'in-process'), 0) as processing_seconds,
        coalesce(sum(intervals.best_seconds) filter (where intervals.state = 'retry'), 0) as retry_seconds,
        coalesce(sum(intervals.max_seconds - intervals.min_seconds) filter (where intervals.state = 'created'), 0)
            as queue_bound_seconds,
        coalesce(sum(intervals.max_seconds - intervals.min_seconds) filter (where intervals.state = 'in-process'), 0)
            as processing_bound_seconds,
        coalesce(sum(intervals.max_seconds - intervals.min_seconds) filter (where intervals.state = 'retry'), 0)
            as retry_bound_seconds,
        count(*) filter (where intervals.state = 'retry') as retries,
        count(*) filter (where not intervals.is_observed) as unobserved_episodes
    from complete_jobs as jobs
    inner join intervals on intervals.job_id = jobs.job_id
    group by jobs.workflow_id, jobs.job_id

),

observed_jobs as (

    select
        workflow_id,
        max(workflow_name) as workflow_name,
        count(*) as observed_jobs
    from job_shapes
    group by workflow_id

),

phases as (

    select
        workflow_id,
        count(*) as complete_jobs,
        quantile_cont(queue_seconds, 0.50) as queue_p50_seconds,
        quantile_cont(queue_seconds, 0.90) as queue_p90_seconds,
        avg(queue_bound_seconds) as queue_mean_bound_seconds,
        quantile_cont(processing_seconds, 0.50) as processing_p50_seconds,
        quantile_cont(processing_seconds, 0.90) as processing_p90_seconds,
        avg(processing_bound_seconds) as processing_mean_bound_seconds,
        quantile_cont(retry_seconds, 0.50) as retry_p50_seconds,
        quantile_cont(retry_seconds, 0.90) as retry_p90_seconds,
        avg(retry_bound_seconds) as retry_mean_bound_seconds,
        avg(cast(case when retries > 0 then 1 else 0 end as double)) as share_retried,
        avg(cast(retries as double)) as retries_per_job,
        avg(cast(case when unobserved_episodes > 0 then 1 else 0 end as double)) as share_with_unobserved_episode
    from per_job
    group by workflow_id

),

final as (

    select
        observed_jobs.workflow_id,
        observed_jobs.workflow_name,
        observed_jobs.observed_jobs,
        coalesce(phases.complete_jobs, 0) as complete_jobs,
        phases.queue_p50_seconds,
        phases.queue_p90_seconds,
        phases.queue_mean_bound_seconds,
        phases.processing_p50_seconds,
        phases.processing_p90_seconds,
        phases.processing_mean_bound_seconds,
        phases.retry_p50_seconds,
        phases.retry_p90_seconds,
        phases.retry_mean_bound_seconds,
        phases.share_retried,
        phases.retries_per_job,
        phases.share_with_unobserved_episode
    from observed_jobs
    left join phases on phases.workflow_id = observed_jobs.workflow_id

)

select * from final
