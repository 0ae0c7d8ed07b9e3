"""A hostile server: no single response stops the pipeline, blocks a later run, or leaks the key.

One scenario runs the real CLI twice against a server where every odd behaviour sits beside
good jobs at once (the cheapest honest test: each odd job could take the others down). Each
case is then checked on its own: the good jobs loaded, the odd one accounted for (loaded with
the odd part made safe, or in fetch_errors / quarantined_records), and the second run, against
the same server, still loads the good jobs' changes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.demo import write_jobs_csv
from pipeline.job_ids import JobRef
from tests.cli_runner import Result, up_jobs
from tests.conftest import REPO
from tests.hostile import HostileServer, Request, json_response, raw_response, stall

KEY = "sk-HOSTILE-7c1e0d9b8a-NEVER-STORE"
SPACE, WORKFLOW = "space-h", "wf-good"
GOOD_JOBS = 12
DEADLINE_SECONDS = 1.5


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _body(job_id: str, updated_at: datetime, progress: float = 40.0, **extra: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "name": f"job {job_id}",
        "workflow_id": WORKFLOW,
        "workflow_name": "Good workflow",
        "workflow_version": "3",
        "state": "in-process",
        "progress": progress,
        "created_at": _timestamp(updated_at - timedelta(minutes=5)),
        "updated_at": _timestamp(updated_at),
        "elapsed_time": None,
        **extra,
    }


def _echo(request: Request) -> str:
    return request.headers.get("authorization", "")


def _conflicting_length(request: Request) -> None:
    payload = json.dumps(request.body).encode()
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\nContent-Length: {len(payload) + 7}\r\nConnection: close\r\n\r\n"
    request.sock.sendall(head.encode() + payload)
    return None


def _with_text(template: str) -> Any:
    """A 200 whose JSON is written by hand (values json.dumps cannot produce)."""
    return lambda request: raw_response(template.replace("@ID@", request.ref.job_id).replace("@WF@", WORKFLOW))


_VALID_PREFIX = '{"id": "@ID@", "workflow_id": "@WF@", "state": "in-process", "updated_at": "2026-11-01T10:00:00Z"'

# case → (what the server does, what becomes of the job: loaded | quarantined | failed)
CASES: dict[str, tuple[Any, str]] = {
    "stalled-body": (stall(0.5), "failed"),
    "empty-key": (lambda r: json_response({**r.body, "": "empty"}), "loaded"),
    "camel-space-id": (lambda r: json_response({**r.body, "spaceId": "other"}), "loaded"),
    "camel-updated-at": (lambda r: json_response({**r.body, "updatedAt": "yesterday"}), "loaded"),
    "upper-id": (lambda r: json_response({**r.body, "ID": "X"}), "loaded"),
    "dashed-workflow-id": (lambda r: json_response({**r.body, "workflow-id": "wf-x"}), "loaded"),
    "foo-and-Foo": (lambda r: json_response({**r.body, "Foo": 1, "foo": "2"}), "loaded"),
    "elapsed-seconds": (lambda r: json_response({**r.body, "elapsedSeconds": 3}), "loaded"),
    "updated-at-overflows": (lambda r: json_response({**r.body, "updated_at": "9999-12-31T23:00:00-05:00"}), "quarantined"),
    "int-beyond-int64": (lambda r: json_response({**r.body, "counter": 2**64}), "loaded"),
    "progress-400-digits": (_with_text(_VALID_PREFIX + ', "progress": 1' + "0" * 400 + "}"), "quarantined"),
    "lone-surrogate": (_with_text(_VALID_PREFIX + ', "name": "bad \\ud800 name", "note": "\\udfff"}'), "loaded"),
    "nul-in-text": (_with_text(_VALID_PREFIX + ', "name": "a\\u0000b"}'), "loaded"),
    "flip-int": (lambda r: json_response({**r.body, "priority": 1}), "loaded"),
    "flip-float": (lambda r: json_response({**r.body, "priority": 5.7}), "loaded"),
    "flip-text": (lambda r: json_response({**r.body, "priority": "abc"}), "loaded"),
    "deep-nesting": (lambda r: json_response({**r.body, "deep": json.loads("[" * 300 + "]" * 300)}), "loaded"),
    "bad-gzip": (lambda r: raw_response(b"\x1f\x8b not gzip at all", headers={"Content-Encoding": "gzip"}), "failed"),
    "bad-deflate": (lambda r: raw_response(b"not deflate", headers={"Content-Encoding": "deflate"}), "failed"),
    "two-content-lengths": (_conflicting_length, "failed"),
    "retry-after-superscript": (
        lambda r: json_response({"error": "slow"}, 429, {"Retry-After": "²"}) if r.attempt == 1 else json_response(r.body),
        "loaded",
    ),
    "echo-key-404": (lambda r: json_response({"error": "not found", "you_sent": _echo(r)}, 404), "failed"),
    "echo-key-html-200": (lambda r: raw_response(f"<html>proxy saw {_echo(r)}</html>", headers={"X-Echo": _echo(r)}), "quarantined"),
    "echo-key-in-fields": (
        lambda r: raw_response(
            json.dumps({**r.body, "name": _echo(r), "debug": {"key": _echo(r)[7:]}})
            .replace(KEY, "".join(f"\\u{ord(c):04x}" for c in KEY), 1).encode(),
            headers={"X-Echo": _echo(r)},
        ),
        "loaded",
    ),
    "other-workflow": (lambda r: json_response({**r.body, "workflow_id": "wf-other"}), "quarantined"),
    "no-workflow-id": (lambda r: json_response({key: v for key, v in r.body.items() if key != "workflow_id"}), "loaded"),
    "future-updated-at": (lambda r: json_response({**r.body, "updated_at": "2999-01-01T00:00:00Z"}), "loaded"),
}


class Scenario:
    """Two real CLI runs against one hostile server; everything the tests check afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = root / "up_jobs.duckdb"
        now = datetime.now(timezone.utc) - timedelta(minutes=30)
        self.good = [f"good-{index:02d}" for index in range(GOOD_JOBS)]
        self.odd = {name: f"odd-{name}" for name in CASES}
        bodies = {job_id: _body(job_id, now) for job_id in [*self.good, *self.odd.values()]}
        behaviours = {self.odd[name]: behaviour for name, (behaviour, _) in CASES.items()}
        refs = [JobRef(SPACE, WORKFLOW, job_id) for job_id in bodies]
        self.jobs_file = write_jobs_csv(refs, root / "jobs.csv")
        self.server = HostileServer(bodies, behaviours, KEY)
        self.outputs: list[Result] = []
        self.seconds: list[float] = []

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DLT_DATA_DIR": str(self.root / "dlt_data"),
            "SOURCES__UP_JOBS__BASE_URL": self.server.base_url,
            "SOURCES__UP_JOBS__API_KEY": KEY,
            "SOURCES__UP_JOBS__MAX_ATTEMPTS": "2",
            "SOURCES__UP_JOBS__BACKOFF_SECONDS": "0.05",
            "SOURCES__UP_JOBS__MAX_BACKOFF_SECONDS": "0.2",
            "SOURCES__UP_JOBS__REQUEST_DEADLINE_SECONDS": str(DEADLINE_SECONDS),
        }

    def run(self) -> Result:
        started = time.monotonic()
        result = up_jobs("run", "--jobs-file", str(self.jobs_file), env=self.env(), cwd=self.root)
        self.seconds.append(time.monotonic() - started)
        self.outputs.append(result)
        return result

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db), read_only=True) as connection:
            return connection.sql(sql).fetchall()


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("hostile")
    scenario = Scenario(root)
    with scenario.server:
        scenario.run()
        scenario.first = {
            "jobs": dict(scenario.query("select id, updated_at from telestream_up.workflow_jobs")),
            "errors": dict(scenario.query("select job_id, error_kind from telestream_up.open_fetch_errors")),
            "problems": scenario.query("select job_id, problem from telestream_up.data_quality_issues"),
        }
        later = datetime.now(timezone.utc) - timedelta(minutes=1)
        for job_id in scenario.good:  # the good jobs move on; the second run must load that
            scenario.server.bodies[job_id] = _body(job_id, later, progress=90.0)
        fixed = scenario.odd["future-updated-at"]
        scenario.server.bodies[fixed] = _body(fixed, later, progress=90.0)
        del scenario.server.behaviours[fixed]  # the server's clock is fixed
        scenario.run()
    yield scenario


