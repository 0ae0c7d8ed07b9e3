"""Each view against an independent pandas computation of the same definition, on generated data."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pandas as pd
import pytest

from pipeline.analytics import read_sql, read_view
from pipeline.emulator.generator import format_elapsed, format_timestamp
from pipeline.job_ids import JobRef
from tests.conftest import postgres_available, start_emulator

TERMINAL = {"succeeded", "failed", "stopped"}
NOW = datetime.now(timezone.utc)


def _body(job_id: str, workflow_id: str, state: str, created: datetime, updated: datetime, **extra) -> dict:
    body = {
        "id": job_id,
        "name": f"job-{job_id[:6]}",
        "workflow_id": workflow_id,
        "workflow_name": f"Workflow {workflow_id[:4]}",
        "workflow_version": "1",
        "state": state,
        "progress": 100 if state == "succeeded" else 50,
        "created_at": format_timestamp(created),
        "updated_at": format_timestamp(updated),
        "elapsed_time": format_elapsed(updated - created, 3, general=False) if state in TERMINAL else None,
    }
    body.update(extra)
    return body


def _special_jobs() -> list[tuple[JobRef, dict]]:
    """Data-quality problems, a regressing workflow and a one-job workflow."""
    jobs = []

    def add(index: int, workflow: str, *args, **extra) -> None:
        job_id = f"{index:032x}"
        jobs.append((JobRef("demo-space", workflow, job_id), _body(job_id, workflow, *args, **extra)))

    start = NOW - timedelta(hours=2)
    add(1, "dq00", "succeeded", start, NOW, elapsed_time=None)
    add(2, "dq00", "failed", start, NOW, elapsed_time="1:99:00")
    add(3, "dq00", "succeeded", start, NOW, elapsed_time="00:00:05")
    add(4, "dq00", "in-process", start, NOW, elapsed_time="00:10:00")
    add(5, "dq00", "created", NOW, start)
    add(6, "dq00", "in-process", start, NOW, progress=150)
    add(7, "dq00", "in-process", start, NOW, progress=-1)
    add(8, "solo", "succeeded", start, start + timedelta(minutes=3))
    add(9, "dq00", "in-process", start, NOW + timedelta(days=3))  # a server clock ahead of ours
    add(10, "regr", "in-process", NOW - timedelta(days=3), NOW)  # stuck: ~40-minute jobs, running for days
    day0 = datetime(NOW.year, NOW.month, NOW.day, 1, tzinfo=timezone.utc) - timedelta(days=21)
    for day in range(20):  # twenty days of ~10-minute jobs, then (yesterday) one day of ~40-minute jobs
        for slot, minutes in enumerate((9, 10, 11)):
            created = day0 + timedelta(days=day, hours=slot)
            add(100 + day * 3 + slot, "regr", "succeeded", created, created + timedelta(minutes=minutes))
    for slot, minutes in enumerate((38, 40, 42)):
        created = day0 + timedelta(days=20, hours=slot)
        add(200 + slot, "regr", "succeeded", created, created + timedelta(minutes=minutes))
    return jobs


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("views")
    for emulator in start_emulator(tmp_path, jobs=400, seed=21):
        for ref, body in _special_jobs():
            emulator.store.put(ref, body)
        from pipeline.demo import write_jobs_csv

        write_jobs_csv(emulator.store.refs(), emulator.jobs_file)
        emulator.run()
        jobs = read_view("workflow_jobs", emulator.db)
        yield emulator.db, jobs


def _terminal(jobs: pd.DataFrame) -> pd.DataFrame:
    terminal = jobs[jobs.state.isin(TERMINAL)].copy()
    terminal["completion_date"] = terminal.updated_at.dt.tz_convert("UTC").dt.date
    return terminal


def test_read_view_gives_real_dtypes(loaded):
    _, jobs = loaded
    assert str(jobs.updated_at.dtype).startswith("datetime64") and jobs.updated_at.dt.tz is not None
    assert jobs.elapsed_seconds.dtype == np.float64 and jobs.progress.dtype == np.float64


def test_workflow_duration_stats(loaded):
    """Counts over all jobs, durations over terminal jobs, percentiles interpolated linearly (pandas' default)."""
    db, jobs = loaded
    view = read_view("workflow_duration_stats", db).set_index("workflow_id").sort_index()
    grouped = jobs.groupby("workflow_id")
    timed = jobs[jobs.state.isin(TERMINAL)].groupby("workflow_id").elapsed_seconds

    def count(state: str) -> pd.Series:
        return grouped.state.agg(lambda s: (s == state).sum())

    expected = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "terminal_jobs": grouped.state.agg(lambda s: s.isin(TERMINAL).sum()),
            "succeeded_jobs": count("succeeded"),
            "failed_jobs": count("failed"),
            "stopped_jobs": count("stopped"),
            "mean_seconds": timed.mean(),
            "p50_seconds": timed.quantile(0.5),
            "p90_seconds": timed.quantile(0.9),
            "p95_seconds": timed.quantile(0.95),
            "p99_seconds": timed.quantile(0.99),
            "max_seconds": timed.max(),
        }
    )
    decided = (expected.succeeded_jobs + expected.failed_jobs).replace(0, np.nan)
    expected["success_rate"] = expected.succeeded_jobs / decided
    assert list(view.index) == list(expected.index) and len(view) > 5
    assert expected.terminal_jobs.lt(expected.jobs).any()  # running jobs count in jobs, not in the durations
    for column in expected.columns:
        pd.testing.assert_series_equal(view[column].astype(float), expected[column].astype(float), check_names=False,
                                       rtol=1e-9, obj=column)


