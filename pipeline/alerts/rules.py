"""The alert rules: pure functions from query results to :class:`Alert` values.

No I/O here (``queries.py`` reads the database, ``check.py`` ties them together), so each rule
is testable on plain values, and ``now`` is always an argument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

from pipeline.alerts.config import AlertsConfiguration
from pipeline.names import DATASET_NAME

SCHEMA = DATASET_NAME
HOUR = 3600.0


@dataclass(frozen=True)
class Alert:
    """One thing that needs a human. ``key`` identifies it across runs; ``fingerprint`` changes
    when something about it changes that is worth announcing again."""

    rule: str
    subject: str
    message: str
    view: str
    value: Optional[float] = None
    threshold: Optional[float] = None
    workflow_id: Optional[str] = None
    workflow_name: Optional[str] = None
    job_id: Optional[str] = None
    change: str = ""

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    @property
    def fingerprint(self) -> str:
        return f"{self.key}|{self.change}"


@dataclass(frozen=True)
class WorkflowOutcomes:
    """Terminal jobs of one workflow completed in the failure-rate window."""

    workflow_id: str
    workflow_name: Optional[str]
    succeeded: int
    failed: int


@dataclass(frozen=True)
class RunningJob:
    job_id: str
    workflow_id: str
    workflow_name: Optional[str]
    state: str
    age_seconds: float
    idle_seconds: float
    workflow_p99_seconds: Optional[float]
    workflow_terminal_jobs: int


@dataclass(frozen=True)
class FlaggedRegression:
    workflow_id: str
    workflow_name: Optional[str]
    day: date


def _view(name: str) -> str:
    return f"{SCHEMA}.{name}"


def _workflow(workflow_id: str, name: Optional[str]) -> str:
    return f"workflow {name!r} ({workflow_id})" if name else f"workflow {workflow_id}"


def _hours(seconds: float) -> str:
    """A duration in the unit a person reads at a glance (a p99 may be seconds, a stale load days)."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / HOUR:.1f} h"


def failure_rate(rows: list[WorkflowOutcomes], config: AlertsConfiguration) -> list[Alert]:
    """failed / (succeeded + failed) above ``failure_rate_max``, for workflows with enough jobs."""
    alerts = []
    for row in rows:
        jobs = row.succeeded + row.failed
        if jobs == 0 or jobs < config.failure_rate_min_jobs:
            continue
        rate = row.failed / jobs
        if rate > config.failure_rate_max:
            alerts.append(Alert(
                rule="failure_rate",
                subject=row.workflow_id,
                message=(f"failure rate {_workflow(row.workflow_id, row.workflow_name)}: {rate:.1%} of {jobs} jobs "
                         f"failed in the last {config.failure_rate_hours:g} h > {config.failure_rate_max:.1%}"),
                view=_view("job_durations"),
                value=round(rate, 4),
                threshold=config.failure_rate_max,
                workflow_id=row.workflow_id,
                workflow_name=row.workflow_name,
            ))
    return alerts


def stuck_limit(job: RunningJob, config: AlertsConfiguration) -> tuple[float, str]:
    """The age after which this job counts as stuck, and what that limit is, for the message."""
    limit, reason = (config.stuck_jobs_max_age_hours * HOUR) or math.inf, "limit"  # 0: no fixed limit
    if (
        config.stuck_jobs_p99_factor > 0
        and job.workflow_p99_seconds is not None
        and job.workflow_terminal_jobs >= config.stuck_jobs_min_terminal_jobs
    ):
        p99_limit = job.workflow_p99_seconds * config.stuck_jobs_p99_factor
        if p99_limit < limit:
            factor = "" if config.stuck_jobs_p99_factor == 1 else f"{config.stuck_jobs_p99_factor:g} x "
            limit, reason = p99_limit, f"{factor}workflow p99"
    return limit, reason


def stuck_jobs(jobs: list[RunningJob], config: AlertsConfiguration) -> list[Alert]:
    """Non-terminal jobs running longer than their limit, or not updated for too long."""
    alerts = []
    idle_limit = config.stuck_jobs_max_idle_hours * HOUR
    for job in jobs:
        limit, reason = stuck_limit(job, config)
        common: dict[str, Any] = dict(view=_view("running_jobs"), workflow_id=job.workflow_id, workflow_name=job.workflow_name,
                      job_id=job.job_id, change=job.state)
        where = f"{job.job_id} in {_workflow(job.workflow_id, job.workflow_name)}"
        if job.age_seconds > limit:
            alerts.append(Alert(
                rule="stuck_jobs", subject=job.job_id, value=round(job.age_seconds), threshold=round(limit),
                message=f"stuck job {where}: {job.state} for {_hours(job.age_seconds)} > {_hours(limit)} ({reason})",
                **common,
            ))
        elif idle_limit > 0 and job.idle_seconds > idle_limit:
            alerts.append(Alert(
                rule="stuck_jobs", subject=job.job_id, value=round(job.idle_seconds), threshold=round(idle_limit),
                message=(f"stuck job {where}: {job.state}, not updated for {_hours(job.idle_seconds)} "
                         f"> {_hours(idle_limit)}"),
                **common,
            ))
    return alerts


def duration_regressions(rows: list[FlaggedRegression], today: date) -> list[Alert]:
    """Workflows the regressions view flags for today."""
    return [
        Alert(
            rule="duration_regression",
            subject=f"{row.workflow_id}/{row.day.isoformat()}",
            message=f"duration regression {_workflow(row.workflow_id, row.workflow_name)} flagged for {row.day.isoformat()}",
            view=_view("workflow_duration_regressions"),
            workflow_id=row.workflow_id,
            workflow_name=row.workflow_name,
        )
        for row in rows
        if row.day == today
    ]


def open_fetch_errors(count: int, config: AlertsConfiguration) -> list[Alert]:
    """More jobs with an open fetch error than ``open_fetch_errors_max``."""
    if count <= config.open_fetch_errors_max:
        return []
    return [Alert(
        rule="open_fetch_errors",
        subject="all",
        message=f"open fetch errors: {count} jobs could not be fetched > {config.open_fetch_errors_max}",
        view=_view("open_fetch_errors"),
        value=count,
        threshold=config.open_fetch_errors_max,
        change=str(count),
    )]


def stale_load(last_success: Optional[datetime], now: datetime, config: AlertsConfiguration) -> list[Alert]:
    """The pipeline stopped: no successful run recorded, or the newest one is older than the limit."""
    limit = config.stale_load_max_age_hours * HOUR
    common: dict[str, Any] = dict(rule="stale_load", subject="pipeline", view=f"{SCHEMA}._dlt_loads", threshold=round(limit))
    if last_success is None:
        return [Alert(message="stale load: no successful load recorded", **common)]
    age = (now - last_success).total_seconds()
    if age <= limit:
        return []
    return [Alert(
        message=(f"stale load: the last successful run was {_hours(age)} ago "
                 f"({last_success.isoformat(timespec='seconds')}) > {_hours(limit)}"),
        value=round(age),
        change=last_success.isoformat(),
        **common,
    )]


def last_success(newest_load: Optional[datetime], published_at: Optional[datetime]) -> Optional[datetime]:
    """The newer of dlt's newest load and the file's publication: a run with nothing new to load
    adds no row to ``_dlt_loads`` but still publishes, so loads alone would call it stopped."""
    known = [moment for moment in (newest_load, published_at) if moment is not None]
    return max(known) if known else None
