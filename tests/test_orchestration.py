"""The source alone, run by plain ``pipeline.run`` as Airflow's PipelineTasksGroup and Dagster's
dlt integration do, keeps every rule of ``up-jobs run``; shards run that way into Postgres at once."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone

import dlt
import pytest

from pipeline.orchestration import prepare_tables, refresh_views, up_jobs
from tests.conftest import _POSTGRES, SECRET_KEY, start_emulator
from tests.test_pipeline_e2e import _set_job

TERMINAL = "state in ('succeeded','failed','stopped')"


def _duckdb_pipeline(tmp_path) -> dlt.Pipeline:
    """A pipeline the user built, as an orchestrator's helper would hold it."""
    return dlt.pipeline(
        pipeline_name="up_jobs",
        destination=dlt.destinations.duckdb(str(tmp_path / "orchestrated.duckdb")),
        dataset_name="telestream_up",
        pipelines_dir=str(tmp_path / "pipelines"),
    )


def _query(pipeline: dlt.Pipeline, sql: str) -> list[tuple]:
    with pipeline.sql_client() as client:
        return [tuple(row) for row in client.execute_sql(sql)]


def test_source_built_before_the_run_reads_the_warehouse_when_it_runs(emulator, tmp_path):
    """Build the source first (an orchestrator parses the DAG long before it runs), load, then
    run the source built earlier: it must skip what the first load made terminal."""
    pipeline = _duckdb_pipeline(tmp_path)
    built_early = up_jobs(settings=emulator.settings())
    pipeline.run(up_jobs(settings=emulator.settings()))
    terminal = _query(pipeline, f"select count(*) from telestream_up.workflow_jobs where {TERMINAL}")[0][0]
    before = emulator.store.total_requests
    info = pipeline.run(built_early)
    assert emulator.store.total_requests - before == 60 - terminal > 0
    assert not info.loads_ids  # nothing changed: no load package
    assert _query(pipeline, "select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(60, 60)]


def test_source_alone_keeps_the_per_job_rule(emulator, tmp_path):
    """dlt #2479's A/B story through plain pipeline.run: A's later finish is loaded."""
    job_a, job_b = emulator.store.refs()[:2]
    day = datetime(2026, 11, 1, tzinfo=timezone.utc)
    _set_job(emulator.store, job_a, "in-process", day.replace(hour=9), day.replace(hour=10))
    _set_job(emulator.store, job_b, "succeeded", day.replace(hour=9), day.replace(hour=12))
    pipeline = _duckdb_pipeline(tmp_path)
    prepare_tables(pipeline)
    pipeline.run(up_jobs(settings=emulator.settings()))
    assert _query(pipeline, "select count(*) from telestream_up.workflow_jobs") == [(60,)]
    _set_job(emulator.store, job_a, "succeeded", day.replace(hour=9), day.replace(hour=11))
    pipeline.run(up_jobs(settings=emulator.settings()))
    assert _query(pipeline, f"select state, elapsed_seconds from telestream_up.workflow_jobs where id = '{job_a.job_id}'") == [
        ("succeeded", 7200.0)
    ]
    assert _query(pipeline, "select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(60, 60)]
    assert "job_durations" in refresh_views(pipeline)
    assert _query(pipeline, "select sum(jobs) from telestream_up.workflow_duration_stats") == [(60,)]


def test_prepare_tables_on_a_new_dataset_makes_views_apply(tmp_path):
    pipeline = _duckdb_pipeline(tmp_path)
    prepare_tables(pipeline)
    prepare_tables(pipeline)  # safe to repeat
    refresh_views(pipeline)
    assert _query(pipeline, "select count(*) from telestream_up.open_fetch_errors") == [(0,)]


_TASK = """
import sys
from pipeline.orchestration import prepare_tables, refresh_views, shard_pipeline, up_jobs
step, shard = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None
if step == "prepare":
    prepare_tables(shard_pipeline("postgres"))
elif step == "views":
    print(refresh_views(shard_pipeline("postgres")))
else:
    shard_pipeline("postgres", shard).run(up_jobs(shard=shard))
"""


@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_three_orchestrated_shards_at_once_into_postgres(tmp_path, postgres_database):
    """The Airflow example's shape: prepare once, three shard tasks at once (each its own dlt
    data folder, as PipelineTasksGroup gives every task), then the views once; twice."""
    for emulator in start_emulator(tmp_path, jobs=150, seed=41, api_key=SECRET_KEY, latency_ms=20,
                                   destination="postgres", dsn=postgres_database):
        env = {**emulator.env(), "DESTINATION__POSTGRES__CREDENTIALS": postgres_database,
               "SOURCES__UP_JOBS__JOBS_FILE": str(emulator.jobs_file), "SOURCES__UP_JOBS__MAX_CONCURRENCY": "4"}

        def start(step: str, folder: str, shard: str = "") -> subprocess.Popen:
            """One task: a fresh process with a fresh dlt data folder, as PipelineTasksGroup gives it."""
            return subprocess.Popen([sys.executable, "-c", _TASK, step, *([shard] if shard else [])], cwd=tmp_path,
                                    env={**env, "DLT_DATA_DIR": str(tmp_path / folder)},
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def finish(*tasks: subprocess.Popen) -> list[str]:
            results = [task.communicate(timeout=300) for task in tasks]
            assert [task.returncode for task in tasks] == [0] * len(tasks), [err[-2000:] for _, err in results]
            return [err for _, err in results]

        def round_of_shards(name: str) -> None:
            finish(start("prepare", f"{name}_prepare"))
            shard_logs = finish(*[start("shard", f"{name}_{index}", f"{index}/3") for index in range(3)])
            # prepare_tables left no DDL for shards starting together to race on
            assert not [log for log in shard_logs if "being added to existing table" in log]
            finish(start("views", f"{name}_views"))

        round_of_shards("first")
        assert emulator.query("select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(150, 150)]
        ids = {row[0] for row in emulator.query("select id from telestream_up.workflow_jobs")}
        assert ids == {ref.job_id for ref in emulator.store.refs()}

        changed = {ref.job_id for ref in emulator.store.advance(fraction=0.5, seed=2)}
        held = dict(emulator.query("select id, updated_at from telestream_up.workflow_jobs"))
        round_of_shards("second")
        now = dict(emulator.query("select id, updated_at from telestream_up.workflow_jobs"))
        assert {job for job in now if now[job] != held[job]} == changed and changed
        assert emulator.query("select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(150, 150)]

        assert emulator.query("select sum(jobs) from telestream_up.workflow_duration_stats") == [(150,)]
        pipelines = {row[0] for row in emulator.query("select distinct pipeline_name from telestream_up._dlt_pipeline_state")}
        assert pipelines == {"up_jobs"} | {f"up_jobs_shard_{index}_of_3" for index in range(3)}  # prepare's + shards'
        assert emulator.staging_schemas() == {f"telestream_up_staging_shard_{index}_of_3" for index in range(3)}
