"""Each alert rule on a crafted copy of a real published database: fires just above its
threshold, stays silent just below it (and below the minimum job count), can be switched off."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipeline.alerts import queries
from pipeline.alerts.check import run_check
from pipeline.alerts.config import AlertsConfiguration, load_alerts_config
from pipeline.settings import ConfigError
from tests.alerts_data import HOUR, NOW, Crafted, template_db

ALL_RULES = ("failure_rate", "stuck_jobs", "duration_regression", "open_fetch_errors", "stale_load")


@pytest.fixture
def crafted(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Crafted:
    return Crafted(template_db(tmp_path_factory), tmp_path)


def only(rule: str, **settings: Any) -> AlertsConfiguration:
    """A configuration with just ``rule`` switched on."""
    config = AlertsConfiguration()
    for name in ALL_RULES:
        setattr(config, f"{name}_enabled", name == rule)
    for name, value in settings.items():
        setattr(config, name, value)
    return config


def fired(crafted: Crafted, config: AlertsConfiguration) -> list[Any]:
    return run_check(crafted.write(), config, now=NOW).alerts


def test_failure_rate_fires_just_above_the_threshold_only(crafted):
    crafted.completed("wf-a", 7)
    crafted.completed("wf-a", 3, state="failed")  # 3 of 10 = 30 %
    crafted.completed("wf-a", 5, state="failed", finished_ago=25 * HOUR)  # outside the 24 h window
    crafted.completed("wf-a", 4, state="stopped")  # neither succeeded nor failed
    db = crafted.write()
    [alert] = run_check(db, only("failure_rate", failure_rate_max=0.29, failure_rate_min_jobs=10), now=NOW).alerts
    assert (alert.rule, alert.workflow_id, alert.value, alert.threshold) == ("failure_rate", "wf-a", 0.3, 0.29)
    assert "30.0% of 10 jobs failed in the last 24 h > 29.0%" in alert.message
    assert alert.view == "telestream_up.job_durations"
    assert run_check(db, only("failure_rate", failure_rate_max=0.31, failure_rate_min_jobs=10), now=NOW).alerts == []
    assert run_check(db, only("failure_rate", failure_rate_max=0.30, failure_rate_min_jobs=10), now=NOW).alerts == []
    # below the minimum number of jobs: silent however bad the rate
    assert run_check(db, only("failure_rate", failure_rate_max=0.0, failure_rate_min_jobs=11), now=NOW).alerts == []
    # a longer window takes in the older failures: 8 of 15
    [wide] = run_check(db, only("failure_rate", failure_rate_hours=26, failure_rate_max=0.5), now=NOW).alerts
    assert wide.value == round(8 / 15, 4)


def test_stuck_job_over_the_fixed_limit(crafted):
    over = crafted.job("wf-s", "in-process", age=6 * HOUR + 60)
    crafted.job("wf-s", "in-process", age=6 * HOUR - 60)
    [alert] = fired(crafted, only("stuck_jobs", stuck_jobs_max_age_hours=6.0, stuck_jobs_max_idle_hours=0))
    assert (alert.rule, alert.job_id, alert.workflow_id, alert.value, alert.threshold) == (
        "stuck_jobs", over, "wf-s", 6 * HOUR + 60, 6 * HOUR)
    assert alert.view == "telestream_up.running_jobs"
    assert "in-process for 6.0 h > 6.0 h (limit)" in alert.message


def test_stuck_job_over_its_workflows_p99_with_enough_history(crafted):
    crafted.completed("wf-p", 20, seconds=1000.0)  # p99 = 1000 s from 20 terminal jobs
    crafted.completed("wf-q", 19, seconds=1000.0)  # 19: too few to trust a p99
    over = crafted.job("wf-p", "in-process", age=1060)
    crafted.job("wf-p", "in-process", age=940)
    crafted.job("wf-q", "in-process", age=1060)
    [alert] = fired(crafted, only("stuck_jobs", stuck_jobs_min_terminal_jobs=20, stuck_jobs_max_idle_hours=0))
    assert (alert.job_id, alert.value, alert.threshold) == (over, 1060, 1000)
    assert "in-process for 17.7 min > 16.7 min (workflow p99)" in alert.message
    # no fixed limit: the p99 alone decides, and the 19-job workflow's job is never stuck by age
    no_limit = run_check(crafted.db, only("stuck_jobs", stuck_jobs_max_age_hours=0, stuck_jobs_max_idle_hours=0,
                                          stuck_jobs_p99_factor=2.0), now=NOW + timedelta(seconds=1000)).alerts
    assert [(a.job_id, a.threshold) for a in no_limit] == [(over, 2000)]


def test_stuck_job_not_updated_for_too_long(crafted):
    idle = crafted.job("wf-i", "in-process", age=3 * HOUR, idle=2 * HOUR + 60)
    crafted.job("wf-i", "in-process", age=3 * HOUR, idle=2 * HOUR - 60)
    crafted.job("wf-i", "succeeded", age=30 * HOUR, idle=29 * HOUR)  # terminal: never stuck
    [alert] = fired(crafted, only("stuck_jobs", stuck_jobs_max_idle_hours=2.0))
    assert (alert.job_id, alert.value, alert.threshold) == (idle, 2 * HOUR + 60, 2 * HOUR)
    assert "not updated for 2.0 h > 2.0 h" in alert.message


def _regressed_today(crafted: Crafted, workflow: str, today_seconds: float) -> None:
    """A steady month (days 8-30 before: the baseline of the current rule and its predecessor),
    then five jobs today at ``today_seconds``. A 10x step is flagged by any sensible rule."""
    for day in range(8, 31):
        for seconds in (90.0, 100.0, 110.0):
            crafted.completed(workflow, 1, finished_ago=day * 24 * HOUR, seconds=seconds)
    crafted.completed(workflow, 5, finished_ago=0, seconds=today_seconds)  # finished at NOW: today (UTC)


def test_duration_regression_flagged_today(crafted):
    _regressed_today(crafted, "wf-slow", today_seconds=1000.0)
    _regressed_today(crafted, "wf-same", today_seconds=100.0)
    db = crafted.write()
    with duckdb.connect(str(db), read_only=True) as connection:  # the view's own rule decides; check it did
        assert [r.workflow_id for r in queries.flagged_regressions(connection, NOW.date())] == ["wf-slow"]
    [alert] = run_check(db, only("duration_regression"), now=NOW).alerts
    assert (alert.rule, alert.workflow_id, alert.workflow_name) == ("duration_regression", "wf-slow", "wf-slow name")
    assert alert.view == "telestream_up.workflow_duration_regressions"
    assert f"flagged for {NOW.date().isoformat()}" in alert.message
    # a day later the same flag is yesterday's: silent
    assert run_check(db, only("duration_regression"), now=NOW + timedelta(days=1)).alerts == []


def test_regression_columns_the_check_reads_exist_in_the_view(crafted):
    """The one place that names the view's columns (queries.REGRESSIONS) still matches sql/."""
    with duckdb.connect(str(crafted.write()), read_only=True) as connection:
        columns = {row[0] for row in connection.execute(
            "select column_name from information_schema.columns where table_schema = 'telestream_up' and table_name = ?",
            [queries.REGRESSIONS["view"]]).fetchall()}
    assert {queries.REGRESSIONS[k] for k in ("workflow", "day", "flag")} <= columns


