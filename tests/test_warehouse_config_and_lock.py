"""The warehouse side as cron meets it: a held load lock ends in exit 5 naming its holder, and a
wrong destination name or password is a configuration error (exit 2) naming the setting."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from pipeline.warehouse import LOAD_LOCK_KEY
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator
from tests.test_cli import up_jobs

needs_postgres = pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")


@needs_postgres
def test_a_held_load_lock_times_out_naming_its_holder(tmp_path, postgres_database):
    """Another session holds the advisory lock: --lock-timeout 2 ends in exit 5 after ~2 s naming
    that session; a run that waits while it is released succeeds and shows the wait."""
    import psycopg2

    for emulator in start_emulator(tmp_path, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--shard", "0/1", "--jobs-file", str(emulator.jobs_file)]
        holder = psycopg2.connect(postgres_database, application_name="someone-else")
        holder.autocommit = True
        try:
            holder.cursor().execute("select pg_advisory_lock(%s)", (LOAD_LOCK_KEY,))
            refused = up_jobs(*args, "--lock-timeout", "2", env=env, cwd=tmp_path)
            assert refused.returncode == 5, refused.stderr
            line = refused.stderr.strip().splitlines()[-1]
            waited = float(re.search(r"after waiting ([\d.]+) s", line).group(1))
            assert 2.0 <= waited < 4.0
            assert f"held by server process {holder.get_backend_pid()} " in line
            assert "application 'someone-else'" in line and "connected since 20" in line
            assert f"pg_terminate_backend({holder.get_backend_pid()})" in line

            waiting = subprocess.Popen([sys.executable, "-m", "pipeline", *args, "--lock-timeout", "120"], env=env,
                                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            _until_trying_the_lock(holder, deadline=time.monotonic() + 120)
            time.sleep(1.0)
            holder.cursor().execute("select pg_advisory_unlock(%s)", (LOAD_LOCK_KEY,))
            out, err = waiting.communicate(timeout=120)
        finally:
            holder.close()
        assert waiting.returncode == 0, err
        assert float(re.search(r"load lock wait ([\d.]+)", out).group(1)) >= 0.9
        assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]


def _until_trying_the_lock(holder, deadline: float) -> None:
    """Until another session has asked for the lock (its last query is our try-lock)."""
    while time.monotonic() < deadline:
        with holder.cursor() as cursor:
            cursor.execute("select count(*) from pg_stat_activity where pid <> pg_backend_pid() "
                           "and query like 'select pg_try_advisory_lock%%'")
            if cursor.fetchone()[0]:
                return
        time.sleep(0.1)
    raise AssertionError("the run never tried the load lock")


@needs_postgres
def test_a_wrong_warehouse_password_is_a_configuration_error(emulator, tmp_path, postgres_database):
    wrong = "Wr0ng-Pa55word-NEVER-PRINT"
    dsn = re.sub(r"://([^:]+):[^@]*@", rf"://\1:{wrong}@", postgres_database)
    env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": dsn}
    result = up_jobs("run", "--destination", "postgres", "--jobs-file", str(emulator.jobs_file), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        'up-jobs: error: the postgres destination refused the login: password authentication failed for user "postgres"; '
        "check destination.postgres.credentials (or DESTINATION__POSTGRES__CREDENTIALS)"
    ]
    assert wrong not in result.stdout + result.stderr
    assert emulator.store.total_requests == 0  # stopped before fetching anything


def test_an_unknown_destination_is_a_configuration_error(emulator, tmp_path):
    result = up_jobs("run", "--destination", "postgress", "--jobs-file", str(emulator.jobs_file),
                     env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert ("up-jobs: error: unknown destination 'postgress' (--destination or sources.up_jobs.destination): "
            "did you mean postgres?") in result.stderr
    assert emulator.store.total_requests == 0
