"""README claims that had no test of their own (the code-health review listed them)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import duckdb
import pytest

from pipeline.cli import main
from pipeline.fetch import fetch_concurrently
from pipeline.job_ids import JobRef
from pipeline.settings import ConfigError, validate_base_url
from pipeline.views import view_files
from tests.conftest import REPO, SECRET_KEY, postgres_available, start_emulator


def _in_process(emulator, monkeypatch, *args: str) -> int:
    for name, value in emulator.env().items():
        if name.startswith("SOURCES__"):
            monkeypatch.setenv(name, value)
    return main(["run", "--jobs-file", str(emulator.jobs_file), *args])


def test_a_403_stops_the_run_with_exit_3_and_names_the_cause(emulator, monkeypatch, capsys):
    emulator.store.put_raw(emulator.store.refs()[5], 403, b'{"error": "forbidden"}')
    assert _in_process(emulator, monkeypatch) == 3
    assert "lacks access to this space" in capsys.readouterr().err


def test_requests_in_flight_never_exceed_the_concurrency_and_connections_are_reused(emulator, monkeypatch):
    emulator.server.latency_seconds = 0.05
    assert _in_process(emulator, monkeypatch, "--concurrency", "4") == 0
    assert 2 <= emulator.server.most_in_flight <= 4
    assert emulator.server.connections_opened <= 4  # one keep-alive connection per worker, 60 requests


@pytest.mark.parametrize(
    "url",
    ["https://user:secret@api.example.net/v1", "https://api.example.net/v1?x=1", "http://api.example.net/v1", "ftp://x/v1"],
)
def test_base_urls_with_credentials_a_query_or_plain_http_elsewhere_are_refused(url):
    with pytest.raises(ConfigError) as refused:
        validate_base_url(url)
    assert "secret" not in str(refused.value)


def test_the_demo_refuses_to_reset_a_database_holding_real_jobs(tmp_path, capsys):
    db = tmp_path / "mine.duckdb"
    with duckdb.connect(str(db)) as connection:
        connection.execute("create schema telestream_up; create table telestream_up.workflow_jobs as select 'real-space' as space_id")
    assert main(["demo", "--db", str(db), "--jobs", "20"]) == 2
    assert "holds non-demo jobs" in capsys.readouterr().err and db.exists()


def test_sigint_ends_a_run_with_130(emulator, tmp_path):
    emulator.server.latency_seconds = 0.2
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", "--jobs-file", str(emulator.jobs_file), "--concurrency", "2"],
        env=emulator.env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while emulator.store.total_requests < 2:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted by SIGINT" in stderr


def test_at_most_twice_the_concurrency_is_requested_ahead_of_the_consumer():
    """Memory stays flat: the job list is read no further than 2 x N jobs ahead of what dlt consumed."""
    taken = 0

    def job_list():
        nonlocal taken
        for number in range(200):
            taken += 1
            yield JobRef("s", "w", f"job{number}")

    class Client:  # answers at once; the bound must come from the submitting, not from slow workers
        def fetch(self, ref: JobRef) -> JobRef:
            return ref

        def abort(self) -> None:
            pass

    ahead = []
    for consumed, _ in enumerate(fetch_concurrently(Client(), job_list(), concurrency=4), start=1):
        ahead.append(taken - consumed)
        time.sleep(0.0005)  # a consumer slower than the workers: they would run ahead if nothing held them
    assert len(ahead) == 200 and max(ahead) <= 2 * 4


def test_the_emulator_command_prints_what_a_run_needs(tmp_path, monkeypatch, capsys):
    """`up-jobs emulator` prints a base URL, the key it accepts and a jobs CSV; a run using exactly those loads every job."""
    server = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "emulator", "--port", "0", "--jobs", "12", "--seed", "5"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = []
        while not printed or printed[-1] != "Ctrl-C to stop.":
            line = server.stdout.readline()
            assert line, f"the emulator ended early: {server.stderr.read()}"
            printed.append(line.rstrip("\n"))
        words = " ".join(printed[printed.index("Point a run at it:") + 1:-1]).replace("\\", " ").split()
        for assignment in words[:words.index("up-jobs")]:
            name, value = assignment.split("=", 1)
            monkeypatch.setenv(name, value)
        run_args = words[words.index("up-jobs") + 1:]
        db = tmp_path / "from_printed.duckdb"
        assert main([*run_args, "--db", str(db)]) == 0, capsys.readouterr()
        with duckdb.connect(str(db), read_only=True) as connection:
            assert connection.sql("select count(*) from telestream_up.workflow_jobs").fetchall() == [(12,)]
        assert re.fullmatch(r"UP emulator serving 12 jobs at http://127\.0\.0\.1:\d+/v1", printed[0]), printed[0]
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0


needs_postgres = pytest.mark.skipif(not postgres_available(), reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")


@needs_postgres
def test_destination_from_config_and_a_view_that_cannot_be_applied(tmp_path, postgres_database, monkeypatch, capsys):
    """`destination` in [sources.up_jobs] (no --destination) loads into the warehouse; later a view that
    cannot be applied there ends the run with exit 1 naming it, and the data is loaded all the same."""
    for emulator in start_emulator(tmp_path, jobs=30, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        for name, value in emulator.env().items():
            if name.startswith("SOURCES__"):
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("SOURCES__UP_JOBS__DESTINATION", "postgres")
        args = ["run", "--jobs-file", str(emulator.jobs_file)]
        assert main(args) == 0, capsys.readouterr()
        assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(30,)]
        assert not (tmp_path / "up_jobs.duckdb").exists()

        # something of the user's took a view's name: that view cannot be created there
        emulator.query("drop view telestream_up.running_jobs; create table telestream_up.running_jobs (x int); select 1")
        changed = emulator.store.advance(fraction=1.0, seed=3)
        assert changed
        capsys.readouterr()
        assert main(args) == 1
        error = capsys.readouterr().err
        assert "sql/running_jobs.sql" in error and "1 view(s) not applied" in error, error
        finished = {ref.job_id for ref in changed if emulator.store.get(ref)["state"] == "succeeded"}
        loaded = {row[0] for row in emulator.query("select id from telestream_up.workflow_jobs where state = 'succeeded'")}
        assert finished and finished <= loaded  # the data itself is loaded
        assert emulator.query("select count(*) from telestream_up.workflow_duration_stats") != [(0,)]  # the other views


def test_the_installed_package_runs_outside_the_source_tree(emulator, tmp_path):
    """The wheel `pip install .` installs (no source tree on the path): the console script and the views ship in it."""
    source = tmp_path / "source"  # a copy: building writes build/ beside pyproject.toml, and a stale one would hide a loss
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("pipeline", "sql"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
         str(source)], capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = (tmp_path / "dist").glob("up_jobs-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        entry_points = next(name for name in archive.namelist() if name.endswith("entry_points.txt"))
        assert "up-jobs = pipeline.cli:entry" in archive.read(entry_points).decode()
    shipped = sorted(path.name for path in (site / "pipeline" / "sql").glob("*.sql"))
    assert shipped == sorted(path.name for path in view_files())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**emulator.env(), "PYTHONPATH": str(site)}  # ahead of the editable install's finder
    code = "import pipeline, sys; from pipeline.cli import main; print(pipeline.__file__, flush=True); sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "run", "--jobs-file", str(emulator.jobs_file)], env=env,
                            cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(site / "pipeline")), result.stdout.splitlines()[0]
    assert re.search(rf"^views updated +{len(shipped)} ", result.stdout, re.M), result.stdout
