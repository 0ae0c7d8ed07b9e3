"""Real processes: kill -9 at several steps, SIGTERM, overlapping runs, a reader holding the file."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from tests.test_cli import up_jobs, up_jobs_process

COMPARE_SQL = (
    "select * exclude (_dlt_load_id, _dlt_id) from telestream_up.workflow_jobs order by id"
)


def _table(db) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return connection.sql(COMPARE_SQL).fetchall()


VIEW_SQL = {  # rounded where a different summation order could change the last bit
    "job_durations": "select * from telestream_up.job_durations order by job_id",
    "workflow_duration_stats": "select workflow_id, jobs, terminal_jobs, succeeded_jobs, round(mean_seconds, 6), "
                               "round(p90_seconds, 6) from telestream_up.workflow_duration_stats order by workflow_id",
    "open_fetch_errors": "select job_id, error_kind from telestream_up.open_fetch_errors order by job_id",
}


def _views_answer(db, clean_db) -> None:
    """After the crash and the rerun, each view gives the rows it gives after one clean run."""
    with duckdb.connect(str(db), read_only=True) as resumed, duckdb.connect(str(clean_db), read_only=True) as clean:
        for view, sql in VIEW_SQL.items():
            assert resumed.sql(sql).fetchall() == clean.sql(sql).fetchall(), view
        assert resumed.sql("select sum(jobs) from telestream_up.workflow_duration_stats").fetchall() == [(60,)]


@pytest.mark.parametrize("kill_at", ["fetched:8", "extracted", "normalized", "load+0.02", "loaded", "published"])
def test_kill_9_then_rerun_equals_one_clean_run(emulator, tmp_path, kill_at):
    env = emulator.env()
    args = ["run", "--jobs-file", str(emulator.jobs_file)]
    emulator.run()  # a first, clean load so the crash happens on an incremental run
    emulator.store.advance(fraction=0.7, seed=5)
    killed = up_jobs_process(*args, "--db", str(emulator.db), env={**env, "UP_JOBS_KILL_AT": kill_at}, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    resumed = up_jobs(*args, "--db", str(emulator.db), env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    clean_db = tmp_path / "clean.duckdb"
    clean = up_jobs(*args, "--db", str(clean_db), env=env, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert _table(emulator.db) == _table(clean_db)
    with duckdb.connect(str(emulator.db), read_only=True) as connection:
        assert connection.sql("select count(*), count(distinct id) from telestream_up.workflow_jobs").fetchall() == [(60, 60)]
    _views_answer(emulator.db, clean_db)


def _start(emulator, tmp_path, *extra: str, env_extra: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--jobs-file", str(emulator.jobs_file), *extra],
        env={**emulator.env(), **(env_extra or {})},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_requests(emulator, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while emulator.store.total_requests < count:
        assert time.monotonic() < deadline, "the run never started fetching"
        time.sleep(0.05)


def test_sigterm_stops_gracefully_and_the_next_run_completes(emulator, tmp_path):
    emulator.server.latency_seconds = 0.2
    process = _start(emulator, tmp_path, "--concurrency", "2")
    _wait_for_requests(emulator, 4)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "interrupted" in stderr
    emulator.server.latency_seconds = 0
    assert up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path).returncode == 0
    assert len(_table(tmp_path / "up_jobs.duckdb")) == 60


def test_overlapping_run_exits_promptly_with_its_own_code(emulator, tmp_path):
    emulator.server.latency_seconds = 0.1
    first = _start(emulator, tmp_path, "--concurrency", "2")
    _wait_for_requests(emulator, 2)
    started = time.monotonic()
    second = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert second.returncode == 5 and time.monotonic() - started < 15
    assert "another run holds the lock" in second.stderr
    first.communicate(timeout=120)
    assert first.returncode == 0
    assert len(_table(tmp_path / "up_jobs.duckdb")) == 60


def test_overlapping_run_can_wait_for_the_lock(emulator, tmp_path):
    """A run started while the lock is held waits (--lock-timeout) and sends nothing until it is released."""
    from pipeline.workspace import Workspace

    with Workspace.for_duckdb((tmp_path / "up_jobs.duckdb").resolve()).lock():  # what a running run holds
        second = _start(emulator, tmp_path, "--lock-timeout", "60")
        assert " up-jobs run " in second.stdout.readline()  # the header: the run is about to take the lock
        held_until = time.monotonic() + 3
        while time.monotonic() < held_until:
            assert second.poll() is None and emulator.store.total_requests == 0, "the run went on while the lock was held"
            time.sleep(0.1)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    assert emulator.store.total_requests == 60 and len(_table(tmp_path / "up_jobs.duckdb")) == 60


READER = """
import sys, time, duckdb
connection = duckdb.connect(sys.argv[1], read_only=True)
print(connection.sql("select count(*) from telestream_up.workflow_jobs where state = 'succeeded'").fetchall()[0][0], flush=True)
sys.stdin.readline()
print(connection.sql("select count(*) from telestream_up.workflow_jobs where state = 'succeeded'").fetchall()[0][0], flush=True)
"""


def test_reader_process_holding_the_file_open_does_not_break_a_run(emulator, tmp_path):
    db = tmp_path / "up_jobs.duckdb"
    assert up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path).returncode == 0
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    before = int(reader.stdout.readline())
    emulator.store.advance(fraction=1.0, seed=8)
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    still, _ = reader.communicate("\n", timeout=30)
    assert int(still) == before  # the open reader sees the old snapshot, never a mix
    with duckdb.connect(str(db), read_only=True) as connection:
        after = connection.sql("select count(*) from telestream_up.workflow_jobs where state = 'succeeded'").fetchall()[0][0]
    assert after > before
