"""Never stuck on the local DuckDB path: whatever a crash or a full disk leaves in ``<db>.work``,
the next cron run proceeds on its own, says what it set aside, and loses no job.

Each case damages the state of a real setup (runs over HTTP against the emulator into real DuckDB
files), as a crash or a full disk leaves it; before the fix behind each, every later run failed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import duckdb

from pipeline.workspace import Workspace
from tests.cli_runner import up_jobs, up_jobs_process
from tests.conftest import tmpfs


def _current(emulator) -> bool:
    """The published file holds every job at the version the API has now, and the views answer."""
    want = {ref.job_id: emulator.store.get(ref)["updated_at"][:19] for ref in emulator.store.refs()}
    with duckdb.connect(str(emulator.db), read_only=True) as connection:
        held = dict(connection.sql("select id, strftime(updated_at, '%Y-%m-%dT%H:%M:%S') from telestream_up.workflow_jobs").fetchall())
        connection.sql("select count(*) from telestream_up.open_fetch_errors").fetchall()
    return held == want


def _warnings(summary) -> list[str]:
    return [problem.message for problem in summary.config_problems if not problem.is_error]


def test_an_emptied_dlt_state_or_schema_file_is_set_aside_and_the_state_restored(emulator):
    """dlt renames its state and schema files into place without fsync: a crash can leave one empty.
    dlt then failed to parse it at every run (JSONDecodeError, exit 1 forever)."""
    workspace = Workspace.for_duckdb(emulator.db)
    emulator.run()
    for damaged in ("state.json", "schemas/up_jobs.schema.json"):
        (workspace.pipelines_dir / "up_jobs" / damaged).write_bytes(b"")
        emulator.store.advance(fraction=0.5, seed=len(damaged))
        summary = emulator.run()
        assert summary.failed == 0 and _current(emulator)
        assert any(f"dlt's {damaged} could not be read" in warning for warning in _warnings(summary)), summary.config_problems
        kept = list(workspace.state_dir.glob(f"pipelines.unreadable-*/up_jobs/{damaged}"))
        assert any(path.read_bytes() == b"" for path in kept)  # kept for a look, out of dlt's way
        assert json.loads((workspace.pipelines_dir / "up_jobs" / damaged).read_text())  # dlt wrote a good one again
    assert not _warnings(emulator.run())


def test_a_working_copy_cut_short_is_rebuilt_and_with_no_file_left_dlt_starts_afresh(emulator):
    """A working copy cut short (a full disk) opens in DuckDB, and every load then failed reading a
    block past its end. With it and the published file both gone, dlt's local state still said
    the tables existed: it created only those a load brought rows to, and applying the views
    failed at every run (fetch_error_state missing)."""
    workspace = Workspace.for_duckdb(emulator.db)
    emulator.run()
    data = workspace.work_db.read_bytes()
    workspace.work_db.write_bytes(data[: len(data) // 2])
    emulator.store.advance(fraction=0.5, seed=1)
    summary = emulator.run()
    assert summary.failed == 0 and _current(emulator)
    assert any("the working copy could not be read" in warning for warning in _warnings(summary))

    workspace.work_db.unlink()
    emulator.db.unlink()
    emulator.store.advance(fraction=0.5, seed=2)
    before = emulator.store.total_requests
    summary = emulator.run()
    assert summary.failed == 0 and _current(emulator)
    assert emulator.store.total_requests - before == len(emulator.store.refs())  # every job fetched again
    assert any("dlt's pipeline folder" in warning for warning in _warnings(summary))
    assert list(workspace.state_dir.glob("pipelines.without-data-*/up_jobs/state.json"))
    assert not _warnings(emulator.run())


def test_a_published_record_with_a_count_that_is_not_a_number_is_replaced(emulator):
    """published.json is valid JSON naming the published file exactly, but its count is a string:
    every publish failed on it (exit 1 forever); it is now treated as no record (a full copy)."""
    emulator.run()
    record_path = Workspace.for_duckdb(emulator.db).state_dir / "published.json"
    record = json.loads(record_path.read_text())
    record_path.write_text(json.dumps({**record, "publishes_since_full_copy": "7"}))
    emulator.store.advance(fraction=0.5, seed=3)
    summary = emulator.run()
    assert summary.failed == 0 and _current(emulator)
    assert json.loads(record_path.read_text())["publishes_since_full_copy"] == 0  # a full copy, recorded again


LEAVE_A_WAL = """
import duckdb, os, sys
connection = duckdb.connect(sys.argv[1])
connection.execute("create table main.scratch as select 1 as a")
os._exit(0)  # killed before a checkpoint: the WAL stays
"""


def test_a_wal_left_without_its_working_copy_is_removed_before_the_copy_is_reseeded(emulator):
    """Someone deletes the working copy after a crash left its WAL: the copy reseeded from the
    published file failed to open beside that WAL ("WAL does not match database"), one run lost."""
    workspace = Workspace.for_duckdb(emulator.db)
    emulator.run()
    subprocess.run([sys.executable, "-c", LEAVE_A_WAL, str(workspace.work_db)], check=True, timeout=60)
    wal = workspace.work_db.with_name("work.duckdb.wal")
    assert wal.exists()
    workspace.work_db.unlink()
    emulator.store.advance(fraction=0.5, seed=4)
    summary = emulator.run()
    assert summary.failed == 0 and _current(emulator)


def test_a_pending_package_whose_state_file_a_crash_emptied_is_set_aside_at_once(emulator, tmp_path):
    """Killed between normalize and load, with the package's load_package_state.json left empty:
    dlt failed parsing it in ``has_pending_data``, outside any step, at every run (exit 1 forever)."""
    workspace = Workspace.for_duckdb(emulator.db)
    emulator.run()
    emulator.store.advance(fraction=0.7, seed=5)
    killed = up_jobs_process("run", "--jobs-file", str(emulator.jobs_file), env={**emulator.env(), "UP_JOBS_KILL_AT": "normalized"},
                             cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    states = list(workspace.pipelines_dir.glob("up_jobs/load/normalized/*/load_package_state.json"))
    assert states
    for state in states:
        state.write_bytes(b"")
    summary = emulator.run()
    assert summary.set_aside and "load_package_state.json" in summary.set_aside[0].cause
    assert _current(emulator)  # the package's jobs, not held, were fetched again in the same run
    again = emulator.run()
    assert not again.set_aside and not again.has_problems


def test_a_read_only_folder_for_the_published_file_is_named_and_the_run_after_it_publishes(emulator, tmp_path):
    """Not stuck, but it must say why: removing the temporary copy failed too on a read-only file
    system, and that error (naming only ``.up_jobs.duckdb.<pid>.tmp``) replaced the publish's own."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        db = disk / "up_jobs.duckdb"
        (tmp_path / "state").mkdir()
        Workspace.for_duckdb(db).state_dir.symlink_to(tmp_path / "state")  # the state stays writable
        args = ("run", "--db", str(db), "--jobs-file", str(emulator.jobs_file))
        assert up_jobs(*args, env=emulator.env(), cwd=tmp_path).returncode == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        emulator.store.advance(fraction=0.5, seed=6)
        failed = up_jobs(*args, env=emulator.env(), cwd=tmp_path)
        assert failed.returncode == 1
        assert f"could not publish {db} (the previous file is unchanged)" in failed.stderr
        assert "Read-only file system" in failed.stderr
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
        assert up_jobs(*args, env=emulator.env(), cwd=tmp_path).returncode == 0
        emulator.db = db
        assert _current(emulator)

