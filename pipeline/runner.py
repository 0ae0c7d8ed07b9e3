"""One pipeline run: config → job IDs → fetch → normalise → load → views → publish.

The library raises typed errors and returns a :class:`RunSummary`; :mod:`pipeline.cli`
turns both into output and exit codes.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import dlt
from dlt.common.destination import Destination, TDestinationReferenceArg
from dlt.extract.source import DltSource

from pipeline import failpoints, observations, set_aside, tables, warehouse
from pipeline.error_state import BackoffPolicy
from pipeline.errors import innermost, one_line_cause
from pipeline.fetch import fetch_concurrently
from pipeline.http import FetchResult, RetryPolicy, UpClient
from pipeline.job_ids import ConfigProblem, JobList, JobRef, Shard
from pipeline.names import DATASET_NAME, PIPELINE_NAME
from pipeline.outcomes import Status, load_failed_row
from pipeline.planning import load_job_list, plan_fetch
from pipeline.run_record import prune_loaded_packages, with_run_record
from pipeline.settings import (
    ConfigError,
    UpJobsConfiguration,
    require_api_key,
    validate_base_url,
)
from pipeline.source import FetchPlan, FetchStats, error_rows, table_rows_source, up_jobs_source
from pipeline.views import AppliedViews, apply_views
from pipeline.workspace import DUCKDB_MEMORY_LIMIT, Workspace

ProgressCallback = Callable[[int, int], None]


@dataclass
class RunOptions:
    db_path: Path
    jobs_file: str | None = None
    refresh: bool = False
    retry_errors: bool = False
    """Request jobs whose permanent errors are backing off now, rather than when their backoff ends."""
    backoff: BackoffPolicy = BackoffPolicy()
    concurrency: int | None = None
    lock_timeout_seconds: float | None = None
    loader_file_format: str | None = None
    """None: parquet for the local DuckDB file (measured fastest), the destination's preferred format elsewhere."""
    destination: str | None = None
    """A dlt destination name (postgres, snowflake, ...); None or duckdb: the local --db file."""
    shard: Shard | None = None
    state_root: Path | None = None
    """Where warehouse runs keep local state (.up_jobs/ under it); default: the current folder."""


@dataclass
class RunSummary:
    listed: int = 0
    skipped_terminal: int = 0
    backing_off: int = 0
    stats: FetchStats = field(default_factory=FetchStats)
    config_problems: list[ConfigProblem] = field(default_factory=list)
    config_problems_not_kept: int = 0
    """Job-list problems counted but not kept with their text (past job_ids.MAX_PROBLEMS_KEPT)."""
    config_errors_not_kept: int = 0
    views_applied: AppliedViews = field(default_factory=AppliedViews)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    destination: str | None = None
    load_id: str | None = None
    set_aside: list[set_aside.SetAside] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Jobs that ended as ``status``; an unknown status raises instead of counting zero."""
        return self.stats.outcomes[Status(status)]

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED) + self.count(Status.QUARANTINED) + self.count(Status.LOAD_FAILED)

    @property
    def has_problems(self) -> bool:
        config_errors = self.config_errors_not_kept > 0 or any(problem.is_error for problem in self.config_problems)
        return self.failed > 0 or bool(self.set_aside) or config_errors


def make_client(settings: UpJobsConfiguration, concurrency: int, stop: threading.Event) -> UpClient:
    policy = RetryPolicy(**{name: getattr(settings, name) for name in RetryPolicy.__dataclass_fields__})
    return UpClient(
        validate_base_url(settings.base_url),
        require_api_key(settings.api_key),
        policy,
        pool_size=concurrency,
        max_body_bytes=settings.max_body_bytes,
        stop=stop,
    )


def is_local_duckdb(destination: str | None) -> bool:
    return destination in (None, "", "duckdb")


def pipeline_name(shard: Shard | None) -> str:
    """Each shard is its own dlt pipeline, so each keeps its own state."""
    return PIPELINE_NAME if shard is None else f"{PIPELINE_NAME}_{shard.suffix}"


def make_workspace(options: RunOptions) -> Workspace:
    if is_local_duckdb(options.destination):
        if options.shard is not None:
            raise ConfigError("--shard needs a shared warehouse (--destination); a DuckDB file has one writer at a time")
        return Workspace.for_duckdb(options.db_path)
    return Workspace.for_warehouse(options.state_root or Path.cwd(), pipeline_name(options.shard))


def keep_dlt_columns_on_arrow_rows() -> None:
    """Rows arrive as Arrow tables; keep dlt's load id and row id on them as on JSON rows, so
    every table says which run wrote each row."""
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    dlt.config["normalize.parquet_normalizer.add_dlt_id"] = True


def working_copy_destination(work_db: Path) -> TDestinationReferenceArg:
    """The local DuckDB working copy, its buffer pool capped (passed here, not through dlt.config,
    where a ``destination`` key would shadow ``sources.up_jobs.destination`` for later runs)."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(work_db), global_config={"memory_limit": DUCKDB_MEMORY_LIMIT})
    return dlt.destinations.duckdb(credentials=credentials)


