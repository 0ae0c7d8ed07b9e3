"""The dlt source for Telestream UP workflow jobs.

API: ``GET {base_url}/{space_id}/workflows/{workflow_id}/jobs/{workflow_job_id}`` with a
Bearer key (Telestream UP API reference, "Get workflow job"). One resource fetches every
listed job and routes each result to its table: ``workflow_jobs`` (merged on ``id``),
``fetch_errors`` and ``quarantined_records`` (appended), ``fetch_recoveries`` (appended).
The per-job incremental rule is in :mod:`pipeline.outcomes`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource

from pipeline import failpoints, observations, tables
from pipeline.arrow_rows import rows_to_table
from pipeline.error_state import BackoffPolicy, ErrorState, after_failure, after_recovery
from pipeline.fetch import fetch_concurrently
from pipeline.http import FetchResult, UpClient
from pipeline.job_ids import JobRef
from pipeline.outcomes import FETCHED_WELL, LOAD_FAILED, HeldJob, Status, classify
from pipeline.states import TERMINAL_STATES

BATCH_SIZE = 1000
MAX_FAILURES_LISTED = 10  # failed jobs named in the run summary; the rest are in open_fetch_errors


@dataclass
class FetchStats:
    """Counters the run summary reports; filled while the resource runs."""

    outcomes: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    recovered: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_FAILURES_LISTED fetch_errors rows
    seen: dict[str, tuple[datetime, datetime] | None] = field(default_factory=dict)
    """job id → (updated_at, fetched_at) of every running job fetched whole (when it was last
    confirmed); None for a finished one (forgotten: it is not polled again). Nothing more per job:
    at 100,000 jobs every tuple here is memory the run holds to its end."""


    @property
    def fetched(self) -> int:
        return sum(self.outcomes.values())


def _to_table(table: str, rows: Any) -> Any:
    """Send rows to ``table`` with that table's own disposition, key and column types.

    The resource itself carries no hints: a table variant inherits the resource's columns,
    so hints on the resource would leak ``id NOT NULL`` into ``fetch_errors``.
    """
    hints = dlt.mark.make_hints(
        table_name=table,
        write_disposition=tables.WRITE_DISPOSITION[table],
        primary_key=tables.PRIMARY_KEY.get(table, []),
        columns=tables.columns_hint(table),
    )
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _recovery_row(ref: JobRef, now: datetime) -> dict[str, Any]:
    return {
        "space_id": ref.space_id,
        "workflow_id": ref.workflow_id,
        "job_id": ref.job_id,
        "recovered_at": now,  # the same instant as the closed fetch_error_state row
    }


@dataclass(frozen=True)
class FetchPlan:
    """What to request (``refs``) and what the warehouse holds for those jobs (:mod:`pipeline.planning`)."""

    refs: Sequence[JobRef]
    held: dict[str, HeldJob]
    """job id → the held version, for the requested jobs only (not every listed one)."""
    error_states: dict[JobRef, ErrorState] = field(default_factory=dict)
    """Open errors of the listed jobs that are requested or backing off (``fetch_error_state``)."""
    refresh: bool = False
    backoff: BackoffPolicy = BackoffPolicy()
    confirmed: Mapping[str, observations.Confirmation] = field(default_factory=dict)
    """When a poll last found each running job's held version (:mod:`pipeline.observations`)."""

    @property
    def suspects(self) -> frozenset[JobRef]:
        """Jobs whose last load failed: loaded apart from the rest, so one of them cannot sink the others."""
        return frozenset(ref for ref, state in self.error_states.items() if state.error_kind == LOAD_FAILED)


