"""Faults from the API: each has a defined outcome, nothing is lost, nothing is duplicated."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pipeline.emulator import FaultPlan
from pipeline.emulator.faults import MALFORMED_KINDS
from pipeline.emulator.server import malformed_payload
from pipeline.http import RateGate, parse_retry_after
from tests.conftest import start_emulator
from tests.test_pipeline_e2e import seconds_between_timestamps


@pytest.fixture
def emulator(any_emulator):
    """End-to-end fault tests run against DuckDB and against a live Postgres."""
    return any_emulator


FAST_RETRIES = {"max_attempts": 6, "read_timeout_seconds": 0.5, "backoff_seconds": 0.05, "max_backoff_seconds": 0.4}


def _loaded(emulator) -> dict[str, tuple]:
    rows = emulator.query("select id, state, updated_at, elapsed_seconds from telestream_up.workflow_jobs")
    return {row[0]: row[1:] for row in rows}


def _open_errors(emulator) -> dict[str, str]:
    return dict(emulator.query("select job_id, error_kind from telestream_up.open_fetch_errors"))


def test_fault_matrix_loses_and_duplicates_nothing(faulty_emulator):
    emulator, plan = faulty_emulator, faulty_emulator.server.faults
    refs = emulator.store.refs()
    permanent = {ref.job_id: plan.permanent_fault(ref.path()) for ref in refs}
    assert {"not_found", "malformed"} <= set(permanent.values()), "the plan must hold both permanent faults"
    first = emulator.run(settings=FAST_RETRIES)
    second = emulator.run(settings=FAST_RETRIES)

    loaded, open_errors = _loaded(emulator), _open_errors(emulator)
    assert emulator.query("select count(*) - count(distinct id) from telestream_up.workflow_jobs") == [(0,)]
    assert set(loaded) | set(open_errors) == {ref.job_id for ref in refs}, "a job was lost"
    assert not set(loaded) & set(open_errors)
    assert {job for job, fault in permanent.items() if fault} == set(open_errors)
    assert {job: kind for job, kind in open_errors.items()} == {
        job: ("not_found" if fault == "not_found" else "malformed") for job, fault in permanent.items() if fault
    }
    for ref in refs:
        if ref.job_id in loaded:
            body = emulator.store.get(ref)
            state, _, elapsed = loaded[ref.job_id]
            assert state == body["state"]
            expected = seconds_between_timestamps(body) if body["elapsed_time"] else None  # not the parser's answer
            assert elapsed == (pytest.approx(expected, abs=1e-6) if expected is not None else None)
    quarantined = emulator.query("select count(distinct job_id) from telestream_up.quarantined_records")[0][0]
    assert quarantined == sum(fault == "malformed" for fault in permanent.values())
    assert first.stats.requests > first.stats.fetched, "transient faults should have caused retries"
    assert first.has_problems and second.count("loaded") + first.count("loaded") == len(loaded)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_body_is_quarantined_and_the_rest_load(emulator, kind):
    bad_ref = emulator.store.refs()[0]
    status, payload, _ = malformed_payload(kind, emulator.store.get(bad_ref), bad_ref.job_id)
    emulator.store.put_raw(bad_ref, status, payload)
    summary = emulator.run()
    assert summary.count("quarantined") == 1 and summary.count("loaded") == 59
    reason, payload_bytes, stored, load_id = emulator.query(
        "select reason, payload_bytes, payload, _dlt_load_id from telestream_up.quarantined_records"
    )[0]
    assert reason and len(stored) <= 8192
    # an oversized body is read only up to the cap (+1 byte to detect it), never fully into memory
    assert payload_bytes == (1_048_577 if kind == "oversized" else len(payload))
    assert load_id == summary.load_id
    assert _open_errors(emulator) == {bad_ref.job_id: "malformed"}


def test_404_is_recorded_and_the_run_goes_on(emulator, tmp_path):
    from pipeline.demo import write_jobs_csv
    from pipeline.job_ids import JobRef

    ghost = JobRef("demo-space", "wf", "0" * 32)
    write_jobs_csv([*emulator.store.refs(), ghost], emulator.jobs_file)
    summary = emulator.run()
    assert summary.count("failed") == 1 and summary.count("loaded") == 60
    assert emulator.query("select job_id, error_kind, http_status, attempts from telestream_up.fetch_errors") == [
        (ghost.job_id, "not_found", 404, 1)
    ]


def test_exhausted_retries_are_recorded_then_recovered(tmp_path):
    plan = FaultPlan(seed=1, rates={"server_error": 1.0})
    for emulator in start_emulator(tmp_path, jobs=10, faults=plan):
        summary = emulator.run(settings={"max_attempts": 3})
        assert summary.count("failed") == 10 and emulator.store.total_requests == 30
        kinds = emulator.query("select distinct error_kind, attempts from telestream_up.fetch_errors")
        assert kinds == [("retries_exhausted", 3)]
        emulator.server.faults = FaultPlan()
        summary = emulator.run()
        assert summary.count("loaded") == 10 and summary.stats.recovered == 10
        assert _open_errors(emulator) == {}


def test_total_wait_budget_bounds_a_run(tmp_path):
    plan = FaultPlan(seed=1, rates={"rate_limited": 1.0}, retry_after_seconds=30)
    for emulator in start_emulator(tmp_path, jobs=3, faults=plan):
        summary = emulator.run(settings={"max_total_wait_seconds": 1.0})
        assert summary.count("failed") == 3 and summary.seconds < 10
        messages = [row[0] for row in emulator.query("select message from telestream_up.fetch_errors")]
        assert all("budget" in message for message in messages)


def test_429_makes_every_worker_wait(tmp_path):
    """Once one worker sees Retry-After, no worker sends anything until it has passed: the server sees
    a silence of about Retry-After, where workers that ignored the pause would keep it busy (120 jobs
    at 100 ms on 8 workers are 1.5 s of steady traffic)."""
    for emulator in start_emulator(tmp_path, jobs=120, latency_ms=100):
        first = emulator.store.refs()[0]
        emulator.store.put_raw(first, 429, b'{"error": "rate_limited"}', {"Retry-After": "1"})

        def serve_normally_after_the_429() -> None:  # not after a fixed time: a slow start could miss the 429
            while emulator.store.attempts(first.path()) == 0:
                time.sleep(0.01)
            emulator.store.clear_raw(first)

        threading.Thread(target=serve_normally_after_the_429, daemon=True).start()
        summary = emulator.run(concurrency=8, settings={"max_attempts": 4})
        assert summary.count("loaded") == 120
        first_requests = [moment for moment, path in emulator.store.request_times if path == first.path()]
        assert len(first_requests) == 2 and first_requests[1] - first_requests[0] >= 0.95  # the rate-limited job waited its Retry-After
        # a silence measured where it begins (the moment the client took the 429 in), not from the server's
        # clock of the 429: on a loaded machine requests already past the gate may still land just after it
        after = sorted(moment for moment, _ in emulator.store.request_times if moment >= first_requests[0])
        silence = max(later - earlier for earlier, later in zip(after, after[1:]))
        assert silence >= 0.6, f"longest silence after the 429: {silence:.2f} s: workers went on during Retry-After"


def test_rate_gate_holds_every_caller_for_the_longest_retry_after():
    now = [100.0]
    gate = RateGate(clock=lambda: now[0])
    gate.hold_for(2.0)
    gate.hold_for(0.5)  # a shorter Retry-After never shortens the pause
    assert gate.remaining() == 2.0
    now[0] += 1.5
    assert gate.remaining() == 0.5

    class AdvancingStop(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            now[0] += timeout or 0
            return False

    assert gate.wait(AdvancingStop()) == 0.5 and gate.remaining() == 0


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 7 ", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), (None, None), ("", None)],
)
def test_retry_after_forms(header, expected):
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_in_the_future():
    assert parse_retry_after("Thu, 01 Jan 2099 00:00:10 GMT", now=4070908800.0) == pytest.approx(10.0)


def test_truncated_json_does_not_fail_the_extract(emulator):
    ref = emulator.store.refs()[3]
    emulator.store.put_raw(ref, 200, json.dumps(emulator.store.get(ref)).encode()[:40])
    summary = emulator.run()
    assert summary.count("loaded") == 59 and summary.count("quarantined") == 1
