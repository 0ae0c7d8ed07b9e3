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
from typing import Any, Callable, Iterable, Iterator, Sequence

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource

from pipeline import failpoints, tables
from pipeline.arrow_rows import rows_to_table
from pipeline.fetch import fetch_concurrently
from pipeline.http import FetchResult, UpClient
from pipeline.job_ids import JobRef
from pipeline.outcomes import HeldJob, classify

BATCH_SIZE = 1000


@dataclass
class FetchStats:
    """Counters the run summary reports; filled while the resource runs."""

    outcomes: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    recovered: int = 0

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
        primary_key="id" if table == tables.WORKFLOW_JOBS else [],
        columns=tables.columns_hint(table),
    )
    return dlt.mark.with_hints(rows, hints, create_table_variant=True)


def _recovery_row(ref: JobRef) -> dict[str, Any]:
    return {
        "space_id": ref.space_id,
        "workflow_id": ref.workflow_id,
        "job_id": ref.job_id,
        "recovered_at": datetime.now(timezone.utc),
    }


@dataclass(frozen=True)
class FetchPlan:
    """What to request (``refs``) and what the warehouse already holds, per job id and in error."""

    refs: Sequence[JobRef]
    held: dict[str, HeldJob]
    open_errors: frozenset[JobRef]
    refresh: bool = False
    suspects: frozenset[JobRef] = frozenset()
    """Jobs whose last load failed: loaded apart from the rest, so one of them cannot sink the others."""


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
        held, open_errors = current.held, current.open_errors
        batches: dict[str, list[dict[str, Any]]] = {name: [] for name in tables.COLUMNS}
        fetched: Iterable[FetchResult] = (
            results if results is not None else fetch_concurrently(client, current.refs, concurrency)
        )
        for result in fetched:
            outcome = classify(result, held.get(result.ref.job_id), current.refresh)
            stats.outcomes[outcome.status] += 1
            stats.requests += result.attempts
            stats.notes.update(outcome.notes)
            if outcome.status in ("loaded", "unchanged", "stale") and result.ref in open_errors:
                stats.recovered += 1
                batches[tables.RECOVERIES].append(_recovery_row(result.ref))
            for table, row in (
                (tables.WORKFLOW_JOBS, outcome.job_row),
                (tables.FETCH_ERRORS, outcome.error_row),
                (tables.QUARANTINE, outcome.quarantine_row),
            ):
                if row is not None:
                    batches[table].append(row)
            if on_progress:
                on_progress(stats.fetched)
            failpoints.reached(f"fetched:{stats.fetched}")
            yield from _full_batches(batches, BATCH_SIZE)
        yield from _full_batches(batches, 1)

    return fetch_jobs


@dlt.source(name="up_jobs", section="up_jobs", max_table_nesting=0)
def table_rows_source(table: str, rows: list[dict[str, Any]]) -> DltResource:
    """Rows for one of our tables, in the same schema as :func:`up_jobs_source` (bookkeeping loads)."""
    return dlt.resource([_to_table(table, rows)], name="up_jobs_fetch")


def _full_batches(batches: dict[str, list[dict[str, Any]]], threshold: int) -> Iterator[Any]:
    for table, rows in batches.items():
        if len(rows) >= threshold:
            batches[table] = []
            yield _to_table(table, rows_to_table(rows) if table == tables.WORKFLOW_JOBS else rows)
