"""Alerts as cron and a chat tool see them: the webhook against a real HTTP server on
127.0.0.1 (delivered once, not re-sent unchanged, resolved announced once, failing, hanging
and down), the ``up-jobs check`` command's output and exit codes, and ``run --check``."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from pipeline.alerts.check import run_check
from pipeline.alerts.config import AlertsConfiguration
from pipeline.alerts.state import STATE_FILE
from pipeline.cli import main
from tests.alerts_data import HOUR, NOW, Crafted, template_db
from tests.cli_runner import Result
from tests.cli_runner import up_jobs as run_up_jobs
from tests.conftest import start_emulator

TOKEN = "T0SECRET/B0HOOK/xoxTOKEN9f8e7d"


class Hook(ThreadingHTTPServer):
    """A Slack-like incoming webhook that records every POST; ``mode`` is ok, fail (500) or hang."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.mode = "ok"
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/{TOKEN}"

    def texts(self) -> list[str]:
        return [post["text"] for post in self.posts]


class _HookHandler(BaseHTTPRequestHandler):
    server: Hook

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        pass

    def do_POST(self) -> None:  # stdlib naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.attempts += 1
        if self.server.mode == "hang":
            self.server.release.wait(5)
            return
        if self.server.mode == "fail" or self.path != f"/services/{TOKEN}":
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.posts.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def crafted(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Crafted:
    return Crafted(template_db(tmp_path_factory), tmp_path)


def webhook_config(**settings: Any) -> AlertsConfiguration:
    config = AlertsConfiguration()
    config.webhook_timeout_seconds, config.webhook_max_attempts, config.webhook_backoff_seconds = 2.0, 2, 0.05
    config.duration_regression_enabled = config.failure_rate_enabled = config.stale_load_enabled = False
    for name, value in settings.items():
        setattr(config, name, value)
    return config


def files_containing(root: Path, needle: bytes, allowed: tuple[Path, ...] = ()) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p not in allowed and needle in p.read_bytes()]


def test_delivered_once_changes_reminders_and_resolved_once(crafted, hook, tmp_path):
    config = webhook_config(open_fetch_errors_max=2, resend_after_hours=24)
    stuck = crafted.job("wf-s", "in-process", age=7 * HOUR, job_id="stuckjob1")
    crafted.fetch_errors(3)

    def check(after: timedelta = timedelta(0)) -> Any:
        return run_check(crafted.write(), config, webhook_url=hook.url, now=NOW + after)

    first = check()
    assert (first.webhook.delivered, first.webhook.announced, first.webhook.resolved) == (True, 2, 0)
    [text] = hook.texts()
    assert text.startswith("up-jobs: 2 alerts firing")
    assert f"stuck job {stuck}" in text and "open fetch errors: 3 jobs could not be fetched > 2" in text
    assert (tmp_path / "up_jobs.duckdb.work" / STATE_FILE).is_file()

    again = check(timedelta(hours=1))  # nothing changed: nothing posted
    assert (again.webhook.delivered, len(again.alerts), len(hook.posts)) == (None, 2, 1)

    crafted.fetch_errors(1)  # 4 now: the changed alert alone is announced
    changed = check(timedelta(hours=2))
    assert changed.webhook.announced == 1 and len(hook.posts) == 2
    assert "open fetch errors: 4 jobs" in hook.texts()[1] and stuck not in hook.texts()[1]

    early = check(timedelta(hours=25))  # the stuck job's day is up, not the changed alert's
    assert early.webhook.announced == 1 and len(hook.posts) == 3 and stuck in hook.texts()[2]
    reminder = check(timedelta(hours=26, minutes=1))  # and now the other's
    assert reminder.webhook.announced == 1 and len(hook.posts) == 4 and "open fetch errors" in hook.texts()[3]

    crafted.jobs.clear()
    crafted.errors.clear()
    resolved = check(timedelta(hours=27))
    assert (resolved.alerts, resolved.webhook.resolved, len(hook.posts)) == ([], 2, 5)
    assert hook.texts()[4].count("• resolved: ") == 2 and f"stuck job {stuck}" in hook.texts()[4]

    quiet = check(timedelta(hours=28))
    assert (quiet.webhook.delivered, len(hook.posts)) == (None, 5)
    assert files_containing(tmp_path, TOKEN.encode()) == []


