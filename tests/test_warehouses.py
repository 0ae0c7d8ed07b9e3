"""Beyond one DuckDB file: portable views, sharding, and 3 shards loading into Postgres at once."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlglot
from hypothesis import given
from hypothesis import strategies as st

from pipeline.job_ids import JobRef, Shard
from pipeline.runner import RunOptions, make_pipeline, make_workspace
from pipeline.views import ViewError, apply_views, check_runs_on, translate, view_sources
from tests.conftest import _POSTGRES

DIALECTS = {"postgres": "postgres", "snowflake": "snowflake", "bigquery": "bigquery", "motherduck": "duckdb"}


@pytest.mark.parametrize("destination", sorted(DIALECTS))
@pytest.mark.parametrize("view", sorted(view_sources()))
def test_every_view_transpiles_and_parses(view, destination):
    dialect = DIALECTS[destination]
    translated = translate(view_sources()[view], dialect, view)
    statement = sqlglot.parse_one(translated, read=dialect)
    assert isinstance(statement, sqlglot.exp.Create) and statement.args["kind"] == "VIEW"
    assert statement.this.sql(dialect=dialect).lower().replace("`", "").replace('"', "") == f"telestream_up.{view}"


PERCENTILE_VIEWS = {"daily_workflow_stats", "duration_outliers", "workflow_duration_regressions", "workflow_duration_stats",
                    "workflow_time_breakdown"}


@pytest.mark.parametrize("destination", sorted(DIALECTS))
@pytest.mark.parametrize("view", sorted(view_sources()))
def test_views_that_would_fail_at_query_time_are_named(view, destination):
    """BigQuery has PERCENTILE_CONT only as a window function: those views are refused by name."""
    dialect = DIALECTS[destination]
    translated = translate(view_sources()[view], dialect, view)
    if destination == "bigquery" and view in PERCENTILE_VIEWS:
        with pytest.raises(ViewError, match=rf"sql/{view}\.sql cannot run on bigquery: PERCENTILE_CONT is only a window"):
            check_runs_on(translated, dialect, view)
    else:
        check_runs_on(translated, dialect, view)


def test_window_form_of_a_percentile_runs_on_bigquery():
    sql = "create view v as select percentile_cont(x, 0.5) over (partition by g) as p from t"
    check_runs_on(sql, "bigquery", "v")


def test_one_bad_view_does_not_stop_the_others(emulator):
    """Every other view is applied; one error names the bad view and the view built on it."""
    emulator.run()
    sources = {
        "good_before": "create or replace view telestream_up.good_before as select 1 as one",
        "broken": "create or replace view telestream_up.broken as select no_such_column from telestream_up.workflow_jobs",
        "on_broken": "create or replace view telestream_up.on_broken as select * from telestream_up.broken",
        "good_after": "create or replace view telestream_up.good_after as select count(*) as jobs from telestream_up.workflow_jobs",
    }
    pipeline = make_pipeline(make_workspace(RunOptions(db_path=emulator.db)))
    with pytest.raises(ViewError, match=r"2 view\(s\) not applied \(2 applied\): sql/broken\.sql .*sql/on_broken\.sql"):
        apply_views(pipeline, sources)
    with pipeline.sql_client() as client:
        assert client.execute_sql("select jobs from telestream_up.good_after") == [(60,)]
        assert client.execute_sql("select one from telestream_up.good_before") == [(1,)]


def test_views_are_ordered_after_their_dependencies():
    order = list(view_sources())
    assert order.index("job_durations") < order.index("workflow_duration_stats")
    assert order.index("job_durations") < order.index("data_quality_issues")


def test_a_function_without_equivalent_is_named_at_apply_time():
    sql = "create or replace view telestream_up.x as select list_reduce([1, 2], (a, b) -> a + b) as total"
    with pytest.raises(ViewError, match=r"sql/x\.sql cannot be translated to postgres"):
        translate(sql, "postgres", "x")


@given(st.lists(st.text("0123456789abcdef", min_size=32, max_size=32), min_size=1, max_size=200, unique=True),
       st.integers(min_value=1, max_value=8))
def test_shards_partition_the_job_list(job_ids, count):
    refs = [JobRef("s", "w", job_id) for job_id in job_ids]
    owners = [[index for index in range(count) if Shard(index, count).owns(ref)] for ref in refs]
    assert all(len(owner) == 1 for owner in owners)


@pytest.mark.parametrize("text", ["3/3", "-1/2", "a/b", "1", "1/0"])
def test_bad_shard_specs_are_rejected(text):
    with pytest.raises(ValueError, match="i/n"):
        Shard.parse(text)


def test_shard_needs_a_warehouse(emulator, tmp_path):
    from tests.test_cli import up_jobs

    result = up_jobs("run", "--jobs-file", str(emulator.jobs_file), "--shard", "0/2", env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 2 and "--shard needs a shared warehouse" in result.stderr


def test_a_bad_shard_is_a_configuration_error(emulator, tmp_path):
    """The CLI and the orchestration helpers share one parse: exit 2 there, ConfigError here."""
    from pipeline.orchestration import up_jobs as orchestrated_source
    from pipeline.settings import ConfigError
    from tests.test_cli import up_jobs

    result = up_jobs("run", "--destination", "postgres", "--jobs-file", str(emulator.jobs_file), "--shard", "3/2",
                     env=emulator.env(), cwd=tmp_path)
    assert result.returncode == 2 and "--shard takes i/n" in result.stderr
    with pytest.raises(ConfigError, match="^shard takes i/n"):  # the library names no CLI flag
        orchestrated_source(shard="3/2", settings=emulator.settings())


@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_three_shards_at_once_into_postgres(tmp_path, postgres_database):
    from tests.conftest import SECRET_KEY, start_emulator
    from tests.test_cli import up_jobs

    for emulator in start_emulator(tmp_path, jobs=150, seed=31, api_key=SECRET_KEY, latency_ms=20,
                                   destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database}
        args = ["run", "--destination", "postgres", "--concurrency", "4", "--jobs-file", str(emulator.jobs_file)]
        command = [sys.executable, "-m", "pipeline", *args]  # the three shards at once: three processes
        workers = [
            subprocess.Popen([*command, "--shard", f"{index}/3"], env=env, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for index in range(3)
        ]
        results = [worker.communicate(timeout=300) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0, 0], [err for _, err in results]
        listed = [int(line.split()[-1]) for out, _ in results for line in out.splitlines() if line.startswith("jobs listed")]
        assert sum(listed) == 150 and all(count > 0 for count in listed)
        ids = {row[0] for row in emulator.query("select id from telestream_up.workflow_jobs")}
        assert ids == {ref.job_id for ref in emulator.store.refs()}
        assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(150,)]
        assert emulator.query("select sum(jobs) from telestream_up.workflow_duration_stats") == [(150,)]
        pipelines = {row[0] for row in emulator.query("select distinct pipeline_name from telestream_up._dlt_pipeline_state")}
        assert pipelines == {f"up_jobs_shard_{index}_of_3" for index in range(3)}
        assert emulator.staging_schemas() == {f"telestream_up_staging_shard_{index}_of_3" for index in range(3)}
        # a second round loads nothing new and duplicates nothing
        again = [up_jobs(*args, "--shard", f"{index}/3", env=env, cwd=tmp_path, timeout=300) for index in range(3)]
        assert all(result.returncode == 0 for result in again)
        assert emulator.query("select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(150, 150)]



@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_a_dropped_dataset_is_rebuilt_by_the_next_run(tmp_path, postgres_database):
    """The warehouse loses the dataset (dropped, or the credentials now name a new database) while
    the project's local pipeline folder stays: the next run rebuilds every table and view on its
    own. It used to fail on every run: dlt recreated only the tables that got rows, and
    ``open_fetch_errors`` could not be applied without ``fetch_error_state``."""
    import psycopg2

    from pipeline.orchestration import prepare_tables
    from tests.conftest import SECRET_KEY, start_emulator

    def drop_dataset() -> None:
        with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
            cursor.execute("drop schema telestream_up cascade")

    for emulator in start_emulator(tmp_path, jobs=30, seed=5, api_key=SECRET_KEY, destination="postgres", dsn=postgres_database):
        assert emulator.run().count("loaded") == 30
        drop_dataset()  # an orchestrator prepares the tables before any shard loads: that alone rebuilds them
        prepare_tables(emulator.pipeline())
        assert emulator.query("select count(*) from telestream_up.fetch_error_state") == [(0,)]
        assert emulator.query("select count(*) from telestream_up._dlt_version")[0][0] >= 1
        drop_dataset()  # the CLI's run: its load recreates the dataset, then the run creates what the load did not
        rebuilt = emulator.run()
        assert rebuilt.count("loaded") == 30  # the dataset is empty again: every job is loaded again
        assert emulator.query("select count(*) from telestream_up.fetch_error_state") == [(0,)]
        assert emulator.query("select count(*) from telestream_up.open_fetch_errors") == [(0,)]
        assert emulator.query("select sum(jobs) from telestream_up.workflow_duration_stats") == [(30,)]
