"""The Dagster definitions example, run by Dagster itself: three shards as three step processes
into a live Postgres, tables and views as assets with row counts. In the `test` extra (CI runs it);
skipped only where neither `test` nor `dagster` is installed."""

from __future__ import annotations

import pytest

dg = pytest.importorskip("dagster")

from pipeline.dagster_defs import TABLES, build_definitions  # noqa: E402 - after the importorskip above
from tests.conftest import _POSTGRES, REPO, SECRET_KEY, start_emulator  # noqa: E402 - after the importorskip above

SHARDS = 3


def three_shard_job() -> "dg.JobDefinition":
    """Module level, so Dagster's multiprocess executor can rebuild the job in each step process."""
    return build_definitions("postgres", shards=SHARDS, cron=None).resolve_job_def("up_jobs")


def _materialized(result) -> dict[str, dict]:
    events = result.get_asset_materialization_events() if hasattr(result, "get_asset_materialization_events") else [
        event for event in result.all_events if event.event_type_value == "ASSET_MATERIALIZATION"]
    found = {}
    for event in events:
        materialization = event.event_specific_data.materialization
        found[materialization.asset_key.to_user_string()] = {k: v.value for k, v in materialization.metadata.items()}
    return found


def test_definitions_name_tables_and_views_once_each():
    defs = build_definitions("postgres", shards=SHARDS)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {f"telestream_up/{table}" for table in TABLES} <= keys
    assert {"telestream_up/job_durations", "telestream_up/open_fetch_errors"} <= keys
    assert [schedule.cron_schedule for schedule in defs.schedules] == ["*/15 * * * *"]


@pytest.mark.skipif(not _POSTGRES, reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_three_shards_as_step_processes_then_an_incremental_run(tmp_path, postgres_database, monkeypatch):
    for emulator in start_emulator(tmp_path, jobs=150, seed=43, api_key=SECRET_KEY, destination="postgres",
                                   dsn=postgres_database):
        for name, value in {**emulator.env(), "SOURCES__UP_JOBS__JOBS_FILE": str(emulator.jobs_file),
                            "SOURCES__UP_JOBS__MAX_CONCURRENCY": "4", "PYTHONPATH": str(REPO)}.items():
            monkeypatch.setenv(name, value)
        (tmp_path / "dagster_home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
            job = dg.build_reconstructable_job("tests.test_dagster", "three_shard_job")  # as step processes import it
            run_config = {"execution": {"config": {"multiprocess": {"max_concurrent": SHARDS}}}}  # shards at once
            result = dg.execute_job(job, instance=instance, run_config=run_config)
            assert result.success, [event.message for event in result.all_events if event.is_failure]
            steps = {event.step_key for event in result.all_events if event.event_type_value == "STEP_SUCCESS"}
            assert {f"up_jobs_tables.load_shard_{index}_of_{SHARDS}" for index in range(SHARDS)} <= steps
            first = _materialized(result)
        assert emulator.query("select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(150, 150)]
        assert first["telestream_up/workflow_jobs"]["rows_loaded"] == 150
        assert first["telestream_up/fetch_errors"]["rows_loaded"] == 0
        assert "telestream_up/workflow_duration_stats" in first
        assert emulator.query("select sum(jobs) from telestream_up.workflow_duration_stats") == [(150,)]

        changed = emulator.store.advance(fraction=0.5, seed=2)
        second = three_shard_job().execute_in_process()  # a later run, in one process: the same per-job rule
        assert second.success
        assert _materialized(second)["telestream_up/workflow_jobs"]["rows_loaded"] == len(changed) > 0
        assert emulator.query("select count(*), count(distinct id) from telestream_up.workflow_jobs") == [(150, 150)]
