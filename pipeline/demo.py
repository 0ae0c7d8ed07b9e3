"""``up-jobs demo`` and ``up-jobs emulator``: the product end to end on a laptop, no key needed."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import duckdb

from pipeline.emulator import EmulatorServer, FaultPlan, JobStore, generate_jobs
from pipeline.emulator.generator import DEMO_SPACE_ID, WORKFLOWS
from pipeline.emulator.server import DEFAULT_API_KEY
from pipeline.emulator.timeline import realistic_timelines, runs_read
from pipeline.errors import naming_options
from pipeline.job_ids import JobRef
from pipeline.runner import RunOptions, run
from pipeline.settings import ConfigError, UpJobsConfiguration
from pipeline.summary import format_summary
from pipeline.workspace import Workspace

Printer = Callable[[str], None]


def write_jobs_csv(refs: list[JobRef], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["workflow_id", "job_id", "space_id"])
        writer.writerows([ref.workflow_id, ref.job_id, ref.space_id] for ref in refs)
    return path


def emulator_settings(base_url: str, jobs_file: Path, api_key: str = DEFAULT_API_KEY) -> UpJobsConfiguration:
    """Settings for a run against the emulator, without reading .dlt/ (the demo needs no config)."""
    settings = UpJobsConfiguration()
    settings.base_url = base_url
    settings.api_key = api_key
    settings.space_id = DEMO_SPACE_ID
    settings.jobs_file = str(jobs_file)
    return settings


def _reset_demo_database(db_path: Path) -> None:
    """The demo recreates its own database; it refuses to touch one holding real (non-demo) jobs."""
    if db_path.exists():
        with duckdb.connect(str(db_path), read_only=True) as connection:
            try:
                spaces = connection.sql("select distinct space_id from telestream_up.workflow_jobs").fetchall()
            except duckdb.Error:
                spaces = []
        if any(space != DEMO_SPACE_ID for (space,) in spaces):
            raise naming_options(ConfigError, f"{db_path} holds non-demo jobs; pass {{db_path}} with another file for the demo")
        db_path.unlink()
    shutil.rmtree(Workspace.for_duckdb(db_path).state_dir, ignore_errors=True)


POLLS = 9
POLL_INTERVAL = timedelta(minutes=15)


def _add_live_jobs(store: JobStore, count: int, seed: int, first_poll: datetime, last_poll: datetime) -> int:
    """Jobs created over the demo's polled window, with full histories (queue, processing, retries)."""
    workflow_ids = sorted({ref.workflow_id for ref in store.refs()})
    names = {body["workflow_name"]: ref.workflow_id for ref in store.refs() if (body := store.get(ref)) is not None}
    start, end = first_poll - 2 * POLL_INTERVAL, last_poll
    ids = [names.get(profile.name, workflow_ids[0]) for profile in WORKFLOWS]
    for job_id, profile, workflow_id, changes in realistic_timelines(count, seed + 7919, start, end - POLL_INTERVAL, ids):
        base = {"id": job_id, "name": f"{profile.name.lower().replace(' ', '-')}-live-{job_id[:6]}",
                "workflow_id": workflow_id, "workflow_name": profile.name, "workflow_version": profile.version}
        store.put_timeline(JobRef(DEMO_SPACE_ID, workflow_id, job_id), base, changes)
    return count


def run_demo(db_path: Path, jobs: int, seed: int, out: Printer) -> int:
    from pipeline.report import format_report, write_html_report

    _reset_demo_database(db_path)
    # the demo simulates a 15-minute cron over the last two hours; its runs read that clock
    moments = [datetime.now(timezone.utc) - POLL_INTERVAL * (POLLS - 1 - index) for index in range(POLLS)]
    store = JobStore(generate_jobs(jobs, seed=seed, now=moments[0]))
    jobs_file = write_jobs_csv(store.refs(), Workspace.for_duckdb(db_path).state_dir / "demo_jobs.csv")
    with EmulatorServer(store) as emulator:
        settings = emulator_settings(emulator.base_url, jobs_file)
        options = RunOptions(db_path=db_path)
        out(f"UP emulator on {emulator.base_url} with {jobs} generated jobs (seed {seed})\n")
        live = _add_live_jobs(store, max(20, jobs // 10), seed, moments[0], moments[-1])
        static = store.refs()
        write_jobs_csv([*static, *store.play(moments[0])], jobs_file)
        out("== first run: every job is new ==")
        with runs_read(moments[0]):
            out(format_summary(run(settings, options)))
        # about a day's worth of completions, as between two runs of a busy day, not a backlog at once
        changed = store.advance(fraction=0.15, seed=seed, now=moments[1] - timedelta(minutes=1))
        out(f"\n(emulator: {len(changed)} running jobs moved on, some finished)\n")
        out("== second run and on: only non-terminal jobs are refetched, only changed ones load ==")
        out(f"({POLLS - 1} runs, as a 15-minute cron would see {live} more jobs flow through their workflows)")
        for moment in moments[1:]:
            write_jobs_csv([*static, *store.play(moment)], jobs_file)
            with runs_read(moment):
                summary = run(settings, options)
            out(f"  {moment:%H:%M} UTC: fetched {summary.stats.fetched}, loaded {summary.count('loaded')}")
        out("")
        out(format_summary(summary))
    out("")
    out(format_report(db_path))
    html = write_html_report(db_path, db_path.with_suffix(".html"))
    out(f"\nDatabase: {db_path}\nHTML report with charts: {html}")
    out(f"Query it: duckdb -readonly {db_path.name} \"select * from telestream_up.workflow_duration_stats\"")
    out(f"  or in Python: from pipeline.analytics import read_view; read_view('job_durations', '{db_path.name}')")
    return 0


def serve_emulator(port: int, jobs: int, seed: int, latency_ms: float, faults: bool, out: Printer) -> int:
    store = JobStore(generate_jobs(jobs, seed=seed))
    plan = FaultPlan.fault_matrix(seed=seed) if faults else None
    server = EmulatorServer(store, latency_ms=latency_ms, faults=plan, port=port)
    jobs_file = write_jobs_csv(store.refs(), Path(f"emulator_jobs_{seed}.csv").resolve())
    out(f"UP emulator serving {jobs} jobs at {server.base_url}")
    out(f"API key it accepts: {DEFAULT_API_KEY}")
    out(f"Jobs CSV: {jobs_file}")
    out("Point a run at it:")
    out(f"  SOURCES__UP_JOBS__BASE_URL={server.base_url} SOURCES__UP_JOBS__API_KEY={DEFAULT_API_KEY} \\")
    out(f"  up-jobs run --jobs-file {jobs_file}")
    out("Ctrl-C to stop.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
