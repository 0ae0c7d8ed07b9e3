"""Job history: observations, state intervals with honest bounds, and where the time goes.

Jobs with scripted timelines (pipeline/emulator/timeline.py) are served as UP would serve them
at chosen moments, and the real pipeline polls them there: the true transition times are
known, so the views' bounds can be held to them.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import duckdb
import pandas as pd
import pytest

from pipeline.demo import emulator_settings, write_jobs_csv
from pipeline.emulator import EmulatorServer, JobStore
from pipeline.emulator.generator import DEMO_SPACE_ID, WORKFLOWS
from pipeline.emulator.timeline import Change, realistic_timelines, transitions
from pipeline.job_ids import JobRef
from pipeline.runner import RunOptions, run

T0 = (datetime.now(timezone.utc) - timedelta(days=1)).replace(second=0, microsecond=0)
GAP = 300  # seconds between polls
WORKFLOW = "wf-history"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ticks(start: int, end: int, state: str = "in-process", every: int = 60) -> list[Change]:
    """Progress reports every ``every`` seconds strictly after ``start`` and before ``end``."""
    return [Change(at(second), state, float(second % 97)) for second in range((start // every + 1) * every, end, every)]


SCRIPTS: dict[str, list[Change]] = {
    # queue, processing (reports every minute), a failed attempt waiting in retry, processing, done
    "retried": [Change(at(-100), "created"), Change(at(130), "in-process"), *ticks(130, 430),
                Change(at(430), "retry"), Change(at(700), "in-process"), *ticks(700, 1010), Change(at(1010), "succeeded")],
    # started and finished between two polls: its processing is never seen
    "unseen": [Change(at(-50), "created"), Change(at(400), "in-process"), Change(at(450), "succeeded", 100)],
    # still processing when the polls stop
    "running": [Change(at(-200), "created"), Change(at(100), "in-process"), *ticks(100, 2000)],
    # failed while queued (no processing implied)
    "failed": [Change(at(-10), "created"), Change(at(820), "failed")],
}
POLLS = [0, 300, 600, 900, 1200]


def _base(job_id: str) -> dict:
    return {"id": job_id, "name": job_id, "workflow_id": WORKFLOW, "workflow_name": "History", "workflow_version": "1"}


class History:
    """An emulator serving timeline jobs, and the real pipeline (in-process) polling it."""

    def __init__(self, server: EmulatorServer, tmp_path: Path, refs: list[JobRef], monkeypatch: pytest.MonkeyPatch) -> None:
        self.server, self.store, self.db = server, server.store, tmp_path / "up_jobs.duckdb"
        self.jobs_file = write_jobs_csv(refs, tmp_path / "jobs.csv")
        self.monkeypatch = monkeypatch

    def poll(self, moment: datetime):
        write_jobs_csv(self.store.play(moment), self.jobs_file)  # the job list grows as jobs are created
        # the poll happens at the scripted moment: the run's clock reads it (host and API clocks agree)
        self.monkeypatch.setattr("pipeline.http._now", lambda: moment)
        settings = emulator_settings(self.server.base_url, self.jobs_file, api_key=self.server.api_key)
        return run(settings, RunOptions(db_path=self.db))

    def frame(self, sql: str) -> pd.DataFrame:
        with duckdb.connect(str(self.db), read_only=True) as connection:
            return connection.sql(sql).df()


def _serve(tmp_path: Path, timelines: dict[str, tuple[str, list[Change]]], monkeypatch: pytest.MonkeyPatch) -> Iterator[History]:
    store = JobStore()
    refs = []
    for job_id, (workflow_id, changes) in timelines.items():
        ref = JobRef(DEMO_SPACE_ID, workflow_id, job_id)
        store.put_timeline(ref, {**_base(job_id), "workflow_id": workflow_id}, changes)
        refs.append(ref)
    with EmulatorServer(store) as server:
        yield History(server, tmp_path, refs, monkeypatch)


@pytest.fixture
def scripted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[History]:
    yield from _serve(tmp_path, {job_id: (WORKFLOW, changes) for job_id, changes in SCRIPTS.items()}, monkeypatch)


def _seen(changes: list[Change], polls: list[int]) -> list[Change]:
    """What the polls saw of a job: the record at each poll, distinct versions only."""
    seen: list[Change] = []
    for poll in polls:
        current = [change for change in changes if change.at <= at(poll)][-1]
        if not seen or seen[-1].at != current.at:
            seen.append(current)
    return seen


def test_scripted_schedule_bounds_hold_the_true_transitions(scripted):
    for poll in POLLS:
        assert not scripted.poll(at(poll)).has_problems
    before = scripted.frame("select count(*) as n from telestream_up.job_observations").n[0]
    again = scripted.poll(at(POLLS[-1]))  # nothing changed since the last poll
    assert again.count("loaded") == 0 and again.count("unchanged") == 1  # one job still running
    assert scripted.frame("select count(*) as n from telestream_up.job_observations").n[0] == before
    assert before == sum(len(_seen(changes, POLLS)) for changes in SCRIPTS.values())

    intervals = scripted.frame("select * from telestream_up.job_state_intervals order by job_id, episode_number")
    for job_id, changes in SCRIPTS.items():
        rows = intervals[intervals.job_id == job_id].reset_index(drop=True)
        true = transitions(changes)
        assert list(rows.state) == [changes[0].state, *(to for _, to, _ in true)], job_id
        seen = _seen(changes, POLLS)
        for index, (_, to, moment) in enumerate(true):
            entering, leaving = rows.iloc[index + 1], rows.iloc[index]
            assert entering.earliest_entry_at <= moment <= entering.latest_entry_at, (job_id, index)
            assert leaving.earliest_exit_at <= moment <= leaving.latest_exit_at, (job_id, index)
            # the width: from the last poll that still found the old version to the first record after
            after = next(change for change in seen if change.at >= moment)
            last_poll = max(poll for poll in POLLS if at(poll) < moment)
            expected = 0 if to in ("succeeded", "failed") else (after.at - at(last_poll)).total_seconds()
            width = (entering.latest_entry_at - entering.earliest_entry_at).total_seconds()
            assert width == expected and width <= GAP, (job_id, index)
        for _, row in rows.iterrows():
            if not row.is_terminal and not row.is_open:
                assert row.min_seconds <= row.best_seconds <= row.max_seconds

    by_job = {job_id: intervals[intervals.job_id == job_id].reset_index(drop=True) for job_id in SCRIPTS}
    retried = by_job["retried"]
    # the end of the queue and of the wait in retry: from the last poll that still saw the wait
    # to the first report after, which came at the next poll: the bound is the poll gap
    for episode in (1, 3):
        assert (retried.latest_entry_at[episode] - retried.earliest_entry_at[episode]).total_seconds() == GAP
    # into retry: from the last poll to the change itself (a change moves updated_at)
    assert (retried.earliest_entry_at[2], retried.latest_entry_at[2]) == (at(300), at(430))
    # the processing end is exact: a finished job's updated_at is when it finished
    assert retried.earliest_exit_at[3] == retried.latest_exit_at[3] == at(1010)
    assert list(by_job["unseen"].is_observed) == [True, False, True]  # created → (in-process, unseen) → succeeded
    assert by_job["unseen"].max_seconds[1] == 450 - 300 and by_job["unseen"].min_seconds[1] == 0
    assert list(by_job["failed"].state) == ["created", "failed"]  # no processing invented
    assert by_job["running"].is_open.iloc[-1] and pd.isna(by_job["running"].max_seconds.iloc[-1])

    breakdown = scripted.frame("select * from telestream_up.workflow_time_breakdown").iloc[0]
    assert breakdown.observed_jobs == 4 and breakdown.complete_jobs == 3  # the running one is not complete
    assert breakdown.share_retried == pytest.approx(1 / 3) and breakdown.retries_per_job == pytest.approx(1 / 3)


def test_jobs_loaded_before_history_get_unknown_bounds(scripted):
    """A job already held when observations start: its first episode's entry is unknown, not invented."""
    scripted.poll(at(300))
    from pipeline.workspace import Workspace

    # as if loaded by a version without job_observations (runs write the private working copy)
    with duckdb.connect(str(Workspace.for_duckdb(scripted.db).work_db)) as connection:
        connection.execute("delete from telestream_up.job_observations")
    scripted.poll(at(600))
    scripted.poll(at(900))
    rows = scripted.frame("select * from telestream_up.job_state_intervals where job_id = 'retried' order by episode_number")
    assert list(rows.state) == ["retry", "in-process"]
    assert pd.isna(rows.earliest_entry_at[0]) and rows.is_entry_unknown[0] and pd.isna(rows.max_seconds[0])
    first = scripted.frame("select * from telestream_up.job_observations where job_id = 'retried' order by updated_at").iloc[0]
    assert first.previous_state == "in-process" and first.previous_updated_at == at(300)
    breakdown = scripted.frame("select * from telestream_up.workflow_time_breakdown").iloc[0]
    assert breakdown.complete_jobs == 0  # none was seen from its queue to its end


