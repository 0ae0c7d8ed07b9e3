"""workflow_duration_regressions on 60 days of generated jobs: quiet when nothing changes, loud when it does.

The real view SQL (sql/job_durations.sql, sql/workflow_duration_regressions.sql) runs in DuckDB
over a ``workflow_jobs`` table of generator bodies normalised by the pipeline's own normaliser.
That is tens of thousands of jobs: too many to push through the HTTP emulator in a test, and the
fetch path is covered elsewhere (tests/test_views.py runs the same views after a real load).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import duckdb
import pandas as pd
import pytest

from pipeline.emulator.generator import WORKFLOWS, Slowdown, generate_jobs
from pipeline.normalize import normalize_job
from pipeline.warehouse import view_sources

NOW = datetime(2026, 11, 30, 1, 30, tzinfo=timezone.utc)  # fixed: the same data on every run
SINCE = datetime(2026, 11, 23, tzinfo=timezone.utc)  # the slowdown's first day: the last 8 days
STEADY, SLOWED = WORKFLOWS[0], WORKFLOWS[2]  # Proxy generation (spread 0.6), Transcode HLS ladder (0.7)
JOBS = 48_000  # ~230 completions per workflow and day: enough to judge a 1.5x change at these spreads


def regressions(factor: float, seed: int) -> pd.DataFrame:
    """The view's rows for 60 days of two workflows, ``SLOWED`` taking ``factor`` x as long from ``SINCE``."""
    bodies = generate_jobs(
        JOBS, seed=seed, now=NOW, days=60, slowdown=Slowdown(SLOWED.name, SINCE, factor), workflows=(STEADY, SLOWED)
    )
    frame = pd.DataFrame([normalize_job(body, ref).row for ref, body in bodies])
    views = view_sources()
    with duckdb.connect() as connection:
        connection.sql("create schema telestream_up")
        connection.register("generated", frame)
        connection.sql("create table telestream_up.workflow_jobs as select * from generated")
        for name in ("job_durations", "workflow_duration_regressions"):
            connection.sql(views[name])
        rows = connection.sql("select * from telestream_up.workflow_duration_regressions").df()
    rows["is_slowed"] = (rows.workflow_name == SLOWED.name) & (pd.to_datetime(rows.completion_date) >= SINCE.replace(tzinfo=None))
    return rows


@pytest.fixture(scope="module")
def scenarios() -> dict[float, pd.DataFrame]:
    return {1.5: regressions(1.5, seed=11), 2.0: regressions(2.0, seed=12)}


def test_steady_durations_are_almost_never_flagged(scenarios):
    steady = pd.concat([rows[~rows.is_slowed] for rows in scenarios.values()])
    judged = steady[steady.is_judged]
    with_threshold = steady[steady.threshold_ratio.notna()]
    rate = judged.is_regression.mean()
    print(f"\nsteady durations: {judged.is_regression.sum()} of {len(judged)} judged workflow-days flagged ({rate:.1%}); "
          f"{with_threshold.is_regression.sum()} of {len(with_threshold)} with any threshold; "
          f"{steady.is_regression.sum()} of {len(steady)} workflow-days in all")
    assert len(judged) >= 150  # both workflows judged on most of the 60 days (the first 14 build the baseline)
    assert rate < 0.02
    assert steady.is_regression.sum() <= 0.02 * len(with_threshold)  # no flags on days that were never judged either


@pytest.mark.parametrize("factor", [1.5, 2.0])
def test_a_slowdown_is_flagged_on_every_judged_day(scenarios, factor):
    slowed = scenarios[factor][lambda rows: rows.is_slowed]
    judged = slowed[slowed.is_judged]
    rate = judged.is_regression.mean()
    print(f"\n{factor}x slowdown: {judged.is_regression.sum()} of {len(judged)} judged days flagged ({rate:.0%}); "
          f"median ratio to baseline {judged.ratio_to_baseline.median():.2f}")
    assert len(judged) >= 7  # every full day since the slowdown (today, a partial day, may be too small)
    assert judged.is_regression.all(), judged[["completion_date", "completed_jobs", "ratio_to_baseline", "threshold_ratio"]]
    assert judged.ratio_to_baseline.between(factor / 1.25, factor * 1.25).all()


def test_few_jobs_raise_the_threshold_instead_of_flagging_noise(scenarios):
    """Today is a partial day with a few jobs: judged, if at all, only for a far bigger change."""
    rows = scenarios[2.0]
    today = rows[pd.to_datetime(rows.completion_date) == NOW.replace(hour=0, minute=0, tzinfo=None)]
    assert len(today) == 2 and (today.completed_jobs < 30).all()
    assert (today.threshold_ratio > 1.5).all() and not today.is_judged.any()
    first_days = rows[pd.to_datetime(rows.completion_date) < (NOW - timedelta(days=52)).replace(tzinfo=None)]
    assert first_days.threshold_ratio.isna().all() and not first_days.is_regression.any()  # no baseline yet
