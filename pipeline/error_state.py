"""Each failing job's current error, so dead jobs stop costing and errors grow with events, not runs.

A job that answers 404 forever was requested every run and appended a ``fetch_errors`` row
every time (35,000 rows a year per dead job at a 15-minute cron). Now ``fetch_error_state``
holds one row per job that ever failed (merged on the job): its current error, how many runs
in a row it failed, and when it may next be tried. ``fetch_errors`` gets a row only when
something changes: a first failure, a different error, a failure after a recovery. Pure.

Backoff: a permanent kind (404, a malformed body) that failed ``after_failures`` runs in a row
waits ``base_hours``, then twice that after each further failure, up to ``max_hours``.
Transient kinds (retries exhausted, a failed load) are retried every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.job_ids import JobRef

PERMANENT_KINDS = frozenset({"not_found", "malformed", "http_error"})


@dataclass(frozen=True)
class BackoffPolicy:
    after_failures: int = 3
    base_hours: float = 1.0
    max_hours: float = 24.0

    def next_attempt(self, kind: str, consecutive_failures: int, now: datetime) -> datetime | None:
        """When a job that just failed may be requested again; None: on the next run."""
        if kind not in PERMANENT_KINDS or consecutive_failures < self.after_failures:
            return None
        doublings = consecutive_failures - self.after_failures
        hours = min(self.max_hours, self.base_hours * 2 ** min(doublings, 30))
        return now + timedelta(hours=hours)


@dataclass(frozen=True)
class ErrorState:
    """What ``fetch_error_state`` holds for a job whose latest fetch or load failed."""

    error_kind: str
    http_status: int | None
    consecutive_failures: int
    first_failed_at: datetime
    last_failed_at: datetime | None
    next_attempt_at: datetime | None

    def is_due(self, now: datetime) -> bool:
        return self.next_attempt_at is None or self.next_attempt_at <= now


def after_failure(
    ref: JobRef, previous: ErrorState | None, error: dict[str, Any], now: datetime, policy: BackoffPolicy
) -> tuple[dict[str, Any], bool]:
    """The job's new state row, and whether this failure is an event worth a ``fetch_errors`` row."""
    kind, status = error["error_kind"], error.get("http_status")
    same = previous is not None and previous.error_kind == kind and previous.http_status == status
    failures = previous.consecutive_failures + 1 if same and previous is not None else 1
    row = {
        **_key(ref),
        "error_kind": kind,
        "http_status": status,
        "message": error.get("message"),
        "attempts": error.get("attempts"),
        "first_failed_at": previous.first_failed_at if same and previous is not None else now,
        "last_failed_at": now,
        "consecutive_failures": failures,
        "next_attempt_at": policy.next_attempt(kind, failures, now),
        "recovered_at": None,
    }
    return row, not same


def after_recovery(ref: JobRef, previous: ErrorState, now: datetime) -> dict[str, Any]:
    """The state row of a failing job that answered well again: closed, counters kept."""
    return {
        **_key(ref),
        "error_kind": previous.error_kind,
        "http_status": previous.http_status,
        "message": None,
        "attempts": None,
        "first_failed_at": previous.first_failed_at,
        "last_failed_at": previous.last_failed_at,
        "consecutive_failures": previous.consecutive_failures,
        "next_attempt_at": None,
        "recovered_at": now,
    }


def _key(ref: JobRef) -> dict[str, str]:
    return {"space_id": ref.space_id, "workflow_id": ref.workflow_id, "job_id": ref.job_id}
