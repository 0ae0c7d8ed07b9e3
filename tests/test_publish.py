"""The published analysis file as users meet it: opened by the DuckDB CLI they install, left a
WAL by a notebook that wrote to it, and written on a disk that fills up."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.settings import DUCKDB_STORAGE_VERSION, ConfigError
from pipeline.workspace import STAGING_SCHEMA, Workspace, copy_database
from tests.conftest import tmpfs
from tests.test_cli import up_jobs

DUCKDB_CLI = Path(sys.executable).with_name("duckdb")  # the `duckdb` command of the duckdb-cli package (test extra)
if not DUCKDB_CLI.exists():  # pytest not run from the venv's bin: the first `duckdb` on PATH
    DUCKDB_CLI = Path(shutil.which("duckdb") or "duckdb (pip install duckdb-cli)")


def _objects(db: Path) -> dict[str, int]:
    """Row count of every table and view in the dataset, read by the Python package."""
    with duckdb.connect(str(db), read_only=True) as connection:
        names = connection.sql(
            "select table_name from information_schema.tables where table_schema = 'telestream_up'"
        ).fetchall()
        return {name: connection.sql(f"select count(*) from telestream_up.{name}").fetchall()[0][0] for (name,) in names}


def _storage_version(db: Path) -> str:
    with duckdb.connect() as connection:
        connection.execute("attach '" + str(db).replace("'", "''") + "' as published (read_only)")
        return connection.sql("select tags from duckdb_databases() where database_name = 'published'").fetchall()[0][0][
            "storage_version"
        ]


def _schemas(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as connection:
        return {name for (name,) in connection.sql("select schema_name from information_schema.schemata").fetchall()}


def test_duckdb_cli_opens_the_published_file_and_queries_tables_and_views(emulator):
    emulator.run()  # a merge load: dlt's staging schema holds rows in the working copy
    expected = _objects(emulator.db)
    assert {"workflow_jobs", "fetch_errors", "job_durations", "workflow_duration_stats"} <= expected.keys()
    assert expected["workflow_jobs"] == 60
    counts = " union all ".join(f"select '{name}', count(*) from telestream_up.{name}" for name in sorted(expected))
    schemas = "select 'schema ' || schema_name, 0 from information_schema.schemata"
    result = subprocess.run(
        [str(DUCKDB_CLI), "-readonly", "-csv", "-noheader", str(emulator.db), f"{counts} union all {schemas}"],
        capture_output=True, text=True, timeout=60,
    )
    version = subprocess.run([str(DUCKDB_CLI), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    assert result.returncode == 0, f"duckdb CLI {version}: {result.stderr}"
    rows = dict(line.rsplit(",", 1) for line in result.stdout.splitlines())
    assert {name: int(rows[name]) for name in expected} == expected, f"duckdb CLI {version}"
    assert f"schema {STAGING_SCHEMA}" not in rows  # clutter for a user browsing the file
    assert STAGING_SCHEMA in _schemas(Workspace.for_duckdb(emulator.db).work_db)  # the working copy keeps it
    assert _storage_version(emulator.db).startswith(DUCKDB_STORAGE_VERSION)


def test_storage_version_is_configurable_and_views_survive_the_copy(tmp_path):
    work = tmp_path / "work.duckdb"
    with duckdb.connect(str(work)) as connection:
        connection.execute("create schema telestream_up; create schema telestream_up_staging")
        connection.execute("create table telestream_up.t as select range as id from range(1000)")
        connection.execute("create table telestream_up_staging.t as select 1 as id")
        connection.execute("create view telestream_up.evens as select * from telestream_up.t where id % 2 = 0")
        connection.execute("create view telestream_up.few as select count(*) as n from telestream_up.evens")
    published = tmp_path / "it's published.duckdb"  # a quote in the path must not break the SQL
    copy_database(work, published, "v1.2.0", skip_schemas=[STAGING_SCHEMA])
    assert _storage_version(published).startswith("v1.2.0")
    assert "telestream_up_staging" not in _schemas(published)
    with duckdb.connect(str(published), read_only=True) as connection:
        assert connection.sql("select n from telestream_up.few").fetchall() == [(500,)]


def test_unknown_storage_version_is_refused_before_anything_is_fetched(emulator):
    with pytest.raises(ConfigError, match=r"duckdb_storage_version '1\.0' .* such as 'v1\.0\.0'"):
        emulator.run(settings={"duckdb_storage_version": "1.0"})
    assert emulator.store.total_requests == 0 and not Workspace.for_duckdb(emulator.db).state_dir.exists()


WRITER = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])  # read-write, as a notebook opens it by default
connection.execute("create table main.scratch as select 1 as a")
print("wrote", flush=True)
sys.stdin.readline()  # meanwhile a run publishes a new file
connection.execute("checkpoint")
connection.execute("insert into main.scratch values (2)")
print("wrote again", flush=True)
sys.stdin.readline()  # killed here, as a crashed kernel: its WAL stays beside the new file
"""


