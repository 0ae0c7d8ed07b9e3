"""End to end: emulator over real HTTP → dlt → a real DuckDB file, no mocks."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.emulator.generator import format_elapsed, format_timestamp
from pipeline.job_ids import JobRef


def seconds_between_timestamps(body: dict) -> float:
    """The duration the emulator's elapsed_time prints, from the body's timestamps (no TimeSpan parsing)."""
    return (datetime.fromisoformat(body["updated_at"]) - datetime.fromisoformat(body["created_at"])).total_seconds()


@pytest.fixture
def emulator(any_emulator):
    """Every test in this module runs against DuckDB and against a live Postgres."""
    return any_emulator


def test_first_run_loads_every_listed_job_once_with_correct_seconds(emulator):
    summary = emulator.run()
    assert summary.count("loaded") == len(emulator.store.refs()) == 60
    rows = emulator.query("select id, elapsed_time, elapsed_seconds, progress from telestream_up.workflow_jobs")
    assert len(rows) == 60 and len({row[0] for row in rows}) == 60
    bodies = {ref.job_id: emulator.store.get(ref) for ref in emulator.store.refs()}
    for job_id, elapsed_time, elapsed_seconds, _ in rows:
        # independent of the parser: the generator prints updated_at - created_at as elapsed_time
        expected = None if elapsed_time is None else seconds_between_timestamps(bodies[job_id])
        assert elapsed_seconds == (pytest.approx(expected, abs=1e-6) if expected is not None else None)
    assert sum(row[2] is not None for row in rows) > 30  # the comparison ran on terminal jobs, not only nulls


def test_column_types_are_pinned(emulator):
    emulator.run()
    types = dict(
        emulator.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'telestream_up' and table_name = 'workflow_jobs'"
        )
    )
    double, timestamp_tz = {
        "duckdb": ("DOUBLE", "TIMESTAMP WITH TIME ZONE"),
        "postgres": ("double precision", "timestamp with time zone"),
    }[emulator.destination]
    assert types["progress"] == double
    assert types["elapsed_seconds"] == double
    assert types["updated_at"] == timestamp_tz
    assert types["created_at"] == timestamp_tz
    assert not any(name.startswith("progress__v") for name in types)


def test_elapsed_seconds_matches_timestamps_for_terminal_jobs(emulator):
    emulator.run()
    rows = emulator.query(
        "select elapsed_seconds, duration_from_timestamps_seconds from telestream_up.job_durations where is_terminal"
    )
    assert rows
    for elapsed, from_timestamps in rows:
        assert elapsed == pytest.approx(from_timestamps, abs=1e-5)


def test_rerun_with_nothing_changed_loads_nothing(emulator):
    emulator.run()
    loads_before = emulator.query("select distinct _dlt_load_id from telestream_up.workflow_jobs")
    summary = emulator.run()
    assert summary.count("loaded") == 0
    assert summary.count("unchanged") == summary.stats.fetched > 0  # non-terminal jobs are re-checked
    assert emulator.query("select distinct _dlt_load_id from telestream_up.workflow_jobs") == loads_before
    assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]


def test_terminal_jobs_are_not_requested_again(emulator):
    emulator.run()
    requests_before = emulator.store.total_requests
    summary = emulator.run()
    terminal = emulator.query(
        "select count(*) from telestream_up.workflow_jobs where state in ('succeeded','failed','stopped')"
    )[0][0]
    assert summary.skipped_terminal == terminal > 0
    assert emulator.store.total_requests - requests_before == 60 - terminal


def test_refresh_refetches_everything(emulator):
    emulator.run()
    before = emulator.store.total_requests
    emulator.run(refresh=True)
    assert emulator.store.total_requests - before == 60


def _set_job(store, ref: JobRef, state: str, created: datetime, updated: datetime) -> None:
    body = dict(store.get(ref))
    body.update(
        state=state,
        created_at=format_timestamp(created),
        updated_at=format_timestamp(updated),
        elapsed_time=format_elapsed(updated - created, 6, general=False) if state == "succeeded" else None,
        progress=100 if state == "succeeded" else 40,
    )
    store.put(ref, body)


def test_jobs_finishing_out_of_order_are_all_updated(emulator):
    """The A/B story of dlt issue #2479: a global cursor would drop A's update forever."""
    job_a, job_b = emulator.store.refs()[:2]
    day = datetime(2026, 11, 1, tzinfo=timezone.utc)
    _set_job(emulator.store, job_a, "in-process", day.replace(hour=9), day.replace(hour=10))
    _set_job(emulator.store, job_b, "succeeded", day.replace(hour=9), day.replace(hour=12))
    emulator.run()
    _set_job(emulator.store, job_a, "succeeded", day.replace(hour=9), day.replace(hour=11))
    summary = emulator.run()
    assert summary.count("loaded") == 1
    state, elapsed, updated = emulator.query(
        f"select state, elapsed_seconds, updated_at from telestream_up.workflow_jobs where id = '{job_a.job_id}'"
    )[0]
    assert state == "succeeded" and elapsed == pytest.approx(7200.0)
    assert updated == day.replace(hour=11)


def test_older_record_never_overwrites_newer(emulator):
    ref = emulator.store.refs()[0]
    day = datetime(2026, 11, 1, tzinfo=timezone.utc)
    _set_job(emulator.store, ref, "in-process", day, day + timedelta(hours=2))
    emulator.run()
    _set_job(emulator.store, ref, "in-process", day, day + timedelta(hours=1))  # a lagging replica answers
    summary = emulator.run()
    assert summary.count("stale") == 1 and summary.count("loaded") == 0
    assert emulator.query(f"select updated_at from telestream_up.workflow_jobs where id = '{ref.job_id}'") == [
        (day + timedelta(hours=2),)
    ]


def test_advanced_jobs_update_their_rows_and_nothing_else(emulator):
    emulator.run()
    before = dict(emulator.query("select id, _dlt_load_id from telestream_up.workflow_jobs"))
    changed = {ref.job_id for ref in emulator.store.advance(fraction=0.5, seed=1)}
    summary = emulator.run()
    after = dict(emulator.query("select id, _dlt_load_id from telestream_up.workflow_jobs"))
    assert summary.count("loaded") == len(changed) > 0
    assert {job for job in after if after[job] != before[job]} == changed
    assert len(after) == 60


def test_views_answer_queries(emulator):
    emulator.run()
    stats = emulator.query("select workflow_id, jobs, success_rate, p50_seconds from telestream_up.workflow_duration_stats")
    assert sum(row[1] for row in stats) == 60
    assert emulator.query("select count(*) from telestream_up.job_durations") == [(60,)]
    assert emulator.query("select count(*) from telestream_up.open_fetch_errors") == [(0,)]


def test_fields_the_api_adds_later_are_kept_in_extra_fields_whatever_their_type(emulator):
    """An int, then 5.7, then text in the same added field: stored exactly, no load ever fails."""
    emulator.run()
    ref = emulator.store.refs()[0]
    for value in ([7], 5.7, "abc", {"deep": [[[[1]]]]}):
        body = {**emulator.store.get(ref), "priority": value, "": "empty key", "ID": "x"}
        body["updated_at"] = format_timestamp(datetime.now(timezone.utc))
        emulator.store.put(ref, body)
        assert emulator.run(refresh=True).count("loaded") == 1
        stored = emulator.query(f"select extra_fields from telestream_up.workflow_jobs where id = '{ref.job_id}'")
        assert json.loads(stored[0][0]) == {"priority": value, "": "empty key", "ID": "x"}
    assert emulator.query("select count(*) from telestream_up.workflow_jobs where extra_fields is null") == [(59,)]