def test_first_run_finishes_with_per_job_outcomes_within_the_deadline(scenario):
    first = scenario.outputs[0]
    assert first.returncode == 4, first.stderr  # some jobs failed: reported, not aborted
    assert "run aborted" not in first.stderr
    # the stalled job costs at most max_attempts deadlines plus backoff, not forever
    assert scenario.seconds[0] < 2 * DEADLINE_SECONDS + 25


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_odd_job_is_accounted_for_and_the_good_ones_load(scenario, case):
    job_id, expected = scenario.odd[case], CASES[case][1]
    assert set(scenario.good) <= set(scenario.first["jobs"]), "a good job was not loaded beside the odd one"
    loaded, errors = scenario.first["jobs"], scenario.first["errors"]
    if expected == "loaded":
        assert job_id in loaded and job_id not in errors
    else:
        assert job_id not in loaded and job_id in errors
    if expected == "quarantined":
        assert errors[job_id] == "malformed"
        assert scenario.query(f"select count(*) from telestream_up.quarantined_records where job_id = '{job_id}'")[0][0] >= 1


def test_second_run_against_the_same_server_loads_the_good_jobs_changes(scenario):
    second = scenario.outputs[1]
    assert second.returncode == 4, second.stderr
    progress = dict(scenario.query("select id, progress from telestream_up.workflow_jobs"))
    assert all(progress[job_id] == 90.0 for job_id in scenario.good)


