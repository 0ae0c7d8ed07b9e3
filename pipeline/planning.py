"""Which jobs a run requests: the configured job list, this worker's shard of it, and the jobs
that can have changed since the destination last saw them (not terminal, not backing off)."""

from __future__ import annotations

from datetime import datetime, timezone

import dlt

from pipeline import warehouse
from pipeline.error_state import BackoffPolicy, ErrorState
from pipeline.job_ids import JobList, JobRef, JobsFileError, Shard, build_job_list
from pipeline.normalize import TERMINAL_STATES
from pipeline.outcomes import HeldJob
from pipeline.settings import ConfigError, UpJobsConfiguration
from pipeline.source import FetchPlan

__all__ = ["jobs_to_fetch", "parse_shard", "shard_jobs", "plan_fetch", "load_job_list"]


def jobs_to_fetch(
    jobs: list[JobRef],
    held: dict[str, HeldJob],
    errors: dict[JobRef, ErrorState],
    refresh: bool,
    retry_errors: bool = False,
) -> list[JobRef]:
    """Skip jobs already loaded in a terminal state: they cannot change, and jobs that keep failing
    permanently while their backoff lasts. Other errors are retried, and so are jobs held with an
    ``updated_at`` in the future (a server clock bug must not pin them)."""
    if refresh:
        return list(jobs)
    now = datetime.now(timezone.utc)
    wanted = []
    for ref in jobs:
        state = errors.get(ref)
        if state is not None:
            if retry_errors or state.is_due(now):
                wanted.append(ref)
        elif ref.job_id not in held or held[ref.job_id].state not in TERMINAL_STATES or held[ref.job_id].is_in_future():
            wanted.append(ref)
    return wanted


def parse_shard(text: str | None) -> Shard | None:
    """``"i/n"`` as given on the command line or to the orchestration helpers; None for one worker."""
    try:
        return Shard.parse(text) if text else None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def shard_jobs(jobs: list[JobRef], shard: Shard | None) -> list[JobRef]:
    return [ref for ref in jobs if shard is None or shard.owns(ref)]


def plan_fetch(
    pipeline: dlt.Pipeline,
    jobs: list[JobRef],
    refresh: bool,
    retry_errors: bool = False,
    backoff: BackoffPolicy | None = None,
) -> FetchPlan:
    """Read what the destination holds, then decide which jobs to request."""
    backoff = backoff or BackoffPolicy()
    held = warehouse.held_jobs(pipeline)
    errors = warehouse.error_states(pipeline)
    return FetchPlan(jobs_to_fetch(jobs, held, errors, refresh, retry_errors), held, errors, refresh, backoff)


def load_job_list(settings: UpJobsConfiguration, jobs_file_option: str | None = None) -> JobList:
    jobs_file = jobs_file_option or settings.jobs_file
    if not settings.jobs and not jobs_file:
        raise ConfigError("no jobs configured: set sources.up_jobs.jobs or jobs_file, or pass --jobs-file")
    try:
        return build_job_list(settings.jobs, jobs_file, settings.space_id)
    except JobsFileError as error:
        raise ConfigError(str(error)) from None
