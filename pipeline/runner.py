"""One pipeline run: config → job IDs → fetch → normalise → load → views → publish.

The library raises typed errors and returns a :class:`RunSummary`; :mod:`pipeline.cli`
turns both into output and exit codes. What the run is made of lives elsewhere: its settings
in :mod:`pipeline.run_options`, its parts in :mod:`pipeline.factories`, the set-aside loader in
:mod:`pipeline.loader`, which jobs to request in :mod:`pipeline.planning`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

import dlt
from dlt.extract.source import DltSource

from pipeline import failpoints, observations, tables, warehouse
from pipeline.factories import build_source, dlt_columns_on_arrow_rows, make_client, make_pipeline, make_workspace
from pipeline.fetch import fetch_concurrently
from pipeline.http import UpClient
from pipeline.job_ids import ConfigProblem, JobList
from pipeline.loader import Loader
from pipeline.outcomes import Status
from pipeline.planning import load_job_list, plan_fetch
from pipeline.run_options import RunOptions, RunSettings, resolve_run
from pipeline.run_record import prune_loaded_packages, with_run_record
from pipeline.settings import UpJobsConfiguration
from pipeline.summary import RunSummary
from pipeline.views import apply_views
from pipeline.workspace import Workspace

__all__ = ["run", "execute", "RunOptions", "RunSettings", "RunSummary", "make_pipeline", "make_workspace"]

ProgressCallback = Callable[[int, int], None]


def _extract(
    pipeline: dlt.Pipeline, source: DltSource, client: UpClient, loader_file_format: str | None, timings: dict[str, float]
) -> str | None:
    """Fetch and extract (the slow, parallel part); returns the new load id."""
    started = time.monotonic()
    try:
        extract_info = pipeline.extract(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]  # dlt: a Literal of format names
    finally:
        client.close()
    timings["fetch+extract"] = time.monotonic() - started
    failpoints.reached("extracted")
    return extract_info.loads_ids[-1] if extract_info.loads_ids else None


def run(
    settings: UpJobsConfiguration,
    options: RunOptions,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run once as ``options`` ask over the configured ``settings``; see :func:`execute`."""
    return execute(resolve_run(settings, options), stop, on_progress)


def execute(
    settings: RunSettings,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run once; raises ConfigError, AuthRejected, LockHeld, or dlt's errors on failure."""
    started = time.monotonic()
    job_list = load_job_list(settings.config, settings.jobs_file, settings.shard)
    client = make_client(settings, stop)
    summary = RunSummary(listed=len(job_list), config_problems=job_list.problems)
    summary.config_problems_not_kept = job_list.problem_count - len(job_list.problems)
    summary.config_errors_not_kept = job_list.error_count - sum(problem.is_error for problem in job_list.problems)
    summary.destination = settings.warehouse
    if summary.destination:
        warehouse.check_destination_name(summary.destination)
    workspace = make_workspace(settings)  # refuses a shard with a DuckDB file before anything else
    workspace.check_storage_version(settings.storage_version)
    if settings.shard is not None and settings.destination not in warehouse.LOAD_LOCKING_DESTINATIONS:
        message = (f"shards' load steps are serialised only on {', '.join(warehouse.LOAD_LOCKING_DESTINATIONS)}; "
                   f"on {settings.destination} let the orchestrator run one shard's load at a time")
        summary.config_problems.append(ConfigProblem("shard", message, is_error=False))
    with workspace.lock(settings.lock_timeout_seconds), dlt_columns_on_arrow_rows():
        for repair in workspace.prepare():  # what it set aside so that this run could proceed
            summary.config_problems.append(ConfigProblem(str(workspace.state_dir), repair, is_error=False))
        pipeline = make_pipeline(workspace, settings.destination, settings.shard)
        if summary.destination:
            warehouse.check_connection(pipeline)  # a refused login is a configuration error (exit 2)
        _fetch_and_load(pipeline, workspace, client, job_list, settings, summary, on_progress)
        started_publish = time.monotonic()
        workspace.publish(settings.storage_version, tables.PRIMARY_KEY)
        summary.timings["publish"] = time.monotonic() - started_publish
        failpoints.reached("published")
    summary.seconds = time.monotonic() - started
    return summary


def _fetch_and_load(
    pipeline: dlt.Pipeline,
    workspace: Workspace,
    client: UpClient,
    jobs: JobList,
    settings: RunSettings,
    summary: RunSummary,
    on_progress: ProgressCallback | None,
) -> None:
    """Finish leftovers, decide what to fetch, fetch, load, then tables and views.

    Jobs whose last load failed ("suspects") are fetched and loaded apart from the rest, split
    in halves while a load fails, so one bad record is isolated and never sinks the others.
    """
    started = time.monotonic()
    loader = Loader(pipeline, workspace, summary, settings)
    if summary.destination and warehouse.check_columns(pipeline):  # a column retyped by hand: one line naming the fix
        with warehouse.load_lock(pipeline, settings.lock_timeout_seconds, summary.timings):
            warehouse.ensure_tables(pipeline)  # planning reads workflow_jobs: a table or column lost fails it
    if loader.has_pending_data():  # a previous run died after extracting: finish its work first
        with warehouse.load_lock(pipeline, settings.lock_timeout_seconds, summary.timings):
            loader.load_or_set_aside(refs=())
    plan, counts = plan_fetch(pipeline, jobs, settings.refresh, settings.retry_errors, settings.backoff, summary.config_problems,
                              settings.lock_timeout_seconds)
    jobs.release_listing()
    confirmed = observations.load_confirmations(workspace.state_dir)
    plan = dataclasses.replace(plan, confirmed=confirmed)
    summary.timings["read state"] = time.monotonic() - started
    summary.backing_off, summary.skipped_terminal = counts.backing_off, counts.skipped_terminal
    suspect_set = plan.suspects  # a property: computed once here, not once per job
    main = dataclasses.replace(plan, refs=[ref for ref in plan.refs if ref not in suspect_set])
    suspects = [ref for ref in plan.refs if ref in suspect_set]
    progress = (lambda done: on_progress(done, len(main.refs))) if on_progress else None
    if progress:
        progress(0)  # announces the number of jobs to fetch
    source = with_run_record(build_source(settings, main, summary.stats, client, progress), len(plan.refs))
    summary.load_id = _extract(pipeline, source, client, loader.file_format, summary.timings)
    with warehouse.load_lock(pipeline, settings.lock_timeout_seconds, summary.timings):
        if not loader.load_or_set_aside(refs=main.refs, timings=summary.timings):
            summary.stats.outcomes[Status.LOAD_FAILED] += summary.stats.outcomes.pop(Status.LOADED, 0)
        if suspects:
            loader.load_suspects(list(fetch_concurrently(client, suspects, settings.concurrency)), plan, client)
        loader.record_load_failures(plan)
        prune_loaded_packages(pipeline)
        observations.save_confirmations(workspace.state_dir, confirmed, summary.stats.seen)
        started_views = time.monotonic()  # the tables the views read: ensured before each load (normalize_load)
        summary.views_applied = apply_views(pipeline)  # every shard: only missing or changed views
        summary.timings["views"] = time.monotonic() - started_views