def test_daily_workflow_stats(loaded):
    db, jobs = loaded
    view = read_view("daily_workflow_stats", db).set_index(["completion_date", "workflow_id"]).sort_index()
    terminal = _terminal(jobs)
    grouped = terminal.groupby(["completion_date", "workflow_id"])
    expected = pd.DataFrame(
        {
            "completed_jobs": grouped.size(),
            "succeeded_jobs": grouped.state.agg(lambda s: (s == "succeeded").sum()),
            "failed_jobs": grouped.state.agg(lambda s: (s == "failed").sum()),
            "p50_seconds": grouped.elapsed_seconds.quantile(0.5),
            "p90_seconds": grouped.elapsed_seconds.quantile(0.9),
            "mean_seconds": grouped.elapsed_seconds.mean(),
            "max_seconds": grouped.elapsed_seconds.max(),
        }
    )
    ok = expected.succeeded_jobs / (expected.succeeded_jobs + expected.failed_jobs).replace(0, np.nan)
    view.index = view.index.set_levels(pd.to_datetime(view.index.levels[0]).date, level=0)
    assert len(view) == len(expected)
    for column in expected.columns:
        pd.testing.assert_series_equal(view[column].astype(float), expected[column].astype(float), check_names=False, rtol=1e-9)
    pd.testing.assert_series_equal(view.success_rate.astype(float), ok.astype(float), check_names=False)


def test_job_state_summary(loaded):
    db, jobs = loaded
    view = read_view("job_state_summary", db).set_index(["workflow_id", "state"]).sort_index()
    counts = jobs.groupby(["workflow_id", "state"]).size()
    shares = counts / counts.groupby(level=0).transform("sum")
    pd.testing.assert_series_equal(view.jobs.astype(int), counts.astype(int), check_names=False)
    pd.testing.assert_series_equal(view.share_of_workflow, shares, check_names=False)
    assert view.share_of_workflow.groupby(level=0).sum().round(12).eq(1).all()


