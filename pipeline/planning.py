"""Which jobs a run requests: the configured job list, this worker's shard of it, and the jobs
that can have changed since the destination last saw them (not terminal, not backing off).

The decision is one DuckDB query joining the job list (an Arrow table) with what the warehouse
holds. A million listed jobs, nearly all terminal, never become a million Python objects: only
the jobs to request come back. On the local DuckDB file the query runs in the working copy
itself; on Postgres its two state tables are exported by ``COPY`` to CSV files an in-memory DuckDB
scans; on another warehouse they are streamed into that in-memory DuckDB.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import dlt

from pipeline import sql_quote, tables, warehouse
from pipeline.error_state import BackoffPolicy, ErrorState
from pipeline.errors import naming_options
from pipeline.job_ids import ConfigProblem, JobList, JobRef, JobsFileError, Shard, build_job_list
from pipeline.normalize import FUTURE_SKEW
from pipeline.outcomes import HeldJob
from pipeline.settings import ConfigError, UpJobsConfiguration
from pipeline.source import FetchPlan
from pipeline.states import TERMINAL_STATES
from pipeline.views import destination_kind

__all__ = ["plan_fetch", "load_job_list", "PlannedCounts"]

_DECIDE = """
with listed as (
    select space_id::varchar as space_id, workflow_id::varchar as workflow_id, job_id, position,
        hash(job_id) as key_a, hash(job_id || '#') as key_b
    from up_jobs_listing
),
open_errors as (
    select space_id, workflow_id, job_id, error_kind, http_status, consecutive_failures,
        first_failed_at, last_failed_at, next_attempt_at
    from {error_state}
    where recovered_at is null
),
-- terminal jobs cannot change; one held with updated_at in the future is not trusted
settled as (
    select hash(id) as key_a, hash(id || '#') as key_b
    from {workflow_jobs}
    where state in ({terminal}) and updated_at <= $future_after
),
candidates as (
    select listed.*
    from listed
    left join settled on settled.key_a = listed.key_a and settled.key_b = listed.key_b
    where $refresh or settled.key_a is null
        or exists (select 1 from open_errors where open_errors.job_id = listed.job_id)
),
decided as (
    select
        candidates.space_id, candidates.workflow_id, candidates.job_id, candidates.position,
        held.updated_at, held.state,
        open_errors.error_kind, open_errors.http_status, open_errors.consecutive_failures,
        open_errors.first_failed_at, open_errors.last_failed_at, open_errors.next_attempt_at,
        case
            when $refresh then 'request'
            when open_errors.job_id is not null then
                case when $retry_errors or open_errors.next_attempt_at is null or open_errors.next_attempt_at <= $now
                    then 'request' else 'backing_off' end
            when held.id is not null and held.state in ({terminal}) and held.updated_at <= $future_after then 'skip'
            else 'request'
        end as decision
    from candidates
    left join (select id, updated_at, state from {workflow_jobs}) as held on held.id = candidates.job_id
    left join open_errors
        on open_errors.space_id = candidates.space_id
        and open_errors.workflow_id = candidates.workflow_id
        and open_errors.job_id = candidates.job_id
)
select * exclude (position) from decided where decision <> 'skip' order by position
"""
"""Settled jobs (held terminal) are matched on two 64-bit hashes of the ID: a hash table of a
million 16-byte keys instead of a million strings (~40 MB less at a million jobs, measured).
Only the few candidates left are joined on the ID itself, so a hash collision could at worst
skip a job (odds ~1e-26 at a million jobs); it can never attach another job's state."""


@dataclasses.dataclass(frozen=True)
class PlannedCounts:
    """How the listed jobs split: requested, skipped as terminal, or waiting out a backoff."""

    listed: int
    requested: int
    backing_off: int

    @property
    def skipped_terminal(self) -> int:
        return self.listed - self.requested - self.backing_off


def load_job_list(settings: UpJobsConfiguration, jobs_file_option: str | None = None, shard: Shard | None = None) -> JobList:
    """The configured jobs (this shard's share), checked and deduplicated."""
    jobs_file = jobs_file_option or settings.jobs_file
    if not settings.jobs and not jobs_file:
        raise naming_options(ConfigError, "no jobs configured: set sources.up_jobs.jobs or jobs_file, or pass {jobs_file}")
    try:
        return build_job_list(settings.jobs, jobs_file, settings.space_id, shard)
    except JobsFileError as error:
        raise ConfigError(str(error)) from None