def test_a_failing_webhook_keeps_the_alert_and_the_next_run_delivers_it(crafted, hook):
    crafted.fetch_errors(1)
    db = crafted.write()
    hook.mode = "fail"
    failed = run_check(db, webhook_config(), webhook_url=hook.url, now=NOW)
    assert [a.rule for a in failed.alerts] == ["open_fetch_errors"]
    assert (failed.webhook.delivered, failed.webhook.error) == (False, "webhook answered HTTP 500 after 2 attempts")
    assert hook.attempts == 2  # retried
    assert not (db.parent / "up_jobs.duckdb.work" / STATE_FILE).exists()
    hook.mode = "ok"
    delivered = run_check(db, webhook_config(), webhook_url=hook.url, now=NOW)
    assert delivered.webhook.delivered is True and len(hook.posts) == 1


def test_a_hanging_webhook_times_out_and_a_closed_port_is_reported(crafted, hook):
    crafted.fetch_errors(1)
    db = crafted.write()
    hook.mode = "hang"
    started = time.monotonic()
    hung = run_check(db, webhook_config(webhook_timeout_seconds=0.3), webhook_url=hook.url, now=NOW)
    assert time.monotonic() - started < 3
    assert hung.webhook.error == "webhook timed out (0.3 s) after 2 attempts"
    assert [a.rule for a in hung.alerts] == ["open_fetch_errors"]
    closed = f"http://127.0.0.1:{hook.server_address[1]}/services/{TOKEN}"
    hook.release.set()
    hook.shutdown()
    hook.server_close()
    down = run_check(db, webhook_config(), webhook_url=closed, now=NOW)
    assert down.webhook.error == "webhook unreachable (connection failed) after 2 attempts"


def up_jobs(*args: str, cwd: Path) -> Result:
    """The command as cron runs it, reading .dlt/ from --project-dir (in-process, as a fresh process would)."""
    return run_up_jobs(*args, env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}, cwd=cwd)