def test_running_jobs(loaded):
    db, jobs = loaded
    view = read_view("running_jobs", db).set_index("job_id").sort_index()
    running = jobs[~jobs.state.isin(TERMINAL)].set_index("id").sort_index()
    assert list(view.index) == list(running.index)
    now = pd.Timestamp.now(tz="UTC")
    expected_age = (now - running.created_at).dt.total_seconds()
    assert np.allclose(view.age_seconds, expected_age, atol=120)
    assert np.allclose(view.seconds_since_update, (now - running.updated_at).dt.total_seconds(), atol=120)


def test_duration_outliers(loaded):
    db, jobs = loaded
    view = read_view("duration_outliers", db).set_index("job_id").sort_index()
    terminal = _terminal(jobs).dropna(subset=["elapsed_seconds"])
    p95 = terminal.groupby("workflow_id").elapsed_seconds.transform(lambda s: s.quantile(0.95))
    p50 = terminal.groupby("workflow_id").elapsed_seconds.transform(lambda s: s.quantile(0.5))
    outliers = terminal[terminal.elapsed_seconds > p95].assign(p50=p50, p95=p95).set_index("id").sort_index()
    assert len(outliers) > 0 and list(view.index) == list(outliers.index)
    assert np.allclose(view.workflow_p95_seconds, outliers.p95)
    assert np.allclose(view.ratio_to_p50, outliers.elapsed_seconds / outliers.p50)
    assert "solo" not in set(view.workflow_id)  # a one-job workflow has no job above its own p95


def test_data_quality_issues(loaded):
    db, jobs = loaded
    view = read_view("data_quality_issues", db)
    found = set(zip(view.job_id, view.problem))
    expected = set()
    from_timestamps = (jobs.updated_at - jobs.created_at).dt.total_seconds()
    terminal = jobs.state.isin(TERMINAL)
    for mask, problem in (
        (terminal & jobs.elapsed_time.isna(), "terminal_without_elapsed_time"),
        (jobs.elapsed_time.notna() & jobs.elapsed_seconds.isna(), "unparseable_elapsed_time"),
        ((jobs.elapsed_seconds - from_timestamps).abs() > 1, "elapsed_time_disagrees_with_timestamps"),
        (~terminal & jobs.elapsed_time.notna(), "elapsed_time_on_running_job"),
        (jobs.updated_at < jobs.created_at, "updated_before_created"),
        ((jobs.progress < 0) | (jobs.progress > 100), "progress_out_of_range"),
    ):
        expected |= {(job_id, problem) for job_id in jobs.id[mask]}
    loaded_at = read_sql(
        "select jobs.id, loads.inserted_at from telestream_up.workflow_jobs as jobs "
        "join telestream_up._dlt_loads as loads on loads.load_id = jobs._dlt_load_id", db
    ).set_index("id").inserted_at
    ahead = jobs.set_index("id").updated_at > loaded_at.reindex(jobs.id) + pd.Timedelta(minutes=10)
    expected |= {(job_id, "updated_at_in_future") for job_id in ahead.index[ahead]}
    terminal = jobs[terminal]
    p99 = terminal.groupby("workflow_id").elapsed_seconds.quantile(0.99)[terminal.groupby("workflow_id").size() >= 20]
    running = jobs[(jobs.state == "in-process") & jobs.workflow_id.isin(p99.index)]
    age = (pd.Timestamp.now(tz="UTC") - running.created_at).dt.total_seconds()
    margin = (age - running.workflow_id.map(p99)).abs() < 60  # the view's clock ran a moment earlier
    stuck = set(running.id[(age > running.workflow_id.map(p99)) & ~margin])
    borderline = set(running.id[margin])
    expected |= {(job_id, "in_process_beyond_workflow_p99") for job_id in stuck}
    found -= {(job_id, problem) for job_id, problem in found if job_id in borderline and problem == "in_process_beyond_workflow_p99"}
    assert found == expected
    assert {problem for _, problem in found} == {
        "terminal_without_elapsed_time",
        "unparseable_elapsed_time",
        "elapsed_time_disagrees_with_timestamps",
        "elapsed_time_on_running_job",
        "updated_before_created",
        "progress_out_of_range",
        "updated_at_in_future",
        "in_process_beyond_workflow_p99",
    }


