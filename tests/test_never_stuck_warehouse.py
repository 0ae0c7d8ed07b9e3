"""Never stuck on Postgres: whatever a DBA or a crash leaves in the warehouse, the next cron run
proceeds on its own, or fails with one line naming what only a human can decide."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipeline.emulator.generator import format_timestamp
from tests.cli_runner import up_jobs
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator

pytestmark = pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")


def _execute(dsn: str, sql: str) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


def _touch(emulator, progress: float) -> None:
    """Every job moves on (running again, new progress), so every run has rows to load."""
    now = format_timestamp(datetime.now(timezone.utc))
    for ref in emulator.store.refs():
        emulator.store.put(ref, {**emulator.store.get(ref), "state": "in-process", "progress": progress, "updated_at": now})


def test_a_table_or_column_dropped_by_hand_is_recreated_by_the_next_run(tmp_path, postgres_database):
    """A DBA drops ``job_observations`` (a table every load appends to) and a column of
    ``workflow_jobs``. dlt's stored schema version still lists both, so its load neither recreates
    nor re-adds them: every run failed with exit 1 ("relation telestream_up.job_observations does
    not exist"), and no job was updated. Now the next run recreates them before loading."""
    for emulator in start_emulator(tmp_path, jobs=12, seed=5, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--concurrency", "4", "--jobs-file", str(emulator.jobs_file)]
        _touch(emulator, 40.0)  # none terminal: every run fetches and loads every job
        assert up_jobs(*args, env=env, cwd=tmp_path).returncode == 0
        _execute(postgres_database, "drop table telestream_up.job_observations cascade; "
                                    "alter table telestream_up.workflow_jobs drop column progress cascade")
        for progress in (41.0, 42.0):
            _touch(emulator, progress)
            result = up_jobs(*args, env=env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr[-2000:]
            assert emulator.query("select count(*) filter (where progress = %s) from telestream_up.workflow_jobs" % progress) == [(12,)]
        appended = emulator.query("select count(*) from telestream_up.job_observations where progress = 42.0")[0][0]
        assert appended > 0  # the history is appended to again
        assert emulator.query("select count(*) from telestream_up.job_durations") == [(12,)]


def test_a_column_retyped_or_made_not_null_by_hand_stops_the_run_naming_the_fix(tmp_path, postgres_database):
    """Only a human can decide how to change back a column a DBA retyped (its data may matter),
    or a NOT NULL column the pipeline does not write. Every run used to fail on a symptom instead:
    ``updated_at`` made text failed planning on ``function isfinite(text) does not exist`` (no job
    updated again); the NOT NULL column set every job aside, each run, with a row dump. Now one
    line names the column and the fix, before anything is fetched; once fixed, runs proceed."""
    for emulator in start_emulator(tmp_path, jobs=8, seed=5, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--concurrency", "4", "--jobs-file", str(emulator.jobs_file)]
        _touch(emulator, 40.0)
        assert up_jobs(*args, env=env, cwd=tmp_path).returncode == 0
        _execute(postgres_database, "drop view telestream_up.job_durations cascade; "
                                    "alter table telestream_up.workflow_jobs alter column updated_at type text; "
                                    "alter table telestream_up.workflow_jobs add column owner text not null default 'ops'; "
                                    "alter table telestream_up.workflow_jobs alter column owner drop default")
        requests = emulator.store.total_requests
        failed = up_jobs(*args, env=env, cwd=tmp_path)
        assert failed.returncode == 1
        message = failed.stderr.splitlines()[0]
        assert "workflow_jobs.updated_at is text, the pipeline loads timestamp" in message
        assert "alter table telestream_up.workflow_jobs alter column owner drop not null" in message
        assert emulator.store.total_requests == requests  # stopped before fetching anything
        _execute(postgres_database, "alter table telestream_up.workflow_jobs rename column updated_at to updated_at_text; "
                                    "alter table telestream_up.workflow_jobs alter column owner drop not null")
        _touch(emulator, 43.0)
        fixed = up_jobs(*args, env=env, cwd=tmp_path)
        assert fixed.returncode == 0, fixed.stderr[-2000:]
        assert emulator.query("select count(*) from telestream_up.workflow_jobs where progress = 43.0 and updated_at is not null") == [(8,)]
        assert emulator.query("select count(*) from telestream_up.job_durations") == [(8,)]


def test_a_retyped_staging_table_is_rebuilt_by_the_next_run(tmp_path, postgres_database):
    """dlt's merge staging table with a column of another type (``name`` made int there): dlt
    only empties staging tables, so every load failed on it (exit 1, 3 runs in a row, no job
    updated). The staging dataset holds nothing between loads: the next run drops it and dlt
    creates it again."""
    for emulator in start_emulator(tmp_path, jobs=8, seed=5, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--concurrency", "4", "--jobs-file", str(emulator.jobs_file)]
        _touch(emulator, 40.0)
        assert up_jobs(*args, env=env, cwd=tmp_path).returncode == 0
        _execute(postgres_database, "alter table telestream_up_staging.workflow_jobs alter column name type int using 1")
        _touch(emulator, 44.0)
        result = up_jobs(*args, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        assert emulator.query("select count(*) from telestream_up.workflow_jobs where progress = 44.0") == [(8,)]
        assert emulator.query("select data_type from information_schema.columns where table_schema = "
                              "'telestream_up_staging' and table_name = 'workflow_jobs' and column_name = 'name'") == [("character varying",)]  # dlt's text on Postgres
