"""README claims that had no test of their own (the code-health review listed them)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import duckdb
import pytest

from pipeline.cli import main
from pipeline.settings import ConfigError, validate_base_url


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
