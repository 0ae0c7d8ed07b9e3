"""The up-jobs command as cron runs it: env-var config, exit codes, no leaks (in-process through
``cli.main``; a fresh process where only one shows it: a kill -9, dlt's DEBUG logging)."""

from __future__ import annotations

from pathlib import Path

from pipeline.emulator import FaultPlan
from tests.cli_runner import up_jobs, up_jobs_process
from tests.conftest import REPO, SECRET_KEY, start_emulator


def test_run_loads_jobs_and_prints_a_summary(emulator, tmp_path):
    result = up_jobs("run", "--db", "up.duckdb", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "loaded               60" in result.stdout
    emulator.db = tmp_path / "up.duckdb"
    assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]


def test_wrong_key_gives_one_line_reason_and_exit_3(emulator, tmp_path):
    env = {**emulator.env(), "SOURCES__UP_JOBS__API_KEY": "wrong-key-value"}
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == [
        "up-jobs: error: HTTP 401 from the UP API: the API key was rejected (check sources.up_jobs.api_key)"
    ]
    assert "wrong-key-value" not in result.stdout + result.stderr
    assert emulator.store.total_requests <= 2 * 16 + 1  # stopped at once, no retry storm


def test_after_a_401_a_good_run_succeeds(emulator, tmp_path):
    bad = {**emulator.env(), "SOURCES__UP_JOBS__API_KEY": "wrong-key-value"}
    assert up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=bad, cwd=tmp_path).returncode == 3
    good = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    emulator.db = tmp_path / "up_jobs.duckdb"
    assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]


def test_unsafe_ids_are_reported_and_never_requested(emulator, tmp_path):
    good = emulator.store.refs()[0]
    jobs = tmp_path / "mixed.csv"
    jobs.write_text(
        "workflow_id,job_id\n"
        f"{good.workflow_id},{good.job_id}\n"
        f"{good.workflow_id},../admin\n"
        f"{good.workflow_id},a%2Fb\n",
        encoding="utf-8",
    )
    result = up_jobs("run", "--jobs-file", str(jobs), env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 4
    assert f"error: {jobs}:3: job_id '../admin'" in result.stdout
    assert f"error: {jobs}:4: job_id 'a%2Fb'" in result.stdout
    assert set(emulator.store.requests) == {good.path()}


def test_missing_configuration_is_a_clear_error(tmp_path):
    env = {"PATH": "", "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false", "HOME": str(tmp_path)}
    result = up_jobs("run", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "sources.up_jobs" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plain_http_to_a_remote_host_is_refused(emulator, tmp_path):
    env = {**emulator.env(), "SOURCES__UP_JOBS__BASE_URL": "http://up.example.com/v1"}
    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), env=env, cwd=tmp_path)
    assert result.returncode == 2 and "must use https" in result.stderr


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_api_key_never_reaches_output_or_files(emulator, tmp_path):
    env = {**emulator.env(), "RUNTIME__LOG_LEVEL": "DEBUG"}
    outputs = []
    for args in (
        ["run", "--jobs-file", str(emulator.jobs_file)],
        ["run", "--jobs-file", str(emulator.jobs_file), "--refresh"],
        ["run", "--jobs-file", str(tmp_path / "missing.csv")],
    ):
        result = up_jobs_process(*args, env=env, cwd=tmp_path)
        outputs.append(result.stdout + result.stderr)
    emulator.server.api_key = "rotated"  # every request is now a 401
    result = up_jobs_process("run", "--jobs-file", str(emulator.jobs_file), "--refresh", env=env, cwd=tmp_path)
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 3
    assert not any(SECRET_KEY in output for output in outputs)
    assert _files_containing(tmp_path, SECRET_KEY.encode()) == []
    assert list(tmp_path.rglob("trace.pickle")), "the dlt trace should exist and have been searched"


def test_api_key_absent_after_runs_that_fail_in_every_way(tmp_path):
    """Faults, 404s, quarantine, a kill -9 and a 401: the key appears in no output and no file."""
    rates = {"server_error": 0.1, "rate_limited": 0.03, "timeout": 0.02, "reset": 0.02, "malformed": 0.06, "not_found": 0.04}
    plan = FaultPlan(seed=4, rates=rates, hang_seconds=1.5)
    for faulty_emulator in start_emulator(tmp_path, jobs=100, seed=12, api_key=SECRET_KEY, faults=plan):
        _exercise_every_failure(faulty_emulator, tmp_path)


def _exercise_every_failure(faulty_emulator, tmp_path):
    env = {**faulty_emulator.env(), "RUNTIME__LOG_LEVEL": "DEBUG", "SOURCES__UP_JOBS__READ_TIMEOUT_SECONDS": "0.5"}
    args = ["run", "--jobs-file", str(faulty_emulator.jobs_file)]
    outputs = []
    for extra_env in ({"UP_JOBS_KILL_AT": "extracted"}, {}, {}):
        result = up_jobs_process(*args, env={**env, **extra_env}, cwd=tmp_path, timeout=300)
        outputs.append(result.stdout + result.stderr)
    assert result.returncode == 4  # 404s and quarantined records remain
    faulty_emulator.server.api_key = "rotated"
    result = up_jobs_process(*args, "--refresh", env=env, cwd=tmp_path)
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 3
    assert not any(SECRET_KEY in output for output in outputs)
    assert _files_containing(tmp_path, SECRET_KEY.encode()) == []
    with __import__("duckdb").connect(str(tmp_path / "up_jobs.duckdb"), read_only=True) as connection:
        assert connection.sql("select count(*) from telestream_up.quarantined_records").fetchall()[0][0] > 0


def test_every_command_and_option_is_documented_in_the_readme():
    """As sqlite-utils does: each command has --help and appears in the README with its options."""
    from pipeline.cli import build_parser

    readme = (REPO / "README.md").read_text()
    subcommands = build_parser()._subparsers._group_actions[0]  # argparse keeps them private
    described = {action.dest: action.help for action in subcommands._choices_actions}
    for name, parser in subcommands.choices.items():
        assert f"up-jobs {name}" in readme or f"--project-dir /opt/up-jobs {name}" in readme, name
        assert described.get(name), f"'up-jobs --help' gives no line for {name}"
        help_text = " ".join(parser.format_help().split())
        for action in parser._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    assert option in readme, f"{name} {option} is not in the README"
                    assert action.help and option in help_text, f"'up-jobs {name} --help' does not explain {option}"


def test_readme_commands_match_ci():
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci in (REPO / "README.md").read_text()