def test_open_fetch_errors_above_the_count(crafted):
    crafted.fetch_errors(3)
    db = crafted.write()
    [alert] = run_check(db, only("open_fetch_errors", open_fetch_errors_max=2), now=NOW).alerts
    assert (alert.rule, alert.value, alert.threshold, alert.view) == ("open_fetch_errors", 3, 2, "telestream_up.open_fetch_errors")
    assert run_check(db, only("open_fetch_errors", open_fetch_errors_max=3), now=NOW).alerts == []


@pytest.mark.parametrize(
    ("load_ago", "published_ago", "fires"),
    [
        (6 * HOUR + 60, 6 * HOUR + 60, True),
        (6 * HOUR - 60, 6 * HOUR + 60, False),
        # nothing new to load for a day, but runs still publish: not stopped
        (24 * HOUR, 60, False),
        (None, 7 * HOUR, True),
    ],
)
def test_stale_load(crafted, load_ago, published_ago, fires):
    crafted.completed("wf-a", 1)
    crafted.load_ago, crafted.published_ago = load_ago, published_ago
    alerts = fired(crafted, only("stale_load", stale_load_max_age_hours=6.0))
    assert [a.rule for a in alerts] == (["stale_load"] if fires else [])
    if fires and load_ago is not None:
        assert (alerts[0].value, alerts[0].threshold) == (6 * HOUR + 60, 6 * HOUR)


