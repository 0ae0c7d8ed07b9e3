"""Dead jobs stop costing: a permanent error backs off, and errors grow with events, not runs."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from pipeline.demo import write_jobs_csv
from pipeline.emulator.generator import format_timestamp
from pipeline.error_state import BackoffPolicy, ErrorState, after_failure, after_recovery
from pipeline.job_ids import JobRef

BACKOFF_SECONDS = 2.0
SETTINGS = {"dead_job_after_failures": 2, "dead_job_backoff_hours": BACKOFF_SECONDS / 3600, "dead_job_max_backoff_hours": 1.0}
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


def test_a_404_job_backs_off_then_is_retried_then_recovers(emulator):
    ghost = JobRef("demo-space", "wf-ghost", "0" * 32)
    write_jobs_csv([*emulator.store.refs(), ghost], emulator.jobs_file)

    def run(backoff_seconds: float = BACKOFF_SECONDS, **options):
        return emulator.run(settings={**SETTINGS, "dead_job_backoff_hours": backoff_seconds / 3600}, **options)

    first, second = run(3600), run(3600)  # an hour: the next run is inside it however slow this machine is
    assert first.count("failed") == 1 and second.count("failed") == 1 and _requests(emulator, ghost) == 2
    rows = emulator.query("select failed_runs, next_attempt_at from telestream_up.open_fetch_errors")
    assert len(rows) == 1 and rows[0][0] == 2 and rows[0][1] is not None  # two in a row: now it waits

    waiting = run(3600)  # inside the backoff: not requested, not counted as a failure
    assert _requests(emulator, ghost) == 2 and waiting.backing_off == 1 and not waiting.has_problems
    forced = run(retry_errors=True)  # the third failure: twice BACKOFF_SECONDS from now
    assert _requests(emulator, ghost) == 3 and forced.count("failed") == 1

    time.sleep(BACKOFF_SECONDS * 2 + 0.2)  # the third failure doubled the wait
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
    assert emulator.query("select job_id from telestream_up.fetch_recoveries") == [(ghost.job_id,)]


def test_refresh_also_retries_at_once(emulator):
    ghost = JobRef("demo-space", "wf-ghost", "1" * 32)
    write_jobs_csv([*emulator.store.refs(), ghost], emulator.jobs_file)
    for _ in range(2):
        emulator.run(settings=SETTINGS)
    emulator.run(settings=SETTINGS, refresh=True)
    assert _requests(emulator, ghost) == 3
