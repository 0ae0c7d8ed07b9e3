"""Configuration the user got wrong exits 2 naming what and where; an abort names its real cause."""

from __future__ import annotations

import os

import pytest

from pipeline.job_ids import JobsFileError, read_jobs_file
from tests.test_cli import up_jobs, up_jobs_process


@pytest.mark.parametrize("suffix", ["\r\n", "\r", " ", "\n", "\t"])
def test_a_key_with_line_endings_or_spaces_is_a_config_error_and_nothing_is_written(emulator, tmp_path, suffix):
    key = emulator.server.api_key + suffix
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env={**emulator.env(), "SOURCES__UP_JOBS__API_KEY": key}, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "SOURCES__UP_JOBS__API_KEY" in result.stderr and "whitespace" in result.stderr
    assert emulator.server.api_key not in result.stdout + result.stderr
    assert not (tmp_path / "up_jobs.duckdb.work").exists() and emulator.store.total_requests == 0


def test_a_key_from_the_secrets_file_is_named_as_such(emulator, tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_bytes(f'[sources.up_jobs]\r\napi_key = "{emulator.server.api_key}\\r"\r\n'.encode())
    env = {name: value for name, value in emulator.env().items() if name != "SOURCES__UP_JOBS__API_KEY"}
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=env, cwd=tmp_path)
    assert result.returncode == 2 and ".dlt/secrets.toml" in result.stderr, result.stderr
    assert emulator.server.api_key not in result.stdout + result.stderr


def test_jobs_file_problems_exit_2_with_what_and_where(emulator, tmp_path):
    cases = {
        "directory": (lambda path: path.mkdir(), "is a directory"),
        "huge.csv": (lambda path: path.write_text("workflow_id,job_id\nwf,a\nwf," + "x" * 140_000 + "\n"), ":3: field larger than field limit"),
        "missing.csv": (lambda path: None, "does not exist"),
    }
    if os.geteuid() != 0:  # root reads any file; the unreadable case needs an ordinary user
        cases["unreadable.csv"] = (lambda path: (path.write_text("workflow_id,job_id\n"), path.chmod(0)), "cannot be read")
    for name, (make, expected) in cases.items():
        path = tmp_path / name
        make(path)
        result = up_jobs("run", "--jobs-file", str(path), env=emulator.env(), cwd=tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        assert str(path) in result.stderr and expected in result.stderr, (name, result.stderr)


def test_utf16_jobs_file_with_a_bom_is_read(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_bytes("workflow_id,job_id\r\nwf,job-1\r\n".encode("utf-16"))
    assert "job-1" in read_jobs_file(path)
    path.write_bytes("workflow_id,job_id\r\nwf,job-1\r\n".encode("utf-16-le"))
    with pytest.raises(JobsFileError, match="UTF-16 without a BOM"):
        read_jobs_file(path)


def test_an_unreadable_working_copy_is_moved_aside_and_the_run_goes_on(emulator, tmp_path):
    assert up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path).returncode == 0
    work = tmp_path / "up_jobs.duckdb.work" / "work.duckdb"
    work.write_bytes(b"half-written by a crash" * 100)
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert list(work.parent.glob("work.duckdb.unreadable-*"))


def test_an_abort_names_its_innermost_cause_and_logs_the_chain(emulator, tmp_path):
    import duckdb

    assert up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path).returncode == 0
    # someone opened the private working copy for writing: the run cannot, and must say why
    # (a fresh process: DuckDB shares an open file between the connections of one process)
    with duckdb.connect(str(tmp_path / "up_jobs.duckdb.work" / "work.duckdb")):
        result = up_jobs_process("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 1
    first, second = result.stderr.strip().splitlines()[-2:]
    assert first.startswith("up-jobs: error: run aborted: ") and "with exception:" not in first
    assert "lock" in first.lower(), first
    log = tmp_path / "up_jobs.duckdb.work" / "last_error.log"
    assert second == f"up-jobs: full error chain in {log}"
    assert "Traceback" in log.read_text() and emulator.server.api_key not in log.read_text()
    again = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
