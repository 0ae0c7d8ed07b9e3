"""The warehouse side as cron meets it: a held load lock ends in exit 5 naming its holder, and a
wrong destination name or password is a configuration error (exit 2) naming the setting."""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Iterator

import pytest

from pipeline.job_ids import Shard
from pipeline.runner import make_pipeline
from pipeline.warehouse import LOAD_LOCK_KEY, load_lock
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator
from tests.test_cli import up_jobs

needs_postgres = pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")


@needs_postgres
def test_a_held_load_lock_times_out_naming_its_holder(tmp_path, postgres_database):
    """Another session holds the advisory lock: a shard run with --lock-timeout 1 exits 5 after
    about 1 s naming that session; the data it fetched loads on the next run."""

    for emulator in start_emulator(tmp_path, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--shard", "0/1", "--jobs-file", str(emulator.jobs_file)]
        with _holding_the_lock(postgres_database) as holder:
            refused = up_jobs(*args, "--lock-timeout", "1", env=env, cwd=tmp_path)
        assert refused.returncode == 5, refused.stderr
        line = refused.stderr.strip().splitlines()[-1]
        waited = float(re.search(r"after waiting ([\d.]+) s", line).group(1))
        assert 1.0 <= waited < 3.0
        assert f"held by server process {holder.pid} " in line
        assert "application 'someone-else'" in line and "connected since 20" in line
        assert f"pg_terminate_backend({holder.pid})" in line
        summary = emulator.run(shard=Shard(0, 1))  # the lock is free: the package left behind loads first
        assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]
        assert summary.timings["load lock wait"] < 1.0


@needs_postgres
def test_the_load_lock_wait_shows_in_the_timings(postgres_database):
    """A real second session releases the lock after 0.5 s; the waiting side records the wait."""
    pipeline = make_pipeline(None, "postgres")
    timings: dict[str, float] = {}
    with _holding_the_lock(postgres_database) as holder:
        threading.Timer(0.5, holder.release).start()
        with load_lock(pipeline, 30, timings):
            assert not holder.holds()
    assert 0.5 <= timings["load lock wait"] < 10


class _Holder:
    def __init__(self, dsn: str) -> None:
        import psycopg2

        self.connection = psycopg2.connect(dsn, application_name="someone-else")
        self.connection.autocommit = True
        self.pid = self.connection.get_backend_pid()
        self._execute("select pg_advisory_lock(%s)")

    def _execute(self, sql: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, (LOAD_LOCK_KEY,))

    def release(self) -> None:
        self._execute("select pg_advisory_unlock(%s)")

    def holds(self) -> bool:
        with self.connection.cursor() as cursor:
            cursor.execute("select count(*) from pg_locks where locktype = 'advisory' and pid = %s and granted", (self.pid,))
            return bool(cursor.fetchone()[0])


@contextmanager
def _holding_the_lock(dsn: str) -> Iterator[_Holder]:
    holder = _Holder(dsn)
    try:
        yield holder
    finally:
        holder.connection.close()


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