def test_odd_values_are_stored_safely(scenario):
    rows = {
        row[0]: row[1:]
        for row in scenario.query("select id, name, workflow_id, extra_fields from telestream_up.workflow_jobs")
    }
    odd = scenario.odd
    assert json.loads(rows[odd["empty-key"]][2]) == {"": "empty"}
    assert json.loads(rows[odd["foo-and-Foo"]][2]) == {"Foo": 1, "foo": "2"}
    assert json.loads(rows[odd["int-beyond-int64"]][2]) == {"counter": 2**64}
    assert [json.loads(rows[odd[f"flip-{kind}"]][2])["priority"] for kind in ("int", "float", "text")] == [1, 5.7, "abc"]
    assert rows[odd["lone-surrogate"]][0] == "bad \ufffd name"
    assert rows[odd["nul-in-text"]][0] == "a\ufffdb"
    assert rows[odd["no-workflow-id"]][1] == WORKFLOW


def test_stalled_job_is_a_deadline_error(scenario):
    message = scenario.query(
        f"select message from telestream_up.open_fetch_errors where job_id = '{scenario.odd['stalled-body']}'"
    )[0][0]
    assert f"{DEADLINE_SECONDS:g}s request deadline" in message


def test_future_updated_at_is_reported_then_replaced_when_the_server_is_fixed(scenario):
    job_id = scenario.odd["future-updated-at"]
    assert scenario.first["jobs"][job_id].year == 2999
    assert "updated_at in the future" in scenario.outputs[0].stdout
    assert (job_id, "updated_at_in_future") in scenario.first["problems"]
    held = scenario.query(f"select updated_at, progress from telestream_up.workflow_jobs where id = '{job_id}'")
    assert held[0][0].year == 2026 and held[0][1] == 90.0


def test_the_key_is_in_no_output_and_no_file(scenario):
    for result in scenario.outputs:
        assert KEY not in result.stdout + result.stderr
    leaks = [path for path in scenario.root.rglob("*") if path.is_file() and KEY.encode() in path.read_bytes()]
    assert leaks == []
    # DuckDB compresses strings on disk, so also look at every stored value
    with duckdb.connect(str(scenario.db), read_only=True) as connection:
        tables = connection.sql(
            "select table_name from information_schema.tables where table_schema = 'telestream_up' and table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            text = str(connection.sql(f"select * from telestream_up.{table}").fetchall())
            assert KEY not in text and "\\\\u0073k-HOSTILE" not in text, table


def test_sigterm_ends_a_run_stuck_on_stalled_responses_promptly(tmp_path):
    now = datetime.now(timezone.utc)
    bodies = {f"stall-{index}": _body(f"stall-{index}", now) for index in range(4)}
    with HostileServer(bodies, {job_id: stall(1.0) for job_id in bodies}, KEY) as server:
        scenario = Scenario.__new__(Scenario)
        scenario.root, scenario.server = tmp_path, server
        jobs_file = write_jobs_csv([JobRef(SPACE, WORKFLOW, job_id) for job_id in bodies], tmp_path / "jobs.csv")
        env = {**scenario.env(), "SOURCES__UP_JOBS__REQUEST_DEADLINE_SECONDS": "600"}
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "run", "--jobs-file", str(jobs_file)],
            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 30
        while sum(server.requests.values()) < 4:
            assert time.monotonic() < deadline and process.poll() is None, "the run never reached the server"
            time.sleep(0.05)
        time.sleep(0.5)  # every worker is now blocked reading a trickling body
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        assert process.returncode == 130, stderr
        assert time.monotonic() - signalled < 5
        assert "interrupted" in stderr
