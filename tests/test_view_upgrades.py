"""Views on a shared warehouse: every shard makes sure they exist, a changed view is applied on
every destination without losing the users' views built on it, and DuckDB and Postgres give the
same numbers for the same data."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from pipeline.job_ids import Shard
from pipeline.views import STATE_TABLE, ViewError, apply_views, definition_hash, to_apply, view_files, view_sources
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator

needs_postgres = pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")


def test_only_missing_or_changed_views_are_applied():
    wanted = {"a": "create view a", "b": "create view b", "c": "create view c"}
    recorded = {"a": definition_hash("create view a"), "b": definition_hash("create view b (old)")}
    assert to_apply(wanted, recorded, {"a", "b", "c"}) == ["b", "c"]  # b changed, c never recorded
    assert to_apply(wanted, {**recorded, "b": definition_hash("create view b")}, {"b", "c"}) == ["a", "c"]  # a dropped by hand
    assert to_apply(wanted, recorded, None) == ["a", "b", "c"]  # catalog unreadable: apply all




def _rows(pipeline: Any, sql: str) -> list[tuple[Any, ...]]:
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql) or []]


def _columns(pipeline: Any, view: str) -> list[str]:
    sql = (f"select column_name from information_schema.columns where table_schema = 'telestream_up' "
           f"and table_name = '{view}' order by ordinal_position")
    return [row[0] for row in _rows(pipeline, sql)]


def _job_durations(change: str) -> dict[str, str]:
    sources = dict(view_sources())
    original = sources["job_durations"]
    if change == "new first column":  # Postgres' create or replace refuses: every column is renamed
        changed = original.replace("    select\n        id as job_id,", "    select\n        'v2' as definition_version,\n        id as job_id,")
    else:  # drop workflow_version, which the user's view reads
        changed = original.replace("    select\n        id as job_id,", "    select\n        'v3' as definition_version,\n        id as job_id,")
        changed = changed.replace("        workflow_version,\n", "")
    assert changed != original
    sources["job_durations"] = changed
    return sources


USER_VIEWS = (
    "create view telestream_up.my_failed_jobs as select job_id, workflow_version, state "
    "from telestream_up.job_durations where state = 'failed'",
    "create schema my_reports",
    "create view my_reports.failed_count as select count(*) as failed from telestream_up.my_failed_jobs",
)


POSTGRES_EXTRAS = (
    "grant select on telestream_up.my_failed_jobs to public",
    "comment on view telestream_up.my_failed_jobs is 'mine'",
    "create materialized view my_reports.failed_by_workflow as select workflow_version, count(*) as failed "
    "from telestream_up.my_failed_jobs group by workflow_version",
    "create index by_workflow on my_reports.failed_by_workflow (workflow_version)",
)


def test_a_changed_view_keeps_the_users_views_built_on_it(any_emulator):
    """Two runs with a user's view (and a view on that) on top of job_durations; between them the
    view changes its columns. The users' views survive every step; a change that would break them
    is rolled back and names them; the run after applies again."""
    any_emulator.run()
    pipeline = any_emulator.pipeline()
    postgres = any_emulator.destination == "postgres"
    with pipeline.sql_client() as client:
        for statement in USER_VIEWS:
            client.execute_sql(statement)
        if postgres:  # what recreating must give back: a grant, a comment, a materialized view and its index
            for statement in POSTGRES_EXTRAS:
                client.execute_sql(statement)
    failed = _rows(pipeline, "select failed from my_reports.failed_count")
    assert failed[0][0] > 0

    upgrade = _job_durations("new first column")
    applied = apply_views(pipeline, upgrade)
    assert "job_durations" in applied.changed
    assert _columns(pipeline, "job_durations")[:2] == ["definition_version", "job_id"]
    assert _rows(pipeline, "select failed from my_reports.failed_count") == failed
    assert _rows(pipeline, f"select definition_sha256 from telestream_up.{STATE_TABLE} where view_name = 'job_durations'") == [
        (definition_hash(upgrade["job_durations"] if not postgres else _translated(upgrade["job_durations"])),)
    ]
    if postgres:  # Postgres needed both recreated: they are reported, with their grant back
        assert applied.restored == ["telestream_up.my_failed_jobs", "my_reports.failed_count", "my_reports.failed_by_workflow"]
        assert _rows(pipeline, "select has_table_privilege('public', 'telestream_up.my_failed_jobs', 'select'), "
                               "obj_description('telestream_up.my_failed_jobs'::regclass, 'pg_class')") == [(True, "mine")]
        assert _rows(pipeline, "select indexname from pg_indexes where tablename = 'failed_by_workflow'") == [("by_workflow",)]
        assert _rows(pipeline, "select sum(failed) from my_reports.failed_by_workflow") == failed
    assert apply_views(pipeline, upgrade).changed == []  # applied once, then nothing to do

    with pytest.raises(ViewError, match=r"sql/job_durations\.sql not applied: your view .*my_failed_jobs.* depends on "
                                        r"telestream_up\.job_durations .*workflow_version"):
        apply_views(pipeline, _job_durations("drop a column the user reads"))
    assert _rows(pipeline, "select distinct definition_version from telestream_up.job_durations") == [("v2",)]  # rolled back
    assert _rows(pipeline, "select failed from my_reports.failed_count") == failed

    summary = any_emulator.run()  # the next run applies sql/ as shipped: columns change again
    assert "job_durations" in summary.views_applied.changed
    assert "definition_version" not in _columns(pipeline, "job_durations")
    assert _rows(pipeline, "select failed from my_reports.failed_count") == failed


def _translated(sql: str) -> str:
    from pipeline.views import translate

    return translate(sql, "postgres", "job_durations")


@needs_postgres
def test_every_shard_makes_sure_the_views_exist(tmp_path, postgres_database):
    """Shard 0 is down (it crashed before its load, or its host is); shards 1 and 2, two real
    processes at once, still create the views, and a stale or dropped view is put back by
    whichever shard runs next, saying so."""
    for emulator in start_emulator(tmp_path, jobs=90, seed=21, api_key=SECRET_KEY, destination="postgres",
                                   dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        command = [sys.executable, "-m", "pipeline", "run", "--destination", "postgres", "--concurrency", "4",
                   "--jobs-file", str(emulator.jobs_file), "--lock-timeout", "120"]

        def shard(index: int) -> subprocess.Popen:
            return subprocess.Popen([*command, "--shard", f"{index}/3"], env=env, cwd=tmp_path,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        workers = [shard(1), shard(2)]
        results = [worker.communicate(timeout=300) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in results]
        names = sorted(view_sources())
        assert sorted(row[0] for row in emulator.query(f"select view_name from telestream_up.{STATE_TABLE}")) == names
        assert emulator.query("select count(*) from telestream_up.open_fetch_errors") == [(0,)]
        updated = [out for out, _ in results if re.search(rf"^views updated +{len(names)} ", out, re.M)]
        assert len(updated) == 1  # the first shard to get the lock applied them; the other found them current

        _execute(postgres_database, f"update telestream_up.{STATE_TABLE} set definition_sha256 = 'stale' "
                                    "where view_name = 'job_state_summary'")
        _execute(postgres_database, "drop view telestream_up.running_jobs")
        summary = emulator.run(shard=Shard(1, 3))  # the next run of shard 1 (in process); shard 0 is still down
        assert summary.views_applied.changed == ["job_state_summary", "running_jobs"]
        running = "select count(*) from telestream_up.workflow_jobs where state not in ('succeeded', 'failed', 'stopped')"
        assert emulator.query("select count(*) from telestream_up.running_jobs") == emulator.query(running) != [(0,)]
        stored = dict(emulator.query(f"select view_name, definition_sha256 from telestream_up.{STATE_TABLE}"))
        assert stored["job_state_summary"] != "stale"


def _execute(dsn: str, sql: str) -> None:
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(sql)


KEY = re.compile(r"\(key: ([^)]+)\)")


def view_keys() -> dict[str, list[str]]:
    """Each view's key from its header comment (the style guide asks every view to state it)."""
    keys = {}
    for path in view_files():
        header = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("--"))
        found = KEY.search(header)
        assert found, f"sql/{path.name} states no key in its header"
        keys[path.stem] = [column.strip() for column in found.group(1).split(",")]
    return keys


