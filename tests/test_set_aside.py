"""A load package dlt cannot normalise or load is set aside; it never blocks a later run.

The failures are real dlt failures: a NOT NULL constraint in the working database refusing one
job's row (as a destination refuses a value), and a package file corrupted after a crash.
"""

from __future__ import annotations

import signal
from datetime import datetime, timezone

import duckdb

from pipeline.emulator.generator import format_timestamp
from tests.test_cli import up_jobs, up_jobs_process

TABLE = "select id, state, progress, updated_at from telestream_up.workflow_jobs order by id"


def _run(emulator, tmp_path, **env):
    run = up_jobs_process if "UP_JOBS_KILL_AT" in env else up_jobs  # a kill -9 needs its own process
    return run("run", "--jobs-file", str(emulator.jobs_file), env={**emulator.env(), **env}, cwd=tmp_path)


def _rows(db) -> dict[str, tuple]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return {row[0]: row[1:] for row in connection.sql(TABLE).fetchall()}


def _open_errors(db) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return dict(connection.sql("select job_id, error_kind from telestream_up.open_fetch_errors").fetchall())


def _touch(emulator, ref, **changes) -> None:
    body = {**emulator.store.get(ref), **changes, "updated_at": format_timestamp(datetime.now(timezone.utc))}
    emulator.store.put(ref, body)


def test_a_row_the_destination_refuses_is_isolated_and_the_others_keep_loading(emulator, tmp_path):
    db = tmp_path / "up_jobs.duckdb"
    assert _run(emulator, tmp_path).returncode == 0
    with duckdb.connect(str(tmp_path / "up_jobs.duckdb.work" / "work.duckdb")) as connection:
        connection.execute("alter table telestream_up.workflow_jobs alter column name set not null")
    running = [ref for ref in emulator.store.refs() if emulator.store.get(ref)["state"] not in ("succeeded", "failed", "stopped")]
    poison, good = running[0], running[1:]
    assert len(good) >= 4
    _touch(emulator, poison, name=None)
    for ref in good:
        _touch(emulator, ref, progress=77.0)
    before = _rows(db)

    refused = _run(emulator, tmp_path)
    assert refused.returncode == 4, refused.stderr
    assert "set aside" in refused.stdout and "work.duckdb" not in refused.stderr
    assert _rows(db) == before, "a failed load must not move the table"
    errors = _open_errors(db)
    assert errors[poison.job_id] == "load_failed" and all(errors[ref.job_id] == "load_failed" for ref in good)
    kept = list((tmp_path / "up_jobs.duckdb.work" / "set_aside").iterdir())
    assert kept and (kept[0] / "SET_ASIDE_REASON.txt").read_text().count("NOT NULL") >= 1

    isolated = _run(emulator, tmp_path)  # the suspects are loaded apart, halving around the bad one
    assert isolated.returncode == 4, isolated.stderr
    rows, errors = _rows(db), _open_errors(db)
    assert all(rows[ref.job_id][1] == 77.0 for ref in good)
    assert errors == {poison.job_id: "load_failed"}

    for ref in good:  # the next run still loads the good jobs' changes
        _touch(emulator, ref, progress=88.0)
    again = _run(emulator, tmp_path)
    assert again.returncode == 4
    assert all(_rows(db)[ref.job_id][1] == 88.0 for ref in good)
    assert _open_errors(db) == {poison.job_id: "load_failed"}


def test_a_corrupt_package_left_by_a_crash_is_set_aside_and_the_run_goes_on(emulator, tmp_path):
    db = tmp_path / "up_jobs.duckdb"
    assert _run(emulator, tmp_path).returncode == 0
    changed = emulator.store.advance(fraction=0.7, seed=5)
    killed = _run(emulator, tmp_path, UP_JOBS_KILL_AT="extracted")
    assert killed.returncode == -signal.SIGKILL
    package_files = list((tmp_path / "up_jobs.duckdb.work" / "pipelines").rglob("extracted/*/new_jobs/*"))
    assert package_files
    for path in package_files:
        path.write_bytes(b"\x00corrupted by a crash\x00")

    resumed = _run(emulator, tmp_path)
    assert resumed.returncode == 4, resumed.stderr
    assert "set aside" in resumed.stdout
    rows = _rows(db)
    for ref in changed:  # nothing lost: the jobs of the set-aside package were fetched again
        assert rows[ref.job_id][2].isoformat() and rows[ref.job_id][0] == emulator.store.get(ref)["state"]
    clean = _run(emulator, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
