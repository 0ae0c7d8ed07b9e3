"""The tools a user brings around ``up-jobs run``: a project folder with a real ``.dlt/``, cron
lines written either way, the log a cron job appends to, and dlt's own CLI on the run's pipeline."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import build_parser
from tests.conftest import REPO
from tests.test_cli import up_jobs

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
DLT = Path(sys.executable).with_name("dlt")  # the dlt console script of this venv, as a user runs it


def _project(root: Path, config: str, secrets: str = "") -> Path:
    """A project folder as a user lays it out: .dlt/config.toml and secrets.toml, jobs next to them."""
    (root / ".dlt").mkdir(parents=True)
    (root / ".dlt" / "config.toml").write_text(config, encoding="utf-8")
    (root / ".dlt" / "secrets.toml").write_text(secrets, encoding="utf-8")
    return root


def _env(tmp_path: Path) -> dict[str, str]:
    """No UP settings from the environment: they come from the project's .dlt/ only."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOURCES__UP_JOBS__")}
    return {**env, "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false"}


@pytest.mark.parametrize("command", ["run", "demo", "emulator", "report"])
def test_project_dir_is_accepted_before_and_after_every_subcommand(command):
    parser = build_parser()
    assert parser.parse_args(["--project-dir", "/a", command]).project_dir == "/a"
    assert parser.parse_args([command, "--project-dir", "/b"]).project_dir == "/b"
    assert parser.parse_args([command]).project_dir is None


def test_a_typo_in_config_toml_is_named_in_the_error_it_causes(tmp_path):
    project = _project(tmp_path / "proj", '[sources.up_jobs]\nbase_ur = "https://up.example.com/v1"\nspace_id = "s"\n'
                                          'jobs = ["w/j"]\n', 'sources.up_jobs.api_key = "k-123"\n')
    result = up_jobs("run", "--project-dir", str(project), env=_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "up-jobs: error: sources.up_jobs.base_url is not set (config.toml or SOURCES__UP_JOBS__BASE_URL); "
        f"{project / '.dlt' / 'config.toml'}: unknown key sources.up_jobs 'base_ur' ignored (did you mean base_url?)"
    ]
    assert "k-123" not in result.stdout + result.stderr


def test_cron_log_and_dlt_cli_after_runs_from_a_project_folder(emulator, tmp_path):
    """Two cron runs (option after, then before the subcommand), then dlt's CLI as its users reach for it."""
    project = _project(
        tmp_path / "proj",
        f'[sources.up_jobs]\nbase_url = "{emulator.server.base_url}"\nspace_id = "demo-space"\n'
        f'jobs_file = "{emulator.jobs_file}"\nbackoff_seconds = 0.05\nmax_concurency = 8\n',  # a typo: warned, not fatal
        f'[sources.up_jobs]\napi_key = "{emulator.server.api_key}"\n',
    )
    elsewhere = tmp_path / "cron_cwd"
    elsewhere.mkdir()
    env = _env(tmp_path)
    first = up_jobs("run", "--project-dir", str(project), env=env, cwd=elsewhere)
    assert first.returncode == 0, first.stderr
    second = up_jobs("--project-dir", str(project), "run", env=env, cwd=elsewhere)
    assert second.returncode == 0, second.stderr
    assert "loaded                0" in second.stdout
    typo = f"warning: {project / '.dlt' / 'config.toml'}: unknown key sources.up_jobs 'max_concurency' ignored (did you mean max_concurrency?)"
    assert typo in first.stdout.splitlines(), first.stdout

    # the log: a header saying when, what and where; every progress line timestamped
    db = project / "up_jobs.duckdb"
    header = first.stdout.splitlines()[0]
    assert re.fullmatch(rf"{STAMP} up-jobs run --project-dir {re.escape(str(project))} --db up_jobs.duckdb "
                        rf"\(pid \d+\): database {re.escape(str(db))}", header), header
    assert re.fullmatch(rf"{STAMP} to fetch: 60 jobs", first.stdout.splitlines()[1])
    progress = first.stderr.strip().splitlines()
    assert all(re.match(STAMP + " ", line) for line in progress), progress
    assert progress[0].endswith(" fetched 6/60 jobs (10%)")  # not "fetched 1/60 jobs, 1 jobs/s, ETA 59 s"
    assert re.fullmatch(rf"{STAMP} finished in \d+\.\d s", first.stdout.splitlines()[-1])

    # dlt's CLI with the command the run printed: the pipeline, and a no-change run's trace reads as a load
    printed = [line for line in second.stdout.splitlines() if line.startswith("dlt's view:")][0]
    command = shlex.split(printed.split(":", 1)[1])
    assert command[:3] == ["dlt", "pipeline", "--pipelines-dir"] and command[-2:] == ["up_jobs", "info"]
    dlt_env = {**env, "COLUMNS": "200"}

    def dlt(*args: str) -> str:
        result = subprocess.run([str(DLT), *command[1:4], *args], env=dlt_env, cwd=elsewhere, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert "up_jobs (last run:" in dlt("--list-pipelines")
    info = dlt("up_jobs", "info")
    assert "Found pipeline up_jobs" in info and "dataset_name: telestream_up" in info
    trace = dlt("up_jobs", "trace")
    assert "1 load package(s) were loaded to destination duckdb and into dataset telestream_up" in trace, trace
    assert "dataset None" not in trace and "did not start" not in trace
    assert "_dlt_pipeline_state: 1 row(s)" in trace  # the run's own record, nothing else changed
    assert emulator.server.api_key not in info + trace
