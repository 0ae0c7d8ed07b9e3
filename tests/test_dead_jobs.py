"""Dead jobs stop costing: a permanent error backs off, and errors grow with events, not runs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from pipeline.demo import write_jobs_csv
from pipeline.emulator.generator import format_timestamp
from pipeline.error_state import BackoffPolicy, ErrorState, after_failure, after_recovery
from pipeline.job_ids import JobRef

BACKOFF_SECONDS = 60.0
"""Long enough that a run inside the backoff is inside it however slow the machine is."""
SHORT_BACKOFF_SECONDS = 0.5
SETTINGS = {"dead_job_after_failures": 2, "dead_job_backoff_hours": BACKOFF_SECONDS / 3600, "dead_job_max_backoff_hours": 1.0}
SHORT = {**SETTINGS, "dead_job_backoff_hours": SHORT_BACKOFF_SECONDS / 3600}
REF = JobRef("space", "wf", "job")
NOW = datetime(2026, 11, 30, 12, tzinfo=timezone.utc)


def _error(kind: str = "not_found", status: int | None = 404) -> dict:
    return {"error_kind": kind, "http_status": status, "message": "gone", "attempts": 1}


def _state(row: dict) -> ErrorState:
    return ErrorState(row["error_kind"], row["http_status"], row["consecutive_failures"], row["first_failed_at"],
                      row["last_failed_at"], row["next_attempt_at"])


def test_backoff_doubles_after_the_threshold_up_to_the_cap():
    policy, state, waits = BackoffPolicy(after_failures=3, base_hours=1, max_hours=24), None, []
    for run in range(8):
        row, is_event = after_failure(REF, state, _error(), NOW, policy)
        assert is_event == (run == 0), "only the first failure of a streak is an event"
        state = _state(row)
        waits.append(None if row["next_attempt_at"] is None else (row["next_attempt_at"] - NOW) / timedelta(hours=1))
    assert waits == [None, None, 1, 2, 4, 8, 16, 24]


def test_transient_errors_never_back_off_and_a_new_kind_is_an_event():
    policy = BackoffPolicy(after_failures=1)
    row, _ = after_failure(REF, None, _error("retries_exhausted", None), NOW, policy)
    assert row["next_attempt_at"] is None
    row, is_event = after_failure(REF, _state(row), _error("not_found", 404), NOW, policy)
    assert is_event and row["consecutive_failures"] == 1 and row["next_attempt_at"] == NOW + timedelta(hours=1)
    closed = after_recovery(REF, _state(row), NOW)
    assert closed["recovered_at"] == NOW and closed["next_attempt_at"] is None


def _requests(emulator, ref: JobRef) -> int:
    return emulator.store.attempts(ref.path())


def test_a_404_job_backs_off_then_is_retried_then_recovers(any_emulator):
    """On DuckDB and on Postgres (where the planner reads the error state through a CSV export)."""
    emulator = any_emulator
    ghost = JobRef("demo-space", "wf-ghost", "0" * 32)
    write_jobs_csv([*emulator.store.refs(), ghost], emulator.jobs_file)
    run = lambda **options: emulator.run(settings=SETTINGS, **options)  # noqa: E731
    first, second = run(), run()
    assert first.count("failed") == 1 and second.count("failed") == 1 and _requests(emulator, ghost) == 2
    rows = emulator.query("select failed_runs, next_attempt_at from telestream_up.open_fetch_errors")
    assert len(rows) == 1 and rows[0][0] == 2 and rows[0][1] is not None  # two in a row: now it waits

    waiting = run()  # inside the backoff: not requested, not counted as a failure
    assert _requests(emulator, ghost) == 2 and waiting.backing_off == 1 and not waiting.has_problems
    forced = emulator.run(settings=SHORT, retry_errors=True)  # this failure's wait: 2 x 0.5 s (the third doubles)
    assert _requests(emulator, ghost) == 3 and forced.count("failed") == 1

    time.sleep(SHORT_BACKOFF_SECONDS * 2 + 0.2)
    run()
    assert _requests(emulator, ghost) == 4
    assert emulator.query("select count(*) from telestream_up.fetch_errors") == [(1,)], "one event, not one row per run"
    assert emulator.query("select failed_runs from telestream_up.open_fetch_errors") == [(4,)]

    body = {**emulator.store.get(emulator.store.refs()[0]), "id": ghost.job_id, "workflow_id": ghost.workflow_id,
            "updated_at": format_timestamp(datetime.now(timezone.utc))}
    emulator.store.put(ghost, body)
    recovered = run(retry_errors=True)
    assert recovered.stats.recovered == 1 and recovered.count("loaded") == 1
    assert emulator.query("select count(*) from telestream_up.open_fetch_errors") == [(0,)]
    assert emulator.query("select count(*) from telestream_up.fetch_recoveries") == [(1,)]


def test_refresh_also_retries_at_once(emulator):
    ghost = JobRef("demo-space", "wf-ghost", "1" * 32)
    write_jobs_csv([*emulator.store.refs(), ghost], emulator.jobs_file)
    for _ in range(2):
        emulator.run(settings=SETTINGS)
    emulator.run(settings=SETTINGS, refresh=True)
    assert _requests(emulator, ghost) == 3
