"""What the rules read from the analysis database (DuckDB, opened read-only by the caller).

Each function returns plain values for :mod:`pipeline.alerts.rules`. ``now`` is a parameter
rather than ``current_timestamp`` so a check is reproducible and testable.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Optional

import duckdb

from pipeline.alerts.rules import SCHEMA, FlaggedRegression, RunningJob, WorkflowOutcomes

REGRESSIONS = {"view": "workflow_duration_regressions", "workflow": "workflow_id", "day": "completion_date", "flag": "is_regression"}
"""The only columns of workflow_duration_regressions the check reads: a rename there is a change here."""


def _names(connection: duckdb.DuckDBPyConnection) -> dict[str, Optional[str]]:
    rows = connection.execute(
        f"select workflow_id, max(workflow_name) from {SCHEMA}.job_durations group by workflow_id"
    ).fetchall()
    return dict(rows)


def workflow_outcomes(connection: duckdb.DuckDBPyConnection, now: datetime, hours: float) -> list[WorkflowOutcomes]:
    """Succeeded and failed jobs per workflow whose last update falls in the window."""
    rows = connection.execute(
        f"""
        select
            workflow_id,
            max(workflow_name),
            count(*) filter (where state = 'succeeded'),
            count(*) filter (where state = 'failed')
        from {SCHEMA}.job_durations
        where state in ('succeeded', 'failed') and updated_at > ? and updated_at <= ?
        group by workflow_id
        order by workflow_id
        """,
        [now - timedelta(hours=hours), now],
    ).fetchall()
    return [WorkflowOutcomes(*row) for row in rows]


def running_jobs(connection: duckdb.DuckDBPyConnection, now: datetime) -> list[RunningJob]:
    """Non-terminal jobs with their age, idle time and their workflow's p99 over terminal jobs."""
    rows = connection.execute(
        f"""
        select
            running.job_id,
            running.workflow_id,
            running.workflow_name,
            running.state,
            coalesce(epoch(cast(? as timestamptz)) - epoch(running.created_at), 0),
            coalesce(epoch(cast(? as timestamptz)) - epoch(running.updated_at), 0),
            stats.p99_seconds,
            coalesce(stats.terminal_jobs, 0)
        from {SCHEMA}.running_jobs as running
        left join {SCHEMA}.workflow_duration_stats as stats
            on stats.workflow_id = running.workflow_id
        order by running.workflow_id, running.job_id
        """,
        [now, now],
    ).fetchall()
    return [RunningJob(*row) for row in rows]


def flagged_regressions(connection: duckdb.DuckDBPyConnection, day: date) -> list[FlaggedRegression]:
    """Workflows flagged as regressed on ``day`` (only flag, day and workflow columns are read)."""
    view, workflow, day_column, flag = (REGRESSIONS[k] for k in ("view", "workflow", "day", "flag"))
    rows = connection.execute(
        f"select distinct {workflow}, {day_column} from {SCHEMA}.{view} where {flag} and {day_column} = ? order by 1",
        [day],
    ).fetchall()
    names = _names(connection) if rows else {}
    return [FlaggedRegression(workflow_id, names.get(workflow_id), flagged_day) for workflow_id, flagged_day in rows]


def open_fetch_error_count(connection: duckdb.DuckDBPyConnection) -> int:
    return int(connection.execute(f"select count(*) from {SCHEMA}.open_fetch_errors").fetchall()[0][0])


def newest_load(connection: duckdb.DuckDBPyConnection) -> Optional[datetime]:
    """When dlt finished the newest successful load (``_dlt_loads.status = 0``); None if none."""
    row = connection.execute(f"select max(inserted_at) from {SCHEMA}._dlt_loads where status = 0").fetchone()
    return row[0] if row else None
