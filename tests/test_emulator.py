"""The emulator is part of the product: it must behave like the UP API and stay consistent."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest
import requests

from pipeline.emulator import EmulatorServer, FaultPlan, JobStore, generate_jobs
from pipeline.emulator.generator import STATE_WEIGHTS
from pipeline.timespan import parse_timespan_seconds

KEY = "k"


def _get(server: EmulatorServer, path: str, key: str | None = KEY, session=requests) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return session.get(f"{server.base_url}/{path}", headers=headers, timeout=5)


@pytest.fixture
def server():
    with EmulatorServer(JobStore(generate_jobs(300, seed=4)), api_key=KEY) as running:
        yield running


def test_generated_jobs_cover_all_states_and_are_consistent():
    jobs = generate_jobs(600, seed=9)
    states = {body["state"] for _, body in jobs}
    assert states == set(STATE_WEIGHTS)
    assert len({ref.job_id for ref, _ in jobs}) == 600
    fraction_lengths = set()
    for _, body in jobs:
        created = datetime.fromisoformat(body["created_at"])
        updated = datetime.fromisoformat(body["updated_at"])
        assert updated >= created
        if body["state"] in ("succeeded", "failed", "stopped"):
            assert parse_timespan_seconds(body["elapsed_time"]) == pytest.approx((updated - created).total_seconds(), abs=1e-6)
            if "." in body["elapsed_time"].split(":")[-1]:
                fraction_lengths.add(len(body["elapsed_time"].rsplit(".", 1)[1]))
        else:
            assert body["elapsed_time"] is None
    assert fraction_lengths == set(range(1, 8))
    spans = [parse_timespan_seconds(body["elapsed_time"]) for _, body in jobs if body["elapsed_time"]]
    assert min(spans) < 60 and max(spans) > 2 * 86400


def test_same_seed_same_jobs():
    now = datetime(2026, 1, 1).astimezone()
    assert generate_jobs(50, seed=1, now=now) == generate_jobs(50, seed=1, now=now)


def test_bearer_key_is_checked(server):
    ref = server.store.refs()[0]
    assert _get(server, ref.path()).status_code == 200
    for key in (None, "wrong"):
        response = _get(server, ref.path(), key=key)
        assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_unknown_job_is_404_json(server):
    response = _get(server, "demo-space/workflows/w/jobs/nope")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_keep_alive_reuses_one_connection(server):
    session = requests.Session()
    refs = server.store.refs()[:20]
    for ref in refs:
        response = _get(server, ref.path(), session=session)
        assert response.status_code == 200
    assert server.connections_opened == 1


def test_latency_does_not_serialise_clients():
    with EmulatorServer(JobStore(generate_jobs(20, seed=1)), api_key=KEY, latency_ms=200) as slow:
        refs = slow.store.refs()
        started = time.monotonic()
        threads = [threading.Thread(target=_get, args=(slow, ref.path())) for ref in refs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() - started < 1.5  # 20 × 0.2 s would be 4 s if serialised


def test_advance_finishes_running_jobs_with_newer_timestamps(server):
    before = {ref: server.store.get(ref) for ref in server.store.refs()}
    changed = server.store.advance(fraction=1.0, seed=3)
    assert changed
    for ref in changed:
        old, new = before[ref], server.store.get(ref)
        assert datetime.fromisoformat(new["updated_at"]) > datetime.fromisoformat(old["updated_at"])
        assert new["state"] in ("succeeded", "failed", "stopped")
        elapsed = parse_timespan_seconds(new["elapsed_time"])
        span = datetime.fromisoformat(new["updated_at"]) - datetime.fromisoformat(new["created_at"])
        assert elapsed == pytest.approx(span.total_seconds(), abs=1e-6)


def test_fault_plan_is_deterministic_and_near_its_rates():
    plan = FaultPlan.fault_matrix(seed=1)
    paths = [f"s/workflows/w/jobs/{index}" for index in range(20_000)]
    first = [plan.transient_fault(path, 0) for path in paths]
    assert first == [plan.transient_fault(path, 0) for path in paths]
    share = first.count("server_error") / len(paths)
    assert 0.09 < share < 0.11
    not_found = sum(plan.permanent_fault(path) == "not_found" for path in paths) / len(paths)
    assert 0.007 < not_found < 0.013
    assert FaultPlan().transient_fault(paths[0], 0) is None