def test_a_writers_stray_wal_is_removed_by_the_next_publish(emulator):
    emulator.run()
    wal = emulator.db.with_name(emulator.db.name + ".wal")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(emulator.db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "wrote" and wal.exists()
        Workspace.for_duckdb(emulator.db).publish()
        writer.stdin.write("\n")
        writer.stdin.flush()
        assert writer.stdout.readline().strip() == "wrote again"
    finally:
        writer.kill()
        writer.wait()
    assert wal.exists()  # DuckDB 2.0 refuses to open the file beside it ("WAL checkpoint iteration does not match")
    emulator.store.advance(fraction=1.0, seed=4)
    emulator.run()
    assert not wal.exists()
    assert _objects(emulator.db)["workflow_jobs"] == 60
    with duckdb.connect(str(emulator.db), read_only=True) as connection:
        assert "scratch" not in {name for (name,) in connection.sql("select table_name from duckdb_tables()").fetchall()}


@pytest.fixture
def small_disk(tmp_path: Path):
    """An 8 MB tmpfs for the analysis file (the working copy stays on the normal disk)."""
    with tmpfs(tmp_path / "disk", "8m") as disk:
        yield disk


def test_disk_full_while_publishing_leaves_no_temporary_and_the_next_run_publishes(emulator, tmp_path, small_disk):
    db = small_disk / "up_jobs.duckdb"
    work = tmp_path / "work"
    work.mkdir()
    Workspace.for_duckdb(db).state_dir.symlink_to(work)  # loads have room; only publishing runs out
    emulator.db = db
    emulator.run()
    before = _objects(db)
    filler = small_disk / "filler"
    free = shutil.disk_usage(small_disk).free
    filler.write_bytes(b"\0" * (free - 64 * 1024))  # 64 KB left: less than any published file
    free_before = shutil.disk_usage(small_disk).free
    emulator.store.advance(fraction=1.0, seed=6)

    failed = up_jobs("run", "--db", str(db), "--jobs-file", str(emulator.jobs_file), env=emulator.env(), cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    message = [line for line in failed.stderr.splitlines() if line.startswith("up-jobs: error")]
    assert len(message) == 1 and f"could not publish {db}" in message[0], failed.stderr
    assert "No space left on device" in message[0], failed.stderr
    assert sorted(path.name for path in small_disk.iterdir()) == ["filler", "up_jobs.duckdb", "up_jobs.duckdb.work"]
    assert shutil.disk_usage(small_disk).free == free_before  # the partial copy's space is back
    assert _objects(db) == before  # readers still get the previous file

    filler.unlink()
    killed = small_disk / ".up_jobs.duckdb.99999.tmp"  # what a publish killed with -9 leaves
    killed.write_bytes(b"\0" * (shutil.disk_usage(small_disk).free - 64 * 1024))
    emulator.run()  # has room only because it removes that first
    assert not killed.exists()
    with duckdb.connect(str(db), read_only=True) as connection:
        succeeded = connection.sql("select count(*) from telestream_up.workflow_jobs where state = 'succeeded'").fetchall()
    assert succeeded[0][0] > 0 and _objects(db) != before


def _tables(db: Path, schema: str = "telestream_up") -> dict[str, list[tuple]]:
    """Every table of the dataset, all rows sorted: what a reader of the file sees."""
    with duckdb.connect(str(db), read_only=True) as connection:
        names = connection.sql(
            f"select table_name from duckdb_tables() where schema_name = '{schema}' order by 1"
        ).fetchall()
        return {name: sorted(connection.sql(f"select * from {schema}.{name}").fetchall(), key=repr) for (name,) in names}


def _record(emulator) -> dict:
    import json

    return json.loads((emulator.db.with_name(emulator.db.name + ".work") / "published.json").read_text())


def test_publishing_by_changes_gives_exactly_the_working_copy(emulator, monkeypatch):
    """Runs that merge changed jobs, append observations and record errors, published by changes
    (every table treated as big, so the by-changes path is the one used), leave a file equal,
    table by table and row by row, to the working copy; a file someone wrote to is copied whole."""
    from pipeline import publish_changes

    monkeypatch.setattr(publish_changes, "SMALL_TABLE_ROWS", 0)
    work_db = emulator.db.with_name(emulator.db.name + ".work") / "work.duckdb"
    emulator.run()
    assert _record(emulator)["publishes_since_full_copy"] == 0  # the first publish is a full copy
    for round_ in range(2):
        emulator.store.advance(fraction=0.5, seed=round_)
        emulator.store.put_raw(emulator.store.refs()[round_], 404, b'{"message": "gone"}')
        summary = emulator.run()
        assert summary.count("loaded") > 0
        assert _record(emulator)["publishes_since_full_copy"] == round_ + 1
        assert _tables(emulator.db) == _tables(work_db)
    with duckdb.connect(str(emulator.db)) as writer:  # a user writes to the published file
        writer.execute("delete from telestream_up.workflow_jobs where state = 'succeeded'")
    emulator.store.advance(fraction=0.5, seed=9)
    emulator.run()
    assert _record(emulator)["publishes_since_full_copy"] == 0
    assert _tables(emulator.db) == _tables(work_db)


def test_rows_changed_other_than_by_a_load_make_a_full_copy(emulator, monkeypatch):
    """A row removed from the working copy outside a load (as ``dlt pipeline drop`` would) cannot
    be published by changes: the counts disagree and the file is copied whole."""
    from pipeline import publish_changes

    monkeypatch.setattr(publish_changes, "SMALL_TABLE_ROWS", 0)
    work_db = emulator.db.with_name(emulator.db.name + ".work") / "work.duckdb"
    emulator.run()
    with duckdb.connect(str(work_db)) as connection:
        connection.execute("delete from telestream_up.job_observations where job_id in (select job_id from telestream_up.job_observations limit 5)")
    emulator.store.advance(fraction=0.5, seed=3)
    emulator.run()
    assert _record(emulator)["publishes_since_full_copy"] == 0
    assert _tables(emulator.db) == _tables(work_db)