def test_workflow_duration_regressions(loaded):
    """The rule of sql/workflow_duration_regressions.sql, recomputed in pandas."""
    db, jobs = loaded
    view = read_view("workflow_duration_regressions", db)
    view["completion_date"] = pd.to_datetime(view.completion_date).dt.date
    view = view.set_index(["workflow_id", "completion_date"]).sort_index()
    terminal = _terminal(jobs).dropna(subset=["elapsed_seconds"])
    rows = []
    for (workflow, day), group in terminal.groupby(["workflow_id", "completion_date"]):
        window = terminal[
            (terminal.workflow_id == workflow)
            & (terminal.completion_date >= day - timedelta(days=35))
            & (terminal.completion_date <= day - timedelta(days=8))
        ]
        ratio = group.elapsed_seconds.median() / window.elapsed_seconds.median() if len(window) else np.nan
        logs = np.log(window.elapsed_seconds.clip(lower=0.001))
        spread = (logs.quantile(0.75) - logs.quantile(0.25)) / 1.349 if len(window) else np.nan
        days = window.completion_date.nunique()
        enough = len(group) >= 3 and len(window) >= 20 and days >= 7
        error = 1.2533 * spread * np.sqrt(1 / len(group) + 1 / max(len(window), 1)) if enough else np.nan
        threshold = np.exp(max(np.log(1.2), 3.5 * error)) if enough else np.nan
        detectable = threshold * np.exp(3 * error) if enough else np.nan
        rows.append((workflow, day, ratio, days, len(window), threshold, bool(enough and detectable <= 1.5),
                     bool(enough and ratio > threshold)))
    expected = pd.DataFrame(
        rows, columns=["workflow_id", "completion_date", "ratio", "days", "jobs", "threshold", "judged", "flag"]
    ).set_index(["workflow_id", "completion_date"]).sort_index()
    assert list(view.index) == list(expected.index)
    assert np.allclose(view.ratio_to_baseline.astype(float), expected.ratio.astype(float), equal_nan=True)
    assert np.allclose(view.threshold_ratio.astype(float), expected.threshold.astype(float), equal_nan=True)
    assert (view.baseline_days.values == expected.days.values).all()
    assert (view.baseline_jobs.values == expected.jobs.values).all()
    assert (view.is_judged.values == expected.judged.values).all()
    assert (view.is_regression.values == expected.flag.values).all()
    assert expected.threshold.notna().sum() > 10  # the rule was exercised, not only its "no baseline" branch
    flagged = view[view.is_regression].reset_index()
    assert list(flagged.workflow_id) == ["regr"]  # the deliberate 4x slowdown, and nothing in the random data


def test_duration_from_timestamps_is_exact_to_the_microsecond(loaded):
    """epoch(updated) - epoch(created) read 59.9 s as 59.90000009536743; whole microseconds do not."""
    db, jobs = loaded
    view = read_view("job_durations", db).set_index("job_id").sort_index()
    jobs = jobs.set_index("id").sort_index()
    micros = (jobs.updated_at - jobs.created_at) // pd.Timedelta(microseconds=1)
    assert (view.duration_from_timestamps_seconds.values == (micros / 1e6).values).all()
    terminal = view[view.is_terminal & view.elapsed_seconds.notna()]
    assert (terminal.elapsed_seconds == terminal.duration_from_timestamps_seconds).mean() > 0.99  # the generator's are equal