def error_rows(
    ref: JobRef, error: dict[str, Any], plan: FetchPlan, now: datetime, quarantine: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The state row always; the fetch_errors (and quarantine) rows only when the error is new."""
    state, is_event = after_failure(ref, plan.error_states.get(ref), error, now, plan.backoff)
    rows = [(tables.ERROR_STATE, state)]
    if is_event:
        rows.append((tables.FETCH_ERRORS, error))
        if quarantine is not None:
            rows.append((tables.QUARANTINE, quarantine))
    return rows


@dlt.source(name="up_jobs", section="up_jobs", max_table_nesting=0)
def up_jobs_source(
    client: UpClient,
    plan: FetchPlan | Callable[[], FetchPlan],
    stats: FetchStats,
    concurrency: int = 16,
    on_progress: Callable[[int], None] | None = None,
    results: Sequence[FetchResult] | None = None,
) -> DltResource:
    """Fetch the plan's jobs and load what changed.

    ``plan`` may be a callable, evaluated when extraction starts: a source handed to an
    orchestrator is built long before it runs, and must read the warehouse then, not at build time.
    ``results``: responses already fetched (a retried load); then nothing is requested.
    """

    @dlt.resource(name="up_jobs_fetch")
    def fetch_jobs() -> Iterator[TDataItem]:
        try:
            yield from _fetch(plan() if callable(plan) else plan)
        finally:
            client.close()

    def _fetch(current: FetchPlan) -> Iterator[TDataItem]:
        held = current.held
        observed_at = datetime.now(timezone.utc)  # the run's time, on every observation it makes
        batches: dict[str, list[dict[str, Any]]] = {name: [] for name in tables.COLUMNS}
        fetched: Iterable[FetchResult] = (
            results if results is not None else fetch_concurrently(client, current.refs, concurrency)
        )
        for result in fetched:
            ref, now = result.ref, datetime.now(timezone.utc)
            outcome = classify(result, held.get(ref.job_id), current.refresh)
            stats.outcomes[outcome.status] += 1
            stats.requests += result.attempts
            stats.notes.update(outcome.notes)
            if outcome.error_row is not None and len(stats.failures) < MAX_FAILURES_LISTED:
                stats.failures.append(outcome.error_row)
            previous = current.error_states.get(ref)
            routed: list[tuple[str, dict[str, Any]]] = []
            if outcome.error_row is not None:
                routed += error_rows(ref, outcome.error_row, current, now, outcome.quarantine_row)
            elif previous is not None and outcome.status in FETCHED_WELL:
                stats.recovered += 1
                routed += [(tables.RECOVERIES, _recovery_row(ref, now)), (tables.ERROR_STATE, after_recovery(ref, previous, now))]
            if outcome.job_row is not None:
                routed.append((tables.WORKFLOW_JOBS, outcome.job_row))
            for table, row in routed:
                batches[table].append(row)
            job_id = ref.job_id
            if outcome.status == Status.LOADED and outcome.job_row is not None:  # same package as the job row
                job = outcome.job_row
                batches[tables.JOB_OBSERVATIONS].append(
                    observations.observation_row(job, held.get(job_id), observed_at, current.confirmed.get(job_id))
                )
                stats.seen[job_id] = None if job["state"] in TERMINAL_STATES else (job["updated_at"], result.fetched_at)
            elif outcome.status == Status.UNCHANGED and job_id in held:
                is_finished = held[job_id].state in TERMINAL_STATES
                stats.seen[job_id] = None if is_finished else (held[job_id].updated_at, result.fetched_at)
            if on_progress:
                on_progress(stats.fetched)
            failpoints.reached(f"fetched:{stats.fetched}")
            yield from _full_batches(batches, BATCH_SIZE)
        yield from _full_batches(batches, 1)

    return fetch_jobs


@dlt.source(name="up_jobs", section="up_jobs", max_table_nesting=0)
def table_rows_source(rows: list[tuple[str, dict[str, Any]]]) -> DltResource:
    """(table, row) pairs for our tables, in the same schema as :func:`up_jobs_source` (bookkeeping loads)."""
    by_table: dict[str, list[dict[str, Any]]] = {}
    for table, row in rows:
        by_table.setdefault(table, []).append(row)
    return dlt.resource([_to_table(table, table_rows) for table, table_rows in by_table.items()], name="up_jobs_fetch")


def _full_batches(batches: dict[str, list[dict[str, Any]]], threshold: int) -> Iterator[Any]:
    for table, rows in batches.items():
        if len(rows) >= threshold:
            batches[table] = []
            yield _to_table(table, _ARROW_BATCHES[table](rows) if table in _ARROW_BATCHES else rows)


_ARROW_BATCHES = {tables.WORKFLOW_JOBS: rows_to_table, tables.JOB_OBSERVATIONS: observations.rows_to_table}
