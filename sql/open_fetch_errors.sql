-- open_fetch_errors: one row per job whose latest fetch (or load) failed and that has not been
-- fetched successfully since (key: space_id, workflow_id, job_id). The next run retries these
-- jobs, except a job failing permanently (404, malformed) for several runs in a row: it waits
-- until next_attempt_at (null: the next run), doubling each time, up to a day by default.
-- failed_runs counts the runs in a row that failed (with any error kind); first_failed_at is
-- when the current error began. Errors recorded before fetch_error_state existed come from
-- fetch_errors as before.
create or replace view telestream_up.open_fetch_errors as

with states as (

    select * from telestream_up.fetch_error_state

),

errors as (

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

open_states as (

    select
        space_id,
        workflow_id,
        job_id,
        error_kind,
        http_status,
        message,
        attempts,
        last_failed_at as occurred_at,
        consecutive_failures as failed_runs,
        _dlt_load_id as load_id,
        first_failed_at,
        next_attempt_at
    from states
    where recovered_at is null

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

legacy_open as (

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
        latest_errors._dlt_load_id as load_id,
        latest_errors.occurred_at as first_failed_at,
        cast(null as timestamp with time zone) as next_attempt_at
    from latest_errors
    left join recoveries
        on recoveries.space_id = latest_errors.space_id
        and recoveries.workflow_id = latest_errors.workflow_id
        and recoveries.job_id = latest_errors.job_id
    left join states
        on states.space_id = latest_errors.space_id
        and states.workflow_id = latest_errors.workflow_id
        and states.job_id = latest_errors.job_id
    where latest_errors.error_rank = 1
        and states.job_id is null
        and (recoveries.last_recovered_at is null or recoveries.last_recovered_at < latest_errors.occurred_at)

),

final as (

    select * from open_states
    union all
    select * from legacy_open

)

select * from final