def plan_fetch(
    pipeline: dlt.Pipeline,
    jobs: JobList,
    refresh: bool,
    retry_errors: bool = False,
    backoff: BackoffPolicy | None = None,
    problems: list[ConfigProblem] | None = None,
    lock_wait_seconds: float | None = None,
) -> tuple[FetchPlan, PlannedCounts]:
    """Read what the destination holds for the listed jobs, then decide which to request.

    ``problems`` receives an error when a state table the dataset should have is missing (then
    every listed job is requested, as on a first run, and the run says why). On Postgres, a table
    another session keeps locked is waited for ``lock_wait_seconds`` at most (then LockHeld)."""
    now = datetime.now(timezone.utc)
    parameters = {"refresh": refresh, "retry_errors": retry_errors, "now": now, "future_after": now + FUTURE_SKEW}
    with _planner(pipeline, problems if problems is not None else [], lock_wait_seconds) as (connection, names):
        connection.register("up_jobs_listing", jobs.listing)
        try:
            terminal = ", ".join(f"'{state}'" for state in sorted(TERMINAL_STATES))
            rows = connection.execute(_DECIDE.format(terminal=terminal, **names), parameters).fetchall()
        finally:
            connection.unregister("up_jobs_listing")
    refs: list[JobRef] = []
    held: dict[str, HeldJob] = {}
    errors: dict[JobRef, ErrorState] = {}
    backing_off = 0
    for space_id, workflow_id, job_id, updated_at, state, *error, decision in rows:
        ref = JobRef(space_id, workflow_id, job_id)
        if error[0] is not None:
            errors[ref] = ErrorState(*error)
        if decision == "backing_off":
            backing_off += 1
            continue
        refs.append(ref)
        if updated_at is not None:
            held[job_id] = HeldJob(updated_at, state)
    plan = FetchPlan(refs, held, errors, refresh, backoff or BackoffPolicy())
    return plan, PlannedCounts(len(jobs), len(refs), backing_off)


STATE_TABLES = {"workflow_jobs": tables.WORKFLOW_JOBS, "error_state": tables.ERROR_STATE}
"""The pipeline's own tables the decision reads (never a reporting view)."""

STATE_COLUMNS = {
    "workflow_jobs": {"id": "varchar", "updated_at": "timestamptz", "state": "varchar"},
    "error_state": {
        "space_id": "varchar", "workflow_id": "varchar", "job_id": "varchar", "error_kind": "varchar",
        "http_status": "bigint", "consecutive_failures": "bigint", "first_failed_at": "timestamptz",
        "last_failed_at": "timestamptz", "next_attempt_at": "timestamptz", "recovered_at": "timestamptz",
    },
}
"""The columns the decision reads from each, with their DuckDB types (for an empty stand-in)."""
_ONLY_OPEN = {"error_state": " where recovered_at is null"}


def _empty(key: str) -> str:
    """A relation with ``key``'s columns and no rows: the table before the first load made it."""
    return "select " + ", ".join(f"null::{kind} as {name}" for name, kind in STATE_COLUMNS[key].items()) + " where false"


@contextmanager
def _planner(
    pipeline: dlt.Pipeline, problems: list[ConfigProblem], lock_wait_seconds: float | None = None
) -> Iterator[tuple[Any, dict[str, str]]]:
    """A DuckDB connection where ``names`` point at the state tables (or at empty stand-ins)."""
    with pipeline.sql_client() as client:
        present = _present_tables(client, pipeline.dataset_name)
        _check_missing(client, pipeline.dataset_name, present, problems)
        if destination_kind(pipeline) == "duckdb":
            names = {
                key: f"{pipeline.dataset_name}.{table}" if table in present else f"({_empty(key)})"
                for key, table in STATE_TABLES.items()
            }
            yield client.native_connection, names
            return
        import duckdb

        with _plan_folder(pipeline) as folder, duckdb.connect(
            config={"memory_limit": PLANNER_MEMORY_LIMIT, "threads": 1, "temp_directory": folder}
        ) as local:
            names = {}
            for key, table in STATE_TABLES.items():
                if table not in present:
                    names[key] = f"({_empty(key)})"
                elif destination_kind(pipeline) == "postgres":
                    with warehouse.table_lock_wait(client, client.make_qualified_table_name(table), lock_wait_seconds):
                        names[key] = _exported(client, key, table, Path(folder) / f"{key}.csv")
                else:
                    names[key] = _copied(client, local, key, table)
            yield local, names


PLAN_FOLDER_PREFIX = "up-jobs-plan-"
PLANNER_MEMORY_LIMIT = "64MB"
"""The in-memory planner's cap, as the DuckDB working copy's: what does not fit spills to the
temporary folder (on Postgres the run completed at 3,000,000 jobs, 417 MB peak; the decision
query alone, on a DuckDB file, at 10,000,000). Lower is a trap, not a saving: at 32 MB the
query fails outright at 1,000,000-3,000,000 jobs ("could not allocate block"), every run."""


