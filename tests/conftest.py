"""Shared fixtures: an isolated dlt environment per test and a live emulator on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest

from pipeline.demo import emulator_settings, write_jobs_csv
from pipeline.emulator import EmulatorServer, FaultPlan, JobStore, generate_jobs
from pipeline.runner import RunOptions, RunSummary, run

REPO = Path(__file__).resolve().parent.parent
SECRET_KEY = "sk-TEST-4f1d2c9e8b7a6d5c-NEVER-PRINT"


@pytest.fixture(autouse=True)
def isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Own working dir, dlt data dir and no inherited UP settings; telemetry off."""
    for name in list(os.environ):
        if name.startswith("SOURCES__UP_JOBS__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt_data"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Emulated:
    """A running emulator plus helpers to run the pipeline against it."""

    def __init__(self, server: EmulatorServer, tmp_path: Path) -> None:
        self.server = server
        self.store = server.store
        self.tmp_path = tmp_path
        self.db = tmp_path / "up_jobs.duckdb"
        self.jobs_file = write_jobs_csv(self.store.refs(), tmp_path / "jobs.csv")

    def settings(self, **overrides: Any) -> Any:
        settings = emulator_settings(self.server.base_url, self.jobs_file, api_key=self.server.api_key)
        settings.backoff_seconds = 0.05
        settings.max_backoff_seconds = 0.5
        settings.read_timeout_seconds = 5
        for key, value in overrides.items():
            setattr(settings, key, value)
        return settings

    def run(self, **options: Any) -> RunSummary:
        settings_overrides = options.pop("settings", {})
        return run(self.settings(**settings_overrides), RunOptions(db_path=self.db, **options))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.db), read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def env(self) -> dict[str, str]:
        """Environment for a subprocess run against this emulator."""
        return {
            **os.environ,
            "SOURCES__UP_JOBS__BASE_URL": self.server.base_url,
            "SOURCES__UP_JOBS__API_KEY": self.server.api_key,
            "SOURCES__UP_JOBS__SPACE_ID": "demo-space",
            "SOURCES__UP_JOBS__BACKOFF_SECONDS": "0.05",
            "SOURCES__UP_JOBS__MAX_BACKOFF_SECONDS": "0.5",
            "SOURCES__UP_JOBS__READ_TIMEOUT_SECONDS": "5",
            "PYTHONPATH": str(REPO),
        }


def start_emulator(tmp_path: Path, jobs: int = 60, seed: int = 11, **kwargs: Any) -> Iterator[Emulated]:
    store = JobStore(generate_jobs(jobs, seed=seed))
    with EmulatorServer(store, **kwargs) as server:
        yield Emulated(server, tmp_path)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulated]:
    yield from start_emulator(tmp_path, api_key=SECRET_KEY)


@pytest.fixture
def faulty_emulator(tmp_path: Path) -> Iterator[Emulated]:
    plan = FaultPlan.fault_matrix(seed=3, hang_seconds=1.5)
    yield from start_emulator(tmp_path, jobs=300, seed=5, api_key=SECRET_KEY, faults=plan)