def command(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``up-jobs ARGS`` through the CLI's own entry point, in this process (a subprocess costs ~2 s)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_command_exit_codes_text_and_json(crafted, hook, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALERTS__WEBHOOK_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("ALERTS__WEBHOOK_BACKOFF_SECONDS", "0.05")
    crafted.completed("wf-a", 3)
    db = str(crafted.write())
    assert command(capsys, "check", "--db", db) == (0, "", "")  # quiet when all is well: cron mails nothing

    crafted.fetch_errors(2)
    # 7 h before the command's clock, not before NOW (fixed at import: minutes earlier in a long run)
    since_now = (datetime.now(timezone.utc) - NOW).total_seconds()
    crafted.job("wf-s", "in-process", age=7 * HOUR - since_now, job_id="stuckjob2")
    crafted.write()
    code, out, _ = command(capsys, "check", "--db", db)
    assert code == 6
    assert out.splitlines() == [
        "ALERT stuck job stuckjob2 in workflow 'wf-s name' (wf-s): in-process for 7.0 h > 6.0 h (limit) (see telestream_up.running_jobs)",
        "ALERT open fetch errors: 2 jobs could not be fetched > 0 (see telestream_up.open_fetch_errors)",
    ]
    code, out, _ = command(capsys, "check", "--db", db, "--format", "json")
    payload = json.loads(out)
    assert code == 6 and set(payload) == {"database", "checked_at", "alerts", "webhook", "warnings"}
    assert [(a["rule"], a["key"], a["job_id"], a["view"], a["threshold"]) for a in payload["alerts"]] == [
        ("stuck_jobs", "stuck_jobs:stuckjob2", "stuckjob2", "telestream_up.running_jobs", 6 * HOUR),
        ("open_fetch_errors", "open_fetch_errors:all", None, "telestream_up.open_fetch_errors", 0),
    ]
    assert 7 * HOUR <= payload["alerts"][0]["value"] < 7 * HOUR + 600 and payload["alerts"][1]["value"] == 2
    assert payload["webhook"]["configured"] is False

    hook.mode = "fail"  # a failing webhook: the alerts still print and the exit code stands
    code, out, err = command(capsys, "check", "--db", db, "--webhook", hook.url)
    assert code == 6 and out.count("ALERT ") == 2
    assert out.splitlines()[-1] == (
        "webhook: NOT delivered: webhook answered HTTP 500 after 2 attempts; the next check tries again")
    assert TOKEN not in out + err

    assert command(capsys, "check", "--db", str(tmp_path / "nope.duckdb"))[0] == 2
    code, _, err = command(capsys, "check", "--db", db, "--webhook", f"http://example.com/{TOKEN}")
    assert code == 2 and "must use https" in err and TOKEN not in err


def test_check_reads_the_project_config_and_the_url_from_secrets(crafted, hook, tmp_path):
    crafted.fetch_errors(2)
    db = crafted.write()
    project = tmp_path / "project"
    (project / ".dlt").mkdir(parents=True)
    (project / ".dlt" / "config.toml").write_text("[alerts]\nopen_fetch_errors_max = 1\nstuck_jobs_enabled = false\nfailure_rate_mx = 0.1\n")
    secrets = project / ".dlt" / "secrets.toml"
    secrets.write_text(f'[alerts]\nwebhook_url = "{hook.url}"\n')
    sent = up_jobs("--project-dir", str(project), "check", "--db", str(db), cwd=tmp_path)
    assert sent.returncode == 6, sent.stderr
    assert sent.stdout.splitlines() == [
        "ALERT open fetch errors: 2 jobs could not be fetched > 1 (see telestream_up.open_fetch_errors)",
        "webhook: announced 1 alert(s), 0 resolved",
        f"warning: {project / '.dlt' / 'config.toml'}: unknown key alerts.failure_rate_mx ignored (did you mean failure_rate_max?)",
    ]
    assert hook.texts() == ["up-jobs: 1 alert firing\n• open fetch errors: 2 jobs could not be fetched > 1 "
                            "(see telestream_up.open_fetch_errors)"]
    assert TOKEN not in sent.stdout + sent.stderr
    assert files_containing(tmp_path, TOKEN.encode(), allowed=(secrets,)) == []


def test_run_check_loads_then_checks_in_one_command(tmp_path, hook, monkeypatch, capsys):
    for emulated in start_emulator(tmp_path, jobs=20, seed=4):
        for name, value in emulated.env().items():
            if name.startswith("SOURCES__"):
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("ALERTS__STUCK_JOBS_ENABLED", "false")
        monkeypatch.setenv("ALERTS__DURATION_REGRESSION_ENABLED", "false")
        monkeypatch.setenv("ALERTS__FAILURE_RATE_ENABLED", "false")
        code, out, err = command(capsys, "run", "--check", "--jobs-file", str(emulated.jobs_file))
        assert code == 0, err
        lines = out.splitlines()
        assert lines[-1] == "check: no alerts" and " finished in " in lines[-2]  # the check comes after the load
        assert f"database: {tmp_path / 'up_jobs.duckdb'}" in lines
        for name, value in (("ENABLED", "true"), ("MAX", "0"), ("MIN_JOBS", "1"), ("HOURS", "2000")):
            monkeypatch.setenv(f"ALERTS__FAILURE_RATE_{name}", value)
        monkeypatch.setenv("ALERTS__WEBHOOK_URL", hook.url)
        code, out, err = command(capsys, "run", "--check", "--jobs-file", str(emulated.jobs_file))
        assert code == 6, err
        assert out.splitlines()[-2].startswith("ALERT failure rate workflow ")
        assert out.splitlines()[-1].startswith("webhook: announced ") and len(hook.posts) == 1
        assert TOKEN not in out + err and files_containing(tmp_path, TOKEN.encode()) == []  # dlt's trace included


def test_overlapping_checks_announce_once(crafted, hook):
    """``run --check`` and an hourly ``check`` at the same moment: one post, not two."""
    crafted.fetch_errors(1)
    db = crafted.write()
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(run_check(db, webhook_config(), webhook_url=hook.url, now=NOW)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 3 and all(r.alerts for r in results)
    assert len(hook.posts) == 1
    assert sorted(str(r.webhook.delivered) for r in results) == ["None", "None", "True"]