def warehouse_destination(destination: str, shard: Shard | None) -> TDestinationReferenceArg:
    """Each shard merges through its own staging dataset: dlt empties the staging table at the
    start of every merge load, so shards sharing one delete each other's rows mid-merge (seen
    here: 56 of 150 jobs kept, every shard reporting success)."""
    if shard is None:
        return destination
    return Destination.from_reference(destination, staging_dataset_name_layout=f"%s_staging_{shard.suffix}")


def make_pipeline(workspace: Workspace | None, destination: str | None = None, shard: Shard | None = None) -> dlt.Pipeline:
    """The dlt pipeline: the private DuckDB working copy, or the configured warehouse.

    ``workspace`` None: dlt's default pipelines folder (an orchestrator's helper manages it).
    """
    keep_dlt_columns_on_arrow_rows()
    if not is_local_duckdb(destination):
        target = warehouse_destination(str(destination), shard)
    elif workspace is None:
        raise ConfigError("the local DuckDB file is written through a workspace; name a warehouse destination")
    else:
        target = working_copy_destination(workspace.work_db)
    return dlt.pipeline(
        pipeline_name=pipeline_name(shard),
        destination=target,
        dataset_name=DATASET_NAME,
        pipelines_dir=str(workspace.pipelines_dir) if workspace else None,  # type: ignore[arg-type]  # dlt: None = default
    )







def _extract(
    pipeline: dlt.Pipeline, source: DltSource, client: UpClient, loader_file_format: str | None, timings: dict[str, float]
) -> str | None:
    """Fetch and extract (the slow, parallel part); returns the new load id."""
    started = time.monotonic()
    try:
        extract_info = pipeline.extract(source, loader_file_format=loader_file_format)  # type: ignore[arg-type]
    finally:
        client.close()
    timings["fetch+extract"] = time.monotonic() - started
    failpoints.reached("extracted")
    return extract_info.loads_ids[-1] if extract_info.loads_ids else None


def _normalize_load(pipeline: dlt.Pipeline, timings: dict[str, float]) -> None:
    """dlt's normalize and load, spelled out so a crash test can stop between them; each timed."""
    started = time.monotonic()
    pipeline.normalize()
    timings["normalize"] = time.monotonic() - started
    failpoints.reached("normalized")
    failpoints.reached("load")
    started = time.monotonic()
    pipeline.load()
    timings["load"] = time.monotonic() - started
    failpoints.reached("loaded")