def test_kill_9_between_extract_and_load_keeps_observations_and_jobs_consistent(scripted, tmp_path):
    from tests.test_cli import up_jobs, up_jobs_process

    scripted.poll(at(0))
    scripted.store.play(at(600))
    env = {"SOURCES__UP_JOBS__BASE_URL": scripted.server.base_url, "SOURCES__UP_JOBS__API_KEY": scripted.server.api_key,
           "SOURCES__UP_JOBS__SPACE_ID": DEMO_SPACE_ID, "RUNTIME__DLTHUB_TELEMETRY": "false",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    import os

    env = {**os.environ, **env}
    args = ("run", "--jobs-file", str(scripted.jobs_file), "--db", str(scripted.db))
    killed = up_jobs_process(*args, env={**env, "UP_JOBS_KILL_AT": "extracted"}, cwd=tmp_path)
    assert killed.returncode == -signal.SIGKILL
    jobs_after_kill = scripted.frame("select id, updated_at from telestream_up.workflow_jobs order by id")
    assert len(scripted.frame("select * from telestream_up.job_observations")) == 4  # the package did not load
    resumed = up_jobs(*args, env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    latest = scripted.frame(
        "select job_id as id, max(updated_at) as updated_at from telestream_up.job_observations group by job_id order by id"
    )
    jobs = scripted.frame("select id, updated_at from telestream_up.workflow_jobs order by id")
    assert latest.equals(jobs) and not jobs.equals(jobs_after_kill)
    copies = scripted.frame("select count(*) - count(distinct (job_id, updated_at)) as n from telestream_up.job_observations")
    assert copies.n[0] == 0
    assert len(scripted.frame("select * from telestream_up.job_observations")) == 4 + 3  # "failed" is still queued at 600


# ---- generated data against an independent pandas computation -------------------------------

GENERATED_POLLS = [index * 900 for index in range(8)]  # a 15-minute cron, 1 h 45 min


@pytest.fixture
def generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[History, dict[str, list[Change]]]]:
    workflow_ids = [f"wf{index}" for index in range(len(WORKFLOWS))]
    jobs = realistic_timelines(36, seed=5, start=at(-300), end=at(1800), workflow_ids=workflow_ids)
    # keep the run short: the test needs histories that fit in the polled 1.5 hours
    timelines = {job_id: (workflow_id, changes) for job_id, _, workflow_id, changes in jobs}
    for history in _serve(tmp_path, timelines, monkeypatch):
        yield history, {job_id: changes for job_id, (_, changes) in timelines.items()}


def _pandas_intervals(observations: pd.DataFrame) -> pd.DataFrame:
    """job_state_intervals recomputed from the observations with pandas, row by row."""
    rows = []
    terminal = {"succeeded", "failed", "stopped"}
    for job_id, group in observations.sort_values("updated_at").groupby("job_id"):
        episodes = []
        for _, obs in group.iterrows():
            if episodes and episodes[-1]["state"] == obs.state:
                episodes[-1]["last"] = obs.updated_at
            else:
                confirmed = None if pd.isna(obs.previous_confirmed_at) else obs.previous_confirmed_at
                episodes.append({"state": obs.state, "first": obs.updated_at, "last": obs.updated_at,
                                 "created": obs.created_at, "confirmed": confirmed})
        expanded = []  # (state, observed, earliest_entry, latest_entry, best_entry)
        for index, episode in enumerate(episodes):
            previous = episodes[index - 1] if index else None
            hidden = previous is not None and previous["state"] in ("created", "retry") and episode["state"] in ("succeeded", "retry")
            if previous is None:
                entry = (episode["created"],) * 3 if episode["state"] == "created" else (
                    (episode["first"],) * 3 if episode["state"] in terminal else (None, episode["first"], None))
                expanded.append((episode["state"], True, *entry))
                continue
            lo, hi = previous["last"], episode["first"]
            if episode["confirmed"] is not None and episode["confirmed"] <= hi:  # the last poll still in the old state
                lo = max(lo, episode["confirmed"])
            changes = (1 if hidden else 0) + (0 if episode["state"] in terminal else 1)
            if hidden:
                expanded.append(("in-process", False, lo, hi, lo + (hi - lo) / (changes + 1)))
            if episode["state"] in terminal:
                expanded.append((episode["state"], True, hi, hi, hi))
            else:
                expanded.append((episode["state"], True, lo, hi, lo + changes * (hi - lo) / (changes + 1)))
        for index, (state, observed, earliest, latest, best) in enumerate(expanded):
            following = expanded[index + 1] if index + 1 < len(expanded) else None
            row = {"job_id": job_id, "episode_number": index + 1, "state": state, "is_observed": observed,
                   "earliest_entry_at": earliest, "latest_entry_at": latest, "min_seconds": None, "max_seconds": None,
                   "best_seconds": None}
            if following is not None and state not in terminal:
                exit_lo, exit_hi, exit_best = following[2], following[3], following[4]
                row["min_seconds"] = max((exit_lo - latest).total_seconds(), 0)
                row["max_seconds"] = None if earliest is None else (exit_hi - earliest).total_seconds()
                row["best_seconds"] = None if best is None else (exit_best - best).total_seconds()
            rows.append(row)
    return pd.DataFrame(rows)


def test_views_agree_with_pandas_on_generated_histories(generated):
    history, timelines = generated
    for poll in GENERATED_POLLS:
        history.poll(at(poll))
    observations = history.frame("select * from telestream_up.job_observations")
    assert observations.previous_confirmed_at.notna().sum() > 20  # polls that found a job unchanged tighten bounds
    view = history.frame("select * from telestream_up.job_state_intervals order by job_id, episode_number")
    expected = _pandas_intervals(observations).sort_values(["job_id", "episode_number"]).reset_index(drop=True)
    assert len(view) == len(expected) > 50
    for column in ("job_id", "episode_number", "state", "is_observed"):
        assert list(view[column]) == list(expected[column]), column
    for column in ("min_seconds", "max_seconds", "best_seconds"):
        pd.testing.assert_series_equal(view[column].astype(float), expected[column].astype(float), check_names=False, atol=1e-3)
    assert list(view.earliest_entry_at.isna()) == list(expected.earliest_entry_at.isna())
    assert not view.is_observed.all() and (view.state == "retry").any()  # the data exercises both

    # every true transition of a job seen from its queue lies within its bounds
    for job_id, rows in view.groupby("job_id"):
        true = transitions(timelines[job_id])
        if rows.state.iloc[0] != "created" or list(rows.state) != [timelines[job_id][0].state, *(t for _, t, _ in true)][: len(rows)]:
            continue  # a retry that began and ended between two polls is invisible (documented)
        for index, (_, _, moment) in enumerate(true[: len(rows) - 1]):
            assert rows.earliest_entry_at.iloc[index + 1] <= moment <= rows.latest_entry_at.iloc[index + 1]

    # the breakdown, recomputed from the pandas intervals
    shapes = expected.groupby("job_id").agg(first=("state", "first"), last=("state", "last"),
                                            unknown=("max_seconds", lambda s: s.isna().sum()))
    complete = shapes[(shapes["first"] == "created") & shapes["last"].isin(["succeeded", "failed", "stopped"]) & (shapes.unknown == 1)].index
    per_job = expected[expected.job_id.isin(complete)].copy()
    per_job["workflow_id"] = per_job.job_id.map(observations.groupby("job_id").workflow_id.first())
    phases = per_job.pivot_table(index=["workflow_id", "job_id"], columns="state", values="best_seconds", aggfunc="sum").fillna(0)
    breakdown = history.frame("select * from telestream_up.workflow_time_breakdown").set_index("workflow_id")
    assert phases.index.get_level_values(0).nunique() >= 3
    for workflow_id, jobs in phases.groupby(level=0):
        row = breakdown.loc[workflow_id]
        assert row.complete_jobs == len(jobs)
        assert row.processing_p50_seconds == pytest.approx(jobs["in-process"].quantile(0.5))
        assert row.queue_p90_seconds == pytest.approx(jobs["created"].quantile(0.9))
        if "retry" in jobs:
            assert row.retry_p50_seconds == pytest.approx(jobs["retry"].quantile(0.5))
