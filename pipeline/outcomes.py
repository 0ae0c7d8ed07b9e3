"""Decide what one fetched job becomes: a row to load, nothing (unchanged), an error, or quarantine.

Pure: takes a :class:`FetchResult` and what the warehouse already holds for that job. This is
where the per-job incremental rule lives: a record loads only when its ``updated_at`` is newer
than the held one, so an older record never overwrites a newer one and jobs that finish out
of order are never filtered out by some other job's cursor (dlt issue #2479).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any

from pipeline.http import FetchResult
from pipeline.job_ids import JobRef
from pipeline.normalize import FUTURE_SKEW, BadRecord, NormalizedJob, normalize_job

MAX_QUARANTINE_PAYLOAD = 8192


@dataclass(frozen=True)
class HeldJob:
    """What the warehouse holds for a job id."""

    updated_at: datetime
    state: str | None

    def is_in_future(self) -> bool:
        """Held with an updated_at ahead of our clock: not to be trusted as 'newest'."""
        return self.updated_at > datetime.now(timezone.utc) + FUTURE_SKEW


class Status(StrEnum):
    """What one fetch became; counted per run. A StrEnum, so a misspelt status fails loudly."""

    LOADED = "loaded"
    UNCHANGED = "unchanged"
    STALE = "stale"  # older than what is held: not loaded
    FAILED = "failed"
    QUARANTINED = "quarantined"
    LOAD_FAILED = "load_failed"  # fetched, but the package holding it could not be loaded


FETCHED_WELL = frozenset({Status.LOADED, Status.UNCHANGED, Status.STALE})


@dataclass
class Outcome:
    """Rows for each table produced by one fetch, and how to count it in the summary."""

    status: Status
    job_row: dict[str, Any] | None = None
    error_row: dict[str, Any] | None = None
    quarantine_row: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def classify(result: FetchResult, held: HeldJob | None, refresh: bool = False) -> Outcome:
    """``refresh``: the API's current record is the truth, newer or not than what is held."""
    if result.error_kind == "body_too_large":
        return _quarantined(result, result.message)
    if not result.ok:
        return Outcome(Status.FAILED, error_row=error_row(result, result.error_kind or "unknown", result.message))
    try:
        body = json.loads(result.body or b"")
        job = normalize_job(body, result.ref)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and BadRecord are ValueErrors
        reason = str(error) if isinstance(error, BadRecord) else f"body is not valid JSON: {error}"
        return _quarantined(result, reason)
    return _compare(job, held, refresh)


def _quarantined(result: FetchResult, reason: str) -> Outcome:
    return Outcome(
        Status.QUARANTINED,
        error_row=error_row(result, "malformed", reason),
        quarantine_row=quarantine_row(result, reason),
    )


def _compare(job: NormalizedJob, held: HeldJob | None, refresh: bool) -> Outcome:
    """Newer loads; with ``refresh``, or when what is held claims a future time, different loads."""
    if held is None or job.updated_at > held.updated_at:
        return Outcome(Status.LOADED, job_row=job.row, notes=job.notes)
    if job.updated_at == held.updated_at:
        return Outcome(Status.UNCHANGED, notes=job.notes)
    if refresh or held.is_in_future():  # a server clock bug must not pin a job forever
        return Outcome(Status.LOADED, job_row=job.row, notes=[*job.notes, "updated_at went back (replaced what was held)"])
    return Outcome(Status.STALE, notes=job.notes)


def error_row(result: FetchResult, kind: str, message: str) -> dict[str, Any]:
    return {
        "space_id": result.ref.space_id,
        "workflow_id": result.ref.workflow_id,
        "job_id": result.ref.job_id,
        "error_kind": kind,
        "http_status": result.status,
        "message": message[:1000],
        "attempts": result.attempts,
        "occurred_at": result.fetched_at,
    }


LOAD_FAILED = Status.LOAD_FAILED.value  # also the error_kind of its fetch_errors rows


def load_failed_row(ref: JobRef, message: str) -> dict[str, Any]:
    """The job's rows were in a package that could not be loaded; the next run retries it apart."""
    return {
        "space_id": ref.space_id,
        "workflow_id": ref.workflow_id,
        "job_id": ref.job_id,
        "error_kind": LOAD_FAILED,
        "http_status": None,
        "message": message[:1000],
        "attempts": 0,
        "occurred_at": datetime.now(timezone.utc),
    }


def quarantine_row(result: FetchResult, reason: str) -> dict[str, Any]:
    raw = result.body or b""
    return {
        "space_id": result.ref.space_id,
        "workflow_id": result.ref.workflow_id,
        "job_id": result.ref.job_id,
        "reason": reason[:1000],
        "http_status": result.status,
        "payload": raw[:MAX_QUARANTINE_PAYLOAD].decode("utf-8", errors="replace"),
        "payload_bytes": len(raw),
        "is_payload_truncated": len(raw) > MAX_QUARANTINE_PAYLOAD,
        "received_at": result.fetched_at,
    }