def run(
    settings: UpJobsConfiguration,
    options: RunOptions,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> RunSummary:
    """Run once; raises ConfigError, AuthRejected, LockHeld, or dlt's errors on failure."""
    started = time.monotonic()
    job_list = load_job_list(settings, options.jobs_file, options.shard)
    concurrency = max(1, options.concurrency or settings.max_concurrency)
    client = make_client(settings, concurrency, stop or threading.Event())
    backoff = BackoffPolicy(settings.dead_job_after_failures, settings.dead_job_backoff_hours, settings.dead_job_max_backoff_hours)
    options = dataclasses.replace(options, destination=options.destination or settings.destination, backoff=backoff)
    summary = RunSummary(listed=len(job_list), config_problems=job_list.problems)
    summary.config_problems_not_kept = job_list.problem_count - len(job_list.problems)
    summary.config_errors_not_kept = job_list.error_count - sum(problem.is_error for problem in job_list.problems)
    summary.destination = None if is_local_duckdb(options.destination) else options.destination
    if summary.destination:
        warehouse.check_destination_name(summary.destination)
    workspace = make_workspace(options)  # refuses --shard with a DuckDB file before anything else
    workspace.check_storage_version(settings.duckdb_storage_version)
    if options.shard is not None and options.destination not in warehouse.LOAD_LOCKING_DESTINATIONS:
        message = (f"shards' load steps are serialised only on {', '.join(warehouse.LOAD_LOCKING_DESTINATIONS)}; "
                   f"on {options.destination} let the orchestrator run one shard's load at a time")
        summary.config_problems.append(ConfigProblem("--shard", message, is_error=False))
    lock_timeout = settings.lock_timeout_seconds if options.lock_timeout_seconds is None else options.lock_timeout_seconds
    options = dataclasses.replace(options, lock_timeout_seconds=lock_timeout)  # the warehouse lock honours it too
    with workspace.lock(lock_timeout):
        workspace.prepare()
        pipeline = make_pipeline(workspace, options.destination, options.shard)
        if summary.destination:
            warehouse.check_connection(pipeline)  # a refused login is a configuration error (exit 2)
        _fetch_and_load(pipeline, workspace, client, job_list, options, concurrency, summary, on_progress)
        started_publish = time.monotonic()
        workspace.publish(settings.duckdb_storage_version, tables.PRIMARY_KEY)
        summary.timings["publish"] = time.monotonic() - started_publish
        failpoints.reached("published")
    summary.seconds = time.monotonic() - started
    return summary


def _fetch_and_load(
    pipeline: dlt.Pipeline,
    workspace: Workspace,
    client: UpClient,
    jobs: JobList,
    options: RunOptions,
    concurrency: int,
    summary: RunSummary,
    on_progress: ProgressCallback | None,
) -> None:
    """Finish leftovers, decide what to fetch, fetch, load, then tables and views.

    Jobs whose last load failed ("suspects") are fetched and loaded apart from the rest, split
    in halves while a load fails, so one bad record is isolated and never sinks the others.
    """
    started = time.monotonic()
    loader = _Loader(pipeline, workspace, summary, options)
    if pipeline.has_pending_data:  # a previous run died after extracting: finish its work first
        with warehouse.load_lock(pipeline, options.lock_timeout_seconds, summary.timings):
            loader.load_or_set_aside(refs=())
    plan, counts = plan_fetch(pipeline, jobs, options.refresh, options.retry_errors, options.backoff, summary.config_problems)
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
    source = with_run_record(up_jobs_source(client, main, summary.stats, concurrency, progress), len(plan.refs))
    summary.load_id = _extract(pipeline, source, client, loader.file_format, summary.timings)
    with warehouse.load_lock(pipeline, options.lock_timeout_seconds, summary.timings):
        if not loader.load_or_set_aside(refs=main.refs, timings=summary.timings):
            summary.stats.outcomes[Status.LOAD_FAILED] += summary.stats.outcomes.pop(Status.LOADED, 0)
        if suspects:
            loader.load_suspects(list(fetch_concurrently(client, suspects, concurrency)), plan, client, concurrency)
        loader.record_load_failures(plan)
        prune_loaded_packages(pipeline)
        observations.save_confirmations(workspace.state_dir, confirmed, summary.stats.seen)
        started_views = time.monotonic()
        warehouse.ensure_tables(pipeline)
        summary.views_applied = apply_views(pipeline)  # every shard: only missing or changed views
        summary.timings["views"] = time.monotonic() - started_views


class _Loader:
    """Normalise and load pending packages; set aside a package that cannot be loaded."""

    def __init__(self, pipeline: dlt.Pipeline, workspace: Workspace, summary: RunSummary, options: RunOptions) -> None:
        self.pipeline, self.workspace, self.summary = pipeline, workspace, summary
        self.file_format = options.loader_file_format or ("parquet" if is_local_duckdb(options.destination) else None)
        self.failed: dict[JobRef, str] = {}

    def load_or_set_aside(self, refs: Sequence[JobRef], timings: dict[str, float] | None = None) -> bool:
        """True when the pending packages loaded; False when they were set aside (refs recorded)."""
        try:
            _normalize_load(self.pipeline, {} if timings is None else timings)
            return True
        except Exception as error:  # noqa: BLE001 - decided below: set aside, or re-raised
            if innermost(error, KeyboardInterrupt) is not None or not self._should_set_aside(error):
                raise
            cause = one_line_cause(error)
        kept = set_aside.set_aside_pending(self.pipeline, self.workspace.state_dir, cause)
        self.summary.set_aside.extend(kept)
        for ref in [*refs, *(ref for package in kept for ref in package.refs)]:
            self.failed[ref] = f"{cause} (package set aside in {self.workspace.state_dir / 'set_aside'})"
        return False

    def _should_set_aside(self, error: Exception) -> bool:
        """Always for normalisation (data); for a load, when dlt says retrying cannot help, or after
        the same package failed MAX_TRANSIENT_ATTEMPTS runs in a row."""
        if getattr(error, "step", None) == "normalize" or set_aside.is_terminal(error):
            return True
        attempts = set_aside.count_attempt(self.workspace.state_dir, set_aside.pending_load_ids(self.pipeline))
        return attempts >= set_aside.MAX_TRANSIENT_ATTEMPTS

    def load_suspects(self, results: list[FetchResult], plan: FetchPlan, client: UpClient, concurrency: int) -> None:
        """Load the suspects' responses, halving every group that fails down to single jobs."""
        groups = [results]
        while groups:
            group = groups.pop()
            stats = FetchStats()
            self.pipeline.extract(
                up_jobs_source(client, plan, stats, concurrency, results=group),
                loader_file_format=self.file_format,  # type: ignore[arg-type]
            )
            if self.load_or_set_aside(refs=[result.ref for result in group]):
                self.summary.stats.outcomes.update(stats.outcomes)
                self.summary.stats.notes.update(stats.notes)
                self.summary.stats.requests += stats.requests
                self.summary.stats.recovered += stats.recovered
                for result in group:
                    self.failed.pop(result.ref, None)
            elif len(group) > 1:
                groups += [group[: len(group) // 2], group[len(group) // 2 :]]
            else:
                self.summary.stats.outcomes[Status.LOAD_FAILED] += 1

    def record_load_failures(self, plan: FetchPlan) -> None:
        """One bookkeeping load of ``load_failed`` errors, so the jobs show in open_fetch_errors."""
        if not self.failed:
            return
        now = datetime.now(timezone.utc)
        rows = [row for ref, message in sorted(self.failed.items()) for row in error_rows(ref, load_failed_row(ref, message), plan, now)]
        self.pipeline.extract(table_rows_source(rows))
        _normalize_load(self.pipeline, {})
        self.failed.clear()
