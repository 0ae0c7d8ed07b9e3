-- data_quality_issues: one row per problem found on a job (key: job_id, problem).
-- problem is one of: terminal_without_elapsed_time, unparseable_elapsed_time,
-- elapsed_time_disagrees_with_timestamps (> 1 s apart), elapsed_time_on_running_job,
-- updated_before_created, progress_out_of_range, updated_at_in_future (more than 10 minutes
-- ahead of the time the row was loaded: a server clock bug; such a job is refetched every run
-- until the API reports a sane time, which then replaces it), in_process_beyond_workflow_p99
-- (in-process for longer, since created_at, than 99 % of its workflow's finished jobs took;
-- judged only for workflows with at least 20 finished jobs: a stuck job).
create or replace view telestream_up.data_quality_issues as

with jobs as (

    select
        job_durations.*,
        workflow_jobs.elapsed_time_error,
        loads.inserted_at as loaded_at
    from telestream_up.job_durations
    inner join telestream_up.workflow_jobs
        on workflow_jobs.id = job_durations.job_id
    left join telestream_up._dlt_loads as loads
        on loads.load_id = workflow_jobs._dlt_load_id

),

workflow_p99 as (

    select workflow_id, p99_seconds, terminal_jobs
    from telestream_up.workflow_duration_stats

),

problems as (

    select job_id, 'terminal_without_elapsed_time' as problem, 'state ' || state as detail
    from jobs
    where is_terminal and elapsed_time is null

    union all

    select job_id, 'unparseable_elapsed_time', elapsed_time_error
    from jobs
    where elapsed_time is not null and elapsed_seconds is null

    union all

    select
        job_id,
        'elapsed_time_disagrees_with_timestamps',
        'elapsed ' || cast(elapsed_seconds as decimal(18, 3)) || ' s vs timestamps '
            || cast(duration_from_timestamps_seconds as decimal(18, 3)) || ' s'
    from jobs
    where abs(elapsed_seconds - duration_from_timestamps_seconds) > 1

    union all

    select job_id, 'elapsed_time_on_running_job', 'state ' || state || ', elapsed_time ' || elapsed_time
    from jobs
    where not is_terminal and elapsed_time is not null

    union all

    select job_id, 'updated_before_created', 'updated ' || updated_at || ' < created ' || created_at
    from jobs
    where updated_at < created_at

    union all

    select job_id, 'progress_out_of_range', 'progress ' || progress
    from jobs
    where progress < 0 or progress > 100

    union all

    select job_id, 'updated_at_in_future', 'updated ' || updated_at || ', loaded ' || loaded_at
    from jobs
    where updated_at > loaded_at + interval '10 minutes'

    union all

    select
        jobs.job_id,
        'in_process_beyond_workflow_p99',
        'in process for ' || cast(jobs.age_seconds as decimal(18, 1)) || ' s; workflow p99 '
            || cast(workflow_p99.p99_seconds as decimal(18, 1)) || ' s'
    from (
        select
            *,
            date_diff('microsecond', created_at at time zone 'UTC', current_timestamp at time zone 'UTC') / 1e6
                as age_seconds
        from jobs
        where state = 'in-process'
    ) as jobs
    inner join workflow_p99
        on workflow_p99.workflow_id = jobs.workflow_id
    where workflow_p99.terminal_jobs >= 20
        and jobs.age_seconds > workflow_p99.p99_seconds

),

final as (

    select
        problems.job_id,
        jobs.workflow_id,
        jobs.workflow_name,
        jobs.state,
        problems.problem,
        problems.detail
    from problems
    inner join jobs
        on jobs.job_id = problems.job_id

)

select * from final
