"""job_observations: plain append vs dlt's scd2, and how fast the table grows.

    python -m bench.observations --jobs 20000 --polls 4 --growth-jobs 100000

1. Loading: each poll, a share of the jobs changes. ``append`` loads only the changed versions
   (what the pipeline does); ``scd2`` must be given every tracked job on every load (a job
   missing from a load is retired), and stamps validity with the load's time.
2. Growth: realistic histories (pipeline/emulator/timeline.py) polled by a 15-minute cron;
   observations per job, per running job per day, and the DuckDB size for --growth-jobs jobs.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dlt
import duckdb

from pipeline.emulator.generator import WORKFLOWS
from pipeline.emulator.timeline import realistic_timelines
from pipeline.states import TERMINAL_STATES


def _versions(jobs: int, polls: int, changed_share: float, seed: int = 1) -> list[list[dict]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    state = {f"{index:032x}": {"job_id": f"{index:032x}", "state": "created", "progress": 0.0, "updated_at": start}
             for index in range(jobs)}
    snapshots = []
    for poll in range(polls):
        moment = start + timedelta(minutes=15 * (poll + 1))
        for row in state.values():
            if poll and rng.random() < changed_share:
                row.update(state=rng.choice(["in-process", "retry", "succeeded"]), progress=rng.uniform(0, 100), updated_at=moment)
        snapshots.append([dict(row) for row in state.values()])
    return snapshots


def bench_strategies(jobs: int, polls: int, changed_share: float) -> None:
    snapshots = _versions(jobs, polls, changed_share)
    for strategy in ("append", "scd2"):
        with tempfile.TemporaryDirectory() as folder:
            pipeline = dlt.pipeline(f"bench_{strategy}", destination=dlt.destinations.duckdb(f"{folder}/bench.duckdb"),
                                    dataset_name="history", pipelines_dir=folder)
            seconds, sent, previous = [], 0, {}
            for snapshot in snapshots:
                if strategy == "append":
                    rows = [row for row in snapshot if previous.get(row["job_id"]) != row["updated_at"]]
                    hints = {"write_disposition": "append"}
                else:
                    rows = snapshot
                    hints = {"write_disposition": {"disposition": "merge", "strategy": "scd2"}, "primary_key": "job_id"}
                previous = {row["job_id"]: row["updated_at"] for row in snapshot}
                sent += len(rows)
                started = time.monotonic()
                pipeline.run(rows, table_name="job_observations", **hints)
                seconds.append(time.monotonic() - started)
            with pipeline.sql_client() as client:
                stored = client.execute_sql("select count(*) from job_observations")[0][0]
            print(f"{strategy:6s}: {jobs} jobs, {polls} polls, {changed_share:.0%} change per poll: rows sent {sent}, "
                  f"rows stored {stored}, load seconds {' '.join(f'{s:.1f}' for s in seconds)} (total {sum(seconds):.1f})")


def bench_growth(sample_jobs: int, growth_jobs: int, interval_minutes: int = 15) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    jobs = realistic_timelines(sample_jobs, 3, start, start + timedelta(days=1), [f"wf{i}" for i in range(len(WORKFLOWS))])
    per_job, running_days, rows = [], 0.0, []
    step = timedelta(minutes=interval_minutes)
    for job_id, _, workflow_id, changes in jobs:
        moment = start + step * (int((changes[0].at - start) / step) + 1)
        seen: list = []
        while True:
            current = [change for change in changes if change.at <= moment][-1]
            if not seen or seen[-1].at != current.at:
                seen.append(current)
                rows.append((job_id, workflow_id, current.state, current.progress, changes[0].at, current.at, moment))
            if current.state in TERMINAL_STATES:
                break
            moment += step
        per_job.append(len(seen))
        running_days += (changes[-1].at - changes[0].at).total_seconds() / 86400
    mean = sum(per_job) / len(per_job)
    print(f"growth: {sample_jobs} realistic jobs polled every {interval_minutes} min: {mean:.2f} observations per job "
          f"over its life (max {max(per_job)}), {sum(per_job) / running_days:.1f} per running job per day "
          f"(ceiling {24 * 60 // interval_minutes}: one per poll)")
    scale = growth_jobs / sample_jobs
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["job_id", "workflow_id", "state", "progress", "created_at", "updated_at", "observed_at"])
    copies = int(scale) + 1
    frame = pd.concat([frame.assign(job_id=frame.job_id.str.slice(4).radd(f"{copy:04x}")) for copy in range(copies)])
    frame = frame.head(int(len(rows) * scale)).assign(
        space_id="demo-space", workflow_name="Transcode HLS ladder", previous_updated_at=None, previous_state=None,
        _dlt_load_id="1767225600.123456", _dlt_id=[f"{random.getrandbits(56):014x}" for _ in range(int(len(rows) * scale))])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "size.duckdb"
        with duckdb.connect(str(path)) as connection:
            connection.register("frame", frame)
            connection.execute("create table job_observations as select * from frame")
            connection.execute("checkpoint")
        print(f"growth: {growth_jobs} jobs -> {len(frame)} observation rows, DuckDB file {path.stat().st_size / 1e6:.1f} MB "
              f"({path.stat().st_size / len(frame):.0f} bytes per row)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--polls", type=int, default=4)
    parser.add_argument("--changed-share", type=float, default=0.1)
    parser.add_argument("--growth-sample", type=int, default=2000)
    parser.add_argument("--growth-jobs", type=int, default=100000)
    args = parser.parse_args()
    bench_strategies(args.jobs, args.polls, args.changed_share)
    bench_growth(args.growth_sample, args.growth_jobs)


if __name__ == "__main__":
    main()