CSV_BUFFER_BYTES = 1 << 20
"""DuckDB's CSV reader takes 32 MB buffers by default: two of them alone filled the planner's
memory limit. A state row is under 1 KB (IDs, a state, timestamps)."""


MAX_STATE_CHARS = 256
"""``state`` as the planner reads it from Postgres (see :func:`_exported_column`)."""


def _plan_folder(pipeline: dlt.Pipeline) -> tempfile.TemporaryDirectory[str]:
    """The exported files' and DuckDB's spill folder, in the pipeline's own local folder: on disk
    and ours, where ``$TMPDIR`` may be memory (tmpfs) or read-only. About 80 bytes per held job;
    one a killed run left behind is removed by the next (runs of a pipeline hold its lock)."""
    root = Path(pipeline.working_dir)
    for leftover in root.glob(PLAN_FOLDER_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=PLAN_FOLDER_PREFIX, dir=root)


def _state_query(client: Any, key: str, table: str, columns: str | None = None) -> str:
    return f"select {columns or ', '.join(STATE_COLUMNS[key])} from {client.make_qualified_table_name(table)}{_ONLY_OPEN.get(key, '')}"


def _exported(client: Any, key: str, table: str, path: Path) -> str:
    """Postgres: the state table written by ``COPY`` to a CSV file the decision scans where it
    lies, instead of rows streamed through psycopg2 into an in-memory table. At a million jobs
    (``python -m bench scale --postgres ...``): read state 2.9 -> 1.7 s, the run's peak RSS
    513 -> 287 MB. Timestamps go as UTC text with their offset, exact to the microsecond
    whatever the session's time zone or date style."""
    columns = [_exported_column(name, kind) for name, kind in STATE_COLUMNS[key].items()]
    with open(path, "w", encoding="utf-8") as handle:
        client.native_connection.cursor().copy_expert(
            f"copy ({_state_query(client, key, table, ', '.join(columns))}) to stdout with (format csv)", handle
        )
    types = ", ".join(f"{sql_quote.literal(name)}: {sql_quote.literal(kind)}" for name, kind in STATE_COLUMNS[key].items())
    return (f"(select * from read_csv({sql_quote.literal(str(path))}, header = false, columns = {{{types}}}, "
            "quote = '\"', escape = '\"', allow_quoted_nulls = false, auto_detect = false, "
            f"max_line_size = {CSV_BUFFER_BYTES}, buffer_size = {CSV_BUFFER_BYTES}))")


def _exported_column(name: str, kind: str) -> str:
    """One column as Postgres writes it for the planner.

    Timestamps: UTC text with the offset; ``infinity`` as itself (``to_char`` makes it NULL, and
    a NULL ``next_attempt_at`` means "request now": a job parked by hand would be retried).
    ``state`` comes from the API and is cut to 256 characters: no state is near that long, and
    one line longer than the reader's buffer would fail every run's planning."""
    if kind == "timestamptz":
        return (f"case when isfinite({name}) then to_char({name} at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' "
                f"else {name}::text end")
    return f"left({name}, {MAX_STATE_CHARS})" if name == "state" else name


def _copied(client: Any, local: Any, key: str, table: str) -> str:
    """Another warehouse: the state table streamed into the local planner, in Arrow chunks."""
    local.execute(f"create table {key} as {_empty(key)}")
    with client.execute_query(_state_query(client, key, table)) as cursor:
        for chunk in cursor.iter_arrow(chunk_size=100_000):
            local.register("up_jobs_chunk", chunk)
            local.execute(f"insert into {key} select * from up_jobs_chunk")
            local.unregister("up_jobs_chunk")
    return key


def _present_tables(client: Any, dataset: str) -> set[str]:
    rows = client.execute_sql("select table_name from information_schema.tables where table_schema = %s", dataset) or []
    return {row[0] for row in rows}


def _check_missing(client: Any, dataset: str, present: set[str], problems: list[ConfigProblem]) -> None:
    """``workflow_jobs`` is created by the first completed run; missing after loads completed, it
    was dropped, and every job is requested again: an error to report, not a silent refetch.
    (``fetch_error_state`` may be missing in a dataset an older version wrote: the run creates it.)"""
    if tables.WORKFLOW_JOBS in present or "_dlt_loads" not in present:
        return
    loads = (client.execute_sql(f"select count(*) from {client.make_qualified_table_name('_dlt_loads')} where status = 0") or [[0]])[0][0]
    if loads:
        problems.append(ConfigProblem(
            f"{dataset}.{tables.WORKFLOW_JOBS}",
            f"table is missing although {loads} load(s) completed: every listed job is requested this run",
        ))
