"""Planning reads the pipeline's own tables: a missing one is reported, never silently empty."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import _POSTGRES


def test_a_dropped_jobs_table_is_an_error_and_the_runs_recover(emulator):
    """``workflow_jobs`` dropped after a load: every run that finds it missing says so (an error:
    exit 1), requests every job, and within two runs the table holds every job again."""
    emulator.run()
    work = emulator.db.with_name(emulator.db.name + ".work") / "work.duckdb"
    with duckdb.connect(str(work)) as connection:
        connection.execute("drop table telestream_up.workflow_jobs cascade")
    before = emulator.store.total_requests
    first = emulator.run()
    missing = [problem for problem in first.config_problems if "workflow_jobs" in problem.location]
    assert missing and missing[0].is_error and "missing" in missing[0].message and first.has_problems
    assert emulator.store.total_requests - before == 60, "with no state to trust, every job is requested"
    second = emulator.run()
    if second.count("loaded") < 60:
        second = emulator.run()
    assert second.count("loaded") == 60
    assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]
    healed = emulator.run()
    assert not healed.config_problems and healed.skipped_terminal == healed.listed - healed.stats.fetched


@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_postgres_state_reaches_the_planner_exactly_whatever_the_session_style(tmp_path, postgres_database):
    """The planner reads Postgres' state tables through a CSV export (``COPY``): every timestamp
    arrives to the microsecond and every row as it is, even in a database whose sessions default
    to another time zone and date style; a job parked until ``infinity`` stays parked, a 2 MB
    state cannot break the CSV reader, and the files a killed run left are cleared."""
    import psycopg2

    from pipeline.planning import _planner
    from tests.conftest import SECRET_KEY, start_emulator

    for emulator in start_emulator(tmp_path, jobs=40, seed=9, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        emulator.run()
        name = postgres_database.rsplit("/", 1)[1]
        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute(f"alter database {name} set timezone to 'America/St_Johns'")  # UTC-03:30
            cursor.execute(f"alter database {name} set datestyle to 'SQL, DMY'")
            cursor.execute("insert into telestream_up.fetch_error_state (space_id, workflow_id, job_id, error_kind, "
                           "consecutive_failures, first_failed_at, last_failed_at, next_attempt_at, _dlt_id, _dlt_load_id) values "
                           "('s', 'w', 'j,\"quoted\"', 'not_found', 3, '2026-01-02 03:04:05.000001+00', "
                           "'2026-01-02 03:04:05.999999+00', '2026-02-28 23:59:59.5+00', 'x', '1')")
            cursor.execute("insert into telestream_up.fetch_error_state (space_id, workflow_id, job_id, error_kind, "
                           "next_attempt_at, _dlt_id, _dlt_load_id) values ('s', 'w', 'parked', 'not_found', 'infinity', 'y', '1')")
            cursor.execute("update telestream_up.workflow_jobs set state = repeat('x', 2000000) "
                           "where id = (select min(id) from telestream_up.workflow_jobs) returning id")
            odd_job = cursor.fetchone()[0]  # a 2 MB state: longer than the CSV reader's line limit
        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute(f"select id, updated_at, state from telestream_up.workflow_jobs where id <> '{odd_job}'")
            held = set(cursor.fetchall())
            cursor.execute("select job_id, error_kind, http_status, consecutive_failures, first_failed_at, last_failed_at, "
                           "next_attempt_at from telestream_up.fetch_error_state where job_id <> 'parked'")
            errors = set(cursor.fetchall())  # psycopg2 cannot read infinity: the parked job is read apart
        pipeline = emulator.pipeline()
        killed = Path(pipeline.working_dir) / "up-jobs-plan-killed"  # what a run killed while planning leaves
        killed.mkdir()
        (killed / "workflow_jobs.csv").write_text("x" * 1000)
        with _planner(pipeline, []) as (connection, names):
            assert not killed.exists() and len(list(Path(pipeline.working_dir).glob("up-jobs-plan-*"))) == 1
            planned = set(connection.execute(f"select id, updated_at, state from {names['workflow_jobs']} where id <> $id",
                                             {"id": odd_job}).fetchall())
            planned_errors = set(connection.execute(
                "select job_id, error_kind, http_status, consecutive_failures, first_failed_at, last_failed_at, "
                f"next_attempt_at from {names['error_state']} where job_id <> 'parked'").fetchall())
            parked = connection.execute(f"select next_attempt_at = 'infinity' from {names['error_state']} where job_id = 'parked'").fetchall()
            odd = connection.execute(f"select length(state) from {names['workflow_jobs']} where id = $id", {"id": odd_job}).fetchall()
        assert len(held) == 39 and planned == held
        assert len(errors) == 1 and planned_errors == errors
        assert parked == [(True,)]  # still parked, not "request now"
        assert odd == [(256,)]
        assert not list(Path(pipeline.working_dir).glob("up-jobs-plan-*"))  # the exported files went with the plan


@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_a_table_another_session_keeps_locked_is_waited_for_then_named(tmp_path, postgres_database):
    """Postgres waits for a table lock forever by default: an open transaction after ``LOCK TABLE``
    hung the run, and later cron runs exited 5 on the run lock without saying why. Now the run
    waits ``lock_timeout_seconds``, exits as LockHeld (5) naming the holder, and the run after the
    holder is gone proceeds."""
    import psycopg2

    from pipeline.workspace import LockHeld
    from tests.conftest import SECRET_KEY, start_emulator

    for emulator in start_emulator(tmp_path, jobs=20, seed=4, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        emulator.run()
        holder = psycopg2.connect(postgres_database)
        try:
            # a regression would wait for the lock forever: the holder is ended after 20 s instead, and the test fails
            holder.cursor().execute("set idle_in_transaction_session_timeout = '20s'")
            holder.cursor().execute("lock table telestream_up.workflow_jobs in access exclusive mode")
            holder_pid = holder.get_backend_pid()
            started = time.monotonic()
            with pytest.raises(LockHeld) as held:
                emulator.run(lock_timeout_seconds=1)
            assert time.monotonic() - started < 30
            assert "workflow_jobs" in str(held.value) and f"held by server process {holder_pid}" in str(held.value)
        finally:
            with contextlib.suppress(psycopg2.Error):  # ended by the server if the run waited past 20 s
                holder.rollback()
            holder.close()
        emulator.store.advance(fraction=0.5, seed=8)
        assert not emulator.run(lock_timeout_seconds=1).has_problems