def test_every_rule_is_on_by_default_and_switched_off_by_config(crafted, monkeypatch):
    crafted.completed("wf-a", 5)
    crafted.completed("wf-a", 5, state="failed")
    crafted.job("wf-a", "in-process", age=7 * HOUR)
    _regressed_today(crafted, "wf-slow", today_seconds=1000.0)
    crafted.fetch_errors(1)
    crafted.load_ago = crafted.published_ago = 7 * HOUR
    db = crafted.write()
    assert {a.rule for a in run_check(db, load_alerts_config(), now=NOW).alerts} == set(ALL_RULES)
    for rule in ALL_RULES:
        monkeypatch.setenv(f"ALERTS__{rule.upper()}_ENABLED", "false")
        remaining = {a.rule for a in run_check(db, load_alerts_config(), now=NOW).alerts}
        assert rule not in remaining
    assert run_check(db, load_alerts_config(), now=NOW).alerts == []


def test_bad_values_are_refused_naming_the_key(monkeypatch):
    monkeypatch.setenv("ALERTS__FAILURE_RATE_MAX", "0.05")
    assert load_alerts_config().failure_rate_max == 0.05
    monkeypatch.setenv("ALERTS__FAILURE_RATE_MAX", "1.5")
    with pytest.raises(ConfigError, match="alerts.failure_rate_max"):
        load_alerts_config()
    monkeypatch.delenv("ALERTS__FAILURE_RATE_MAX")
    monkeypatch.setenv("ALERTS__STUCK_JOBS_MAX_AGE_HOURS", "-1")
    with pytest.raises(ConfigError, match="alerts.stuck_jobs_max_age_hours"):
        load_alerts_config()


def test_a_rule_whose_view_is_missing_is_itself_an_alert(crafted):
    crafted.fetch_errors(1)
    db = crafted.write()
    with duckdb.connect(str(db)) as connection:
        connection.execute("drop view telestream_up.workflow_duration_regressions")
    alerts = run_check(db, AlertsConfiguration(), now=NOW).alerts
    assert {(a.rule, a.subject) for a in alerts} == {("check_error", "duration_regression"), ("open_fetch_errors", "all")}


def test_announcement_plan_is_pure_and_skips_rules_not_evaluated():
    """Switched off or failed to run: its earlier alerts are neither announced as resolved nor forgotten."""
    from pipeline.alerts.rules import Alert
    from pipeline.alerts.state import plan

    stuck = Alert(rule="stuck_jobs", subject="j1", message="stuck job j1", view="v", change="in-process")
    errors = Alert(rule="open_fetch_errors", subject="all", message="open fetch errors: 3", view="v", change="3")
    first = plan([stuck, errors], {}, NOW, None, {"stuck_jobs", "open_fetch_errors"})
    assert (first.firing, first.resolved) == ([stuck, errors], [])
    moved = Alert(rule="stuck_jobs", subject="j1", message="stuck job j1", view="v", change="created")
    later = plan([moved], first.next_state, NOW + timedelta(days=9), None, {"stuck_jobs"})
    assert (later.firing, later.resolved) == ([moved], [])  # state changed: announced; errors rule not run: silent
    assert set(later.next_state) == {"stuck_jobs:j1", "open_fetch_errors:all"}  # kept, not forgotten
    gone = plan([], later.next_state, NOW, None, {"stuck_jobs", "open_fetch_errors"})
    assert (gone.firing, gone.resolved, gone.next_state) == ([], ["open fetch errors: 3", "stuck job j1"], {})