def comparable(value: Any) -> Any:
    """One Python value for what the two drivers return differently for the same SQL value."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return value


def same(left: Any, right: Any) -> bool:
    """Equal, and floats to 1e-12 relative: summing doubles in another order moves the last bits
    (~1e-16 relative per step, far under 1e-12), while the defect this guards against, 1 µs on a
    duration of seconds to days, is 1e-11 relative or more (1e-6 absolute on at most 2e7 s)."""
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-12, abs_tol=0.0) or (math.isnan(left) and math.isnan(right))
    return left == right


# Columns measured from the clock at query time: the two databases are queried moments apart,
# so these may differ by one constant per view (the time between the queries), nothing more.
# 1e-6 s because running_jobs still subtracts epoch() doubles, which near 1.7e9 carry up to
# ~2.4e-7 s of rounding each; a defect in these columns (an hour, a time zone) is far larger.
CLOCK_COLUMNS = {"running_jobs": ("age_seconds", "seconds_since_update")}
CLOCK_TOLERANCE_SECONDS = 1e-6


def by_key(columns: list[str], rows: list[tuple[Any, ...]], key: list[str]) -> list[tuple[Any, ...]]:
    positions = [columns.index(column) for column in key]
    normalised = [tuple(comparable(value) for value in row) for row in rows]
    return sorted(normalised, key=lambda row: tuple((row[i] is None, row[i]) for i in positions))


@needs_postgres
def test_every_view_gives_the_same_rows_on_duckdb_and_postgres(tmp_path, postgres_database):
    """The same emulator data into both destinations; every view compared row by row, by key."""
    import duckdb
    import psycopg2

    for emulator in start_emulator(tmp_path, jobs=300, seed=17, api_key=SECRET_KEY):
        emulator.run()
        emulator.destination, emulator.dsn = "postgres", postgres_database
        emulator.run()
        compared: dict[str, int] = {}
        differences: list[str] = []
        with duckdb.connect(str(emulator.db), read_only=True) as duck, psycopg2.connect(postgres_database) as pg:
            for view, key in view_keys().items():
                sql = f"select * from telestream_up.{view}"
                duck_result = duck.execute(sql)
                duck_columns = [column[0] for column in duck_result.description]
                duck_rows = by_key(duck_columns, duck_result.fetchall(), key)
                with pg.cursor() as cursor:
                    cursor.execute(sql)
                    pg_columns = [column[0] for column in cursor.description]
                    pg_rows = by_key(pg_columns, cursor.fetchall(), key)
                assert duck_columns == pg_columns, view
                assert len(duck_rows) == len(pg_rows), view
                clock = [duck_columns.index(column) for column in CLOCK_COLUMNS.get(view, ())]
                offsets = {i: pg_rows[0][i] - duck_rows[0][i] for i in clock} if duck_rows else {}
                for duck_row, pg_row in zip(duck_rows, pg_rows):
                    differing = [
                        (column, a, b) for i, (column, a, b) in enumerate(zip(duck_columns, duck_row, pg_row))
                        if (abs(b - a - offsets[i]) > CLOCK_TOLERANCE_SECONDS if i in clock else not same(a, b))
                    ]
                    if differing:
                        differences.append(f"{view} row {dict(zip(duck_columns, duck_row))}: {differing}")
                compared[view] = len(duck_rows)
        assert not differences, f"{len(differences)} rows differ; first: " + "\n".join(differences[:5])
        assert set(compared) == set(view_sources())
        assert compared["job_durations"] == 300 and sum(compared.values()) > 300
