-- open_fetch_errors: one row per job whose latest fetch failed and that has not been fetched
-- successfully since (key: space_id, workflow_id, job_id). The next run retries these jobs.
create or replace view telestream_up.open_fetch_errors as

with errors as (

    select * from telestream_up.fetch_errors

),

recoveries as (

    select
        space_id,
        workflow_id,
        job_id,
        max(recovered_at) as last_recovered_at
    from telestream_up.fetch_recoveries
    group by space_id, workflow_id, job_id

),

latest_errors as (

    select
        *,
        row_number() over (
            partition by space_id, workflow_id, job_id
            order by occurred_at desc, _dlt_load_id desc
        ) as error_rank,
        count(*) over (partition by space_id, workflow_id, job_id) as failed_runs
    from errors

),

final as (

    select
        latest_errors.space_id,
        latest_errors.workflow_id,
        latest_errors.job_id,
        latest_errors.error_kind,
        latest_errors.http_status,
        latest_errors.message,
        latest_errors.attempts,
        latest_errors.occurred_at,
        latest_errors.failed_runs,
        latest_errors._dlt_load_id as load_id
    from latest_errors
    left join recoveries
        on recoveries.space_id = latest_errors.space_id
        and recoveries.workflow_id = latest_errors.workflow_id
        and recoveries.job_id = latest_errors.job_id
    where latest_errors.error_rank = 1
        and (recoveries.last_recovered_at is null or recoveries.last_recovered_at < latest_errors.occurred_at)

)

select * from final
