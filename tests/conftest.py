"""Shared fixtures: an isolated dlt environment per test and a live emulator on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
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
def restore_signal_handlers() -> Iterator[None]:
    """``cli.main`` run in-process installs its SIGTERM/SIGINT handlers; later tests get pytest's back."""
    import signal

    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


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


POSTGRES_ADMIN_DSN = os.environ.get("UP_JOBS_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


def postgres_available() -> bool:
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_ADMIN_DSN, connect_timeout=3).close()
        return True
    except Exception as exc:  # any failure means "not here"
        if os.environ.get("UP_JOBS_REQUIRE_POSTGRES"):
            raise RuntimeError(
                f"UP_JOBS_REQUIRE_POSTGRES is set but no PostgreSQL answers at UP_JOBS_TEST_POSTGRES "
                f"({POSTGRES_ADMIN_DSN!r}): {exc}"
            ) from exc
        return False


_POSTGRES = postgres_available()
DESTINATIONS = [
    "duckdb",
    pytest.param(
        "postgres",
        marks=pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one"),
    ),
]


@pytest.fixture
def postgres_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database per test (same dataset name every time, so tests cannot see each other)."""
    import uuid

    import psycopg2

    name = f"up_jobs_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_ADMIN_DSN)
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    dsn = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    yield dsn
    admin.cursor().execute(f"drop database if exists {name} with (force)")
    admin.close()


class Emulated:
    """A running emulator plus helpers to run the pipeline against it, into DuckDB or Postgres."""

    def __init__(self, server: EmulatorServer, tmp_path: Path, destination: str = "duckdb", dsn: str | None = None) -> None:
        self.server = server
        self.store = server.store
        self.tmp_path = tmp_path
        self.db = tmp_path / "up_jobs.duckdb"
        self.destination = destination
        self.dsn = dsn
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
        if self.destination != "duckdb":
            options.setdefault("destination", self.destination)
        return run(self.settings(**settings_overrides), RunOptions(db_path=self.db, **options))

    def pipeline(self) -> Any:
        """The dlt pipeline the runs use: the DuckDB working copy, or the Postgres database."""
        from pipeline.runner import make_pipeline, make_workspace

        destination = None if self.destination == "duckdb" else self.destination
        return make_pipeline(make_workspace(RunOptions(db_path=self.db, destination=destination)), destination)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows from wherever the pipeline loaded: the published DuckDB file or the Postgres database."""
        if self.destination == "postgres":
            import psycopg2

            with psycopg2.connect(self.dsn) as connection, connection.cursor() as cursor:
                cursor.execute(sql)
                return [tuple(row) for row in cursor.fetchall()]
        with duckdb.connect(str(self.db), read_only=True) as connection:
            return connection.sql(sql).fetchall()

    def staging_schemas(self) -> set[str]:
        """dlt's merge staging datasets in the warehouse (one per shard; a shared one loses rows)."""
        sql = "select schema_name from information_schema.schemata where schema_name like 'telestream_up_staging%'"
        return {row[0] for row in self.query(sql)}

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


def start_emulator(
    tmp_path: Path, jobs: int = 60, seed: int = 11, destination: str = "duckdb", dsn: str | None = None, **kwargs: Any
) -> Iterator[Emulated]:
    store = JobStore(generate_jobs(jobs, seed=seed))
    with EmulatorServer(store, **kwargs) as server:
        yield Emulated(server, tmp_path, destination, dsn)


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[Emulated]:
    """The emulator with the default destination, the local DuckDB file."""
    yield from start_emulator(tmp_path, api_key=SECRET_KEY)


@pytest.fixture(params=DESTINATIONS)
def destination(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if request.param == "postgres":
        return "postgres", request.getfixturevalue("postgres_database")
    return "duckdb", None


@pytest.fixture
def any_emulator(tmp_path: Path, destination: tuple[str, str | None]) -> Iterator[Emulated]:
    """The same end-to-end test against every destination: DuckDB, and a live Postgres."""
    yield from start_emulator(tmp_path, api_key=SECRET_KEY, destination=destination[0], dsn=destination[1])


@pytest.fixture
def faulty_emulator(tmp_path: Path, destination: tuple[str, str | None]) -> Iterator[Emulated]:
    # 150 jobs, seeds chosen so the plan holds 3 permanent 404s and 4 malformed bodies of 4 kinds
    plan = FaultPlan.fault_matrix(seed=3, hang_seconds=1.5)
    yield from start_emulator(
        tmp_path, jobs=150, seed=3, api_key=SECRET_KEY, faults=plan, destination=destination[0], dsn=destination[1]
    )


@contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted on ``folder`` (a full or read-only disk for real); skips the test
    where mounting needs a root this process is not (developers' machines and CI run as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (developers' machines and CI run as root)")
    folder.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)