def test_views_work_on_an_empty_database(tmp_path):
    """A first run where every job fails still leaves every view queryable (and empty)."""
    from pipeline.emulator import FaultPlan
    from pipeline.summary import format_summary

    for emulator in start_emulator(tmp_path, jobs=3, faults=FaultPlan(rates={"not_found": 1.0})):
        summary = format_summary(emulator.run())
        for view in ("job_durations", "workflow_duration_stats", "daily_workflow_stats", "job_state_summary",
                     "running_jobs", "duration_outliers", "data_quality_issues", "workflow_duration_regressions"):
            assert read_view(view, emulator.db).empty
        errors = read_view("open_fetch_errors", emulator.db)
        assert len(errors) == 3
        from pipeline.report import format_report

        report = format_report(emulator.db)  # names the jobs, not only a count
        assert "Open fetch errors: 3 job(s)" in report
        for job_id in errors.job_id:
            assert [line for line in report.splitlines() if job_id in line and "not_found" in line and "404" in line]
            assert [line for line in summary.splitlines() if line.strip().startswith("failed:") and job_id in line
                    and "not_found HTTP 404" in line]  # the run summary names them too


def test_report_lists_jobs_in_process_past_their_workflows_p99(loaded):
    from pipeline.report import report_tables

    db, jobs = loaded
    tables = report_tables(db)
    stuck = next(table for title, table in tables.items() if title.startswith("In process longer"))
    # dq00's only timed terminal job took 5 s; its in-process jobs started 2 hours ago. The job still
    # in `created` state (queued, not running) is not listed.
    expected = set(jobs[(jobs.workflow_id == "dq00") & (jobs.state == "in-process")].name)
    assert expected and expected <= set(stuck.job_name)
    assert set(stuck.state) == {"in-process"}


@pytest.mark.skipif(not postgres_available(), reason="no PostgreSQL at UP_JOBS_TEST_POSTGRES; .ci/run starts one")
def test_duration_from_timestamps_translates_exactly_to_postgres(postgres_database):
    """The view as sqlglot writes it for Postgres gives the same doubles, also across a DST change
    in the session's time zone (a plain timestamp cast there would add an hour)."""
    import psycopg2

    from pipeline.warehouse import translate, view_sources

    rows = [
        ("a", "2026-11-29 10:00:00.123456+00", "2026-11-29 10:01:00.023456+00"),  # 59.9 s
        ("b", "2026-03-29 00:30:00.1+00", "2026-03-29 01:30:00.2+00"),  # spans Berlin's switch to summer time
        ("c", "2026-01-01 00:00:00.000001+00", "2026-03-31 05:00:00.3+00"),  # 89 days and a fraction
    ]
    with psycopg2.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("set timezone = 'Europe/Berlin'")
        cursor.execute("create schema telestream_up")
        cursor.execute(
            "create table telestream_up.workflow_jobs (id text, space_id text, workflow_id text, workflow_name text, "
            "name text, workflow_version text, state text, progress double precision, created_at timestamptz, "
            "updated_at timestamptz, elapsed_time text, elapsed_seconds double precision)"
        )
        cursor.executemany(
            "insert into telestream_up.workflow_jobs (id, created_at, updated_at) values (%s, %s, %s)", rows
        )
        cursor.execute(translate(view_sources()["job_durations"], "postgres", "job_durations"))
        cursor.execute("select job_id, duration_from_timestamps_seconds from telestream_up.job_durations order by 1")
        got = cursor.fetchall()
    with duckdb.connect() as duck:
        duck.sql("set timezone = 'Europe/Berlin'")
        duck.sql("create schema telestream_up")
        duck.sql("create table telestream_up.workflow_jobs (id text, space_id text, workflow_id text, workflow_name text, "
                 "name text, workflow_version text, state text, progress double, created_at timestamptz, "
                 "updated_at timestamptz, elapsed_time text, elapsed_seconds double)")
        duck.executemany("insert into telestream_up.workflow_jobs (id, created_at, updated_at) values (?, ?, ?)", rows)
        duck.sql(view_sources()["job_durations"])
        expected = duck.sql("select job_id, duration_from_timestamps_seconds from telestream_up.job_durations order by 1").fetchall()
    assert got == expected == [("a", 59.9), ("b", 3600.1), ("c", 7707600.299999)]
