-- job_state_intervals: one row per job × state episode (key: job_id, episode_number).
-- An episode is a run of consecutive observations of a job in one state (created, in-process,
-- retry, a terminal state), observations ordered by the API's updated_at. Its entry lies after
-- the last updated_at seen in the previous episode and at or before the first seen in this one;
-- created is anchored at created_at, and a terminal state at its updated_at (a finished job
-- changes no more), which also closes the episode before it. An in-process episode that must
-- have happened but was never seen (created or retry, then succeeded or retry) is a row with
-- is_observed = false. The first observed episode of a job gets an unknown (null) earliest
-- entry unless it is created: jobs first seen mid-way, or loaded before observations were kept.
-- A gap starts at the later of the last report before it and the last poll that still found
-- the previous version (previous_confirmed_at, this host's clock: keep it NTP-synced).
-- Bounds are in seconds on the API's clock; best estimates place the unseen changes inside a
-- gap at equal spacing (one change: the middle; two: a third and two thirds).
create or replace view telestream_up.job_state_intervals as

with observations as (

    select * from telestream_up.job_observations

),

distinct_observations as (

    select
        *,
        row_number() over (partition by job_id, updated_at order by observed_at) as copy_number
    from observations

),

ordered as (

    select
        job_id,
        workflow_id,
        workflow_name,
        state,
        created_at,
        updated_at,
        previous_confirmed_at,
        lag(state) over (partition by job_id order by updated_at) as previous_observed_state
    from distinct_observations
    where copy_number = 1

),

numbered as (

    select
        *,
        case when previous_observed_state = state then null else previous_confirmed_at end as entry_confirmed_at,
        sum(case when previous_observed_state = state then 0 else 1 end) over (
            partition by job_id order by updated_at nulls first rows between unbounded preceding and current row
        ) as observed_episode_number
    from ordered

),

observed_episodes as (

    select
        job_id,
        observed_episode_number,
        max(workflow_id) as workflow_id,
        max(workflow_name) as workflow_name,
        max(state) as state,
        max(created_at) as created_at,
        min(updated_at) as first_updated_at,
        max(updated_at) as last_updated_at,
        max(entry_confirmed_at) as entry_confirmed_at,
        count(*) as observations
    from numbered
    group by job_id, observed_episode_number

),

with_neighbours as (

    select
        *,
        lag(state) over (partition by job_id order by observed_episode_number) as previous_state,
        lag(last_updated_at) over (partition by job_id order by observed_episode_number) as previous_last_updated_at,
        lead(first_updated_at) over (partition by job_id order by observed_episode_number) as next_first_updated_at,
        state in ('succeeded', 'failed', 'stopped') as is_terminal
    from observed_episodes

),

-- the gap before an episode starts at the later of the last report of the previous state and
-- the last poll that still found it; a confirmation after this episode's first report is
-- impossible (the host's clock is ahead of UP's) and is ignored
gap_starts as (

    select
        *,
        case
            when previous_last_updated_at is null then null
            when entry_confirmed_at is null or entry_confirmed_at > first_updated_at then previous_last_updated_at
            else greatest(previous_last_updated_at, entry_confirmed_at)
        end as gap_start_at
    from with_neighbours

),

gap_ends as (

    select
        *,
        lead(gap_start_at) over (partition by job_id order by observed_episode_number) as next_gap_start_at
    from gap_starts

),

-- the gap before each observed episode: whether an unseen in-process episode is implied, and
-- how many changes whose time is unknown lie in it (the change into a terminal state is known)
gaps as (

    select
        *,
        coalesce(previous_state in ('created', 'retry') and state in ('succeeded', 'retry'), false) as has_hidden_episode,
        (case when previous_state in ('created', 'retry') and state in ('succeeded', 'retry') then 1 else 0 end)
            + (case when is_terminal then 0 else 1 end) as unseen_changes
    from gap_ends

),

gaps_ahead as (

    select
        *,
        lead(unseen_changes) over (partition by job_id order by observed_episode_number) as next_unseen_changes,
        lead(is_terminal) over (partition by job_id order by observed_episode_number) as is_next_terminal
    from gaps

),

observed_rows as (

    select
        job_id,
        workflow_id,
        workflow_name,
        2 * observed_episode_number as sort_key,
        state,
        true as is_observed,
        observations,
        is_terminal,
        first_updated_at as first_seen_updated_at,
        last_updated_at as last_seen_updated_at,
        case
            when state = 'created' then created_at
            when is_terminal then first_updated_at
            else gap_start_at
        end as earliest_entry_at,
        case when state = 'created' then created_at else first_updated_at end as latest_entry_at,
        case
            when next_first_updated_at is null then null
            when is_next_terminal and next_unseen_changes = 0 then next_first_updated_at
            else next_gap_start_at
        end as earliest_exit_at,
        next_first_updated_at as latest_exit_at,
        -- best estimates, in epoch seconds
        case
            when state = 'created' then epoch(created_at)
            when is_terminal then epoch(first_updated_at)
            else epoch(gap_start_at)
                + unseen_changes * (epoch(first_updated_at) - epoch(gap_start_at)) / (unseen_changes + 1)
        end as best_entry_epoch,
        case
            when is_next_terminal and next_unseen_changes = 0 then epoch(next_first_updated_at)
            else epoch(next_gap_start_at)
                + (epoch(next_first_updated_at) - epoch(next_gap_start_at)) / (next_unseen_changes + 1)
        end as best_exit_epoch
    from gaps_ahead
    where not (state = 'created' and observed_episode_number > 1)  -- a job never returns to created

),

hidden_rows as (

    select
        job_id,
        workflow_id,
        workflow_name,
        2 * observed_episode_number - 1 as sort_key,
        'in-process' as state,
        false as is_observed,
        0 as observations,
        false as is_terminal,
        cast(null as timestamptz) as first_seen_updated_at,
        cast(null as timestamptz) as last_seen_updated_at,
        gap_start_at as earliest_entry_at,
        first_updated_at as latest_entry_at,
        case when is_terminal then first_updated_at else gap_start_at end as earliest_exit_at,
        first_updated_at as latest_exit_at,
        epoch(gap_start_at)
            + (epoch(first_updated_at) - epoch(gap_start_at)) / (unseen_changes + 1) as best_entry_epoch,
        case
            when is_terminal then epoch(first_updated_at)
            else epoch(gap_start_at)
                + 2 * (epoch(first_updated_at) - epoch(gap_start_at)) / (unseen_changes + 1)
        end as best_exit_epoch
    from gaps_ahead
    where has_hidden_episode

),

episodes as (

    select * from observed_rows
    union all
    select * from hidden_rows

),

final as (

    select
        job_id,
        workflow_id,
        workflow_name,
        row_number() over (partition by job_id order by sort_key) as episode_number,
        state,
        is_observed,
        observations,
        is_terminal,
        not is_terminal and latest_exit_at is null as is_open,
        earliest_entry_at is null and not is_terminal as is_entry_unknown,
        first_seen_updated_at,
        last_seen_updated_at,
        earliest_entry_at,
        latest_entry_at,
        earliest_exit_at,
        latest_exit_at,
        case  -- greatest() skips nulls: an open episode must stay null
            when not is_terminal and earliest_exit_at is not null
                then greatest(epoch(earliest_exit_at) - epoch(latest_entry_at), 0)
        end as min_seconds,
        case when not is_terminal then epoch(latest_exit_at) - epoch(earliest_entry_at) end as max_seconds,
        case when not is_terminal then best_exit_epoch - best_entry_epoch end as best_seconds
    from episodes

)

select * from final
