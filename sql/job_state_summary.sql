-- job_state_summary: one row per workflow × state (key: workflow_id, state).
-- share_of_workflow is this state's jobs over all jobs of the workflow (0-1).
create or replace view telestream_up.job_state_summary as

with jobs as (

    select * from telestream_up.job_durations

),

counted as (

    select
        workflow_id,
        max(workflow_name) as workflow_name,
        state,
        count(*) as jobs
    from jobs
    group by workflow_id, state

),

final as (

    select
        workflow_id,
        workflow_name,
        state,
        jobs,
        jobs / sum(jobs) over (partition by workflow_id)::double as share_of_workflow
    from counted

)

select * from final
