"""Benchmark the pipeline against the local emulator and print what was measured.

    python -m bench                       # throughput, re-run, sequential baseline, memory
    python -m bench --jobs 5000 --latency-ms 50 --concurrency 32 --memory-jobs 100000
    python -m bench strategies            # our thread pool vs dlt parallelized/defer, fetch only
    python -m bench faults --jobs 2000    # the fault matrix on a bigger run
    python -m bench loading --jobs 100000 # load cost alone: dlt dicts/arrow vs a plain DuckDB insert
    python -m bench parsing --jobs 1000000  # parse and validate a jobs file of that many lines
    python -m bench scale --jobs 1000000 --fresh 10000 --latency-ms 0  # re-run over a million jobs, 1% to request
    python -m bench scale --jobs 1000000 --latency-ms 0 --postgres postgresql://postgres:postgres@127.0.0.1:5432/postgres
    python -m bench publishing --jobs 100000  # publish cost alone: working copy → analysis file
    python -m bench readers --db up_jobs_demo.duckdb  # which DuckDB releases open the published file

The pipeline runs as a real ``python -m pipeline run`` subprocess (as cron runs it); its peak
RSS is its own VmHWM, read by the child at exit (see bench/peak.py: ``ru_maxrss`` of a child
includes its parent's).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import requests

from bench.runs import run_pipeline
from pipeline.demo import write_jobs_csv
from pipeline.emulator import EmulatorServer, FaultPlan, JobStore, generate_jobs
from pipeline.emulator.server import DEFAULT_API_KEY
from pipeline.normalize import normalize_job


def sequential_baseline(base_url: str, store: JobStore, db: Path) -> float:
    """The naive way: one session, one request after another, then one DuckDB insert."""
    import pandas as pd

    started = time.monotonic()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {DEFAULT_API_KEY}"
    rows = []
    for ref in store.refs():
        body = session.get(f"{base_url}/{ref.path()}", timeout=30).json()
        rows.append(normalize_job(body, ref).row)
    frame = pd.DataFrame(rows)  # noqa: F841 - read by name by DuckDB's replacement scan below
    with duckdb.connect(str(db)) as connection:
        connection.execute("create or replace table jobs as select * from frame")
    return time.monotonic() - started


def bench_main(args: argparse.Namespace) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        store = JobStore(generate_jobs(args.jobs, seed=1))
        with EmulatorServer(store, latency_ms=args.latency_ms) as server:
            jobs_file = write_jobs_csv(store.refs(), tmp / "jobs.csv")
            first = run_pipeline(server.base_url, jobs_file, tmp / "a.duckdb", args.concurrency)
            floor = args.jobs * args.latency_ms / 1000 / args.concurrency
            requests_first = store.total_requests
            print(f"\n[1] first run  N={args.jobs} L={args.latency_ms:g}ms C={args.concurrency}")
            print(f"    wall {first['wall']:.2f}s  jobs/s {args.jobs / first['wall']:.0f}  floor N*L/C {floor:.2f}s  "
                  f"wall/floor {first['wall'] / floor if floor else float('nan'):.2f}  requests {requests_first}  "
                  f"connections {server.connections_opened}  peak RSS {first['rss_mb']:.0f} MB  exit {first['code']}")
            print("    " + next(line for line in first["output"].splitlines() if line.startswith("time taken")))
            store.advance(fraction=1.0, seed=2)
            run_pipeline(server.base_url, jobs_file, tmp / "a.duckdb", args.concurrency)
            before = store.total_requests
            rerun = run_pipeline(server.base_url, jobs_file, tmp / "a.duckdb", args.concurrency)
            print(f"[2] re-run, every job terminal: wall {rerun['wall']:.2f}s  requests {store.total_requests - before}")
            baseline = sequential_baseline(server.base_url, store, tmp / "baseline.duckdb")
            print(f"[3] sequential requests loop + one DuckDB insert, same N and L: wall {baseline:.2f}s "
                  f"({baseline / first['wall']:.1f}x the pipeline's first run)")
        if args.rerun_jobs:
            bench_terminal_rerun(tmp, args.rerun_jobs, args.concurrency)
        if args.memory_jobs:
            bench_memory(tmp, args.memory_jobs, args.concurrency)


def bench_terminal_rerun(tmp: Path, jobs: int, concurrency: int) -> None:
    store = JobStore(generate_jobs(jobs, seed=3))
    with EmulatorServer(store) as server:
        store.advance(fraction=1.0, seed=4)
        jobs_file = write_jobs_csv(store.refs(), tmp / "terminal.csv")
        load = run_pipeline(server.base_url, jobs_file, tmp / "t.duckdb", concurrency)
        before = store.total_requests
        rerun = run_pipeline(server.base_url, jobs_file, tmp / "t.duckdb", concurrency)
        print(f"[4] N={jobs} all terminal: load {load['wall']:.1f}s; re-run wall {rerun['wall']:.2f}s, "
              f"requests {store.total_requests - before}, peak RSS {rerun['rss_mb']:.0f} MB")


LOOP_SAMPLE = 10_000  # jobs the sequential loop of [5] requests: enough for a stable rate, a tenth of the time


def bench_memory(tmp: Path, jobs: int, concurrency: int) -> None:
    """N jobs at L=0 (CPU-bound: the pipeline and the emulator in this process share the cores),
    beside a plain sequential ``requests`` loop against the same emulator in the same run."""
    load_before = _load()
    store = JobStore(generate_jobs(jobs, seed=5))
    with EmulatorServer(store) as server:
        jobs_file = write_jobs_csv(store.refs(), tmp / "memory.csv")
        sample = store.refs()[: min(jobs, LOOP_SAMPLE)]
        half = len(sample) // 2
        # half of the loop before the run and half after, so load from elsewhere that drifts
        # during the benchmark weighs on both sides alike
        before = sequential_loop(server.base_url, sample[:half])
        cpu_before = time.process_time()  # this process: the emulator (the pipeline is a subprocess)
        result = run_pipeline(server.base_url, jobs_file, tmp / "m.duckdb", concurrency)
        emulator_cpu = time.process_time() - cpu_before
        after = sequential_loop(server.base_url, sample[half:])
    loop = {key: before[key] + after[key] for key in before}
    pipeline_rate, loop_rate = jobs / result["wall"], len(sample) / loop["wall"]
    print(f"[5] N={jobs} L=0 C={concurrency}: wall {result['wall']:.1f}s, jobs/s {pipeline_rate:.0f}, "
          f"peak RSS {result['rss_mb']:.0f} MB, exit {result['code']}")
    print(f"    CPU per job: pipeline process {result['cpu'] / jobs * 1e6:.0f} µs (start-up included), "
          f"emulator {emulator_cpu / jobs * 1e6:.0f} µs")
    print(f"    sequential requests loop (one Session, get, .json()) over {len(sample)} of these jobs, "
          f"{half} before and {len(sample) - half} after the run: jobs/s {loop_rate:.0f}, CPU per request: "
          f"client {loop['client_cpu'] / len(sample) * 1e6:.0f} µs, emulator "
          f"{(loop['cpu'] - loop['client_cpu']) / len(sample) * 1e6:.0f} µs")
    loop_cpu, pipeline_cpu = loop["cpu"] / len(sample), max(result["cpu"], emulator_cpu) / jobs
    print(f"    pipeline / loop: {pipeline_rate / loop_rate:.2f} x measured (load average before {load_before}, after {_load()}); bound from CPU "
          f"per job on an idle 2-core machine: {loop_cpu / pipeline_cpu:.2f} x (the loop spends client and emulator "
          f"CPU in series, the pipeline beside the emulator; other load slows the one-thread loop more than the "
          f"pipeline's threads, so a busy machine can show more than the bound)")


def _load() -> str:
    try:
        return " ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def sequential_loop(base_url: str, refs: list[Any]) -> dict[str, float]:
    """The honest naive client: one ``requests.Session``, ``get`` and ``.json()`` per job, in order.

    Returns wall seconds, this process's CPU seconds (client and emulator) and the loop thread's own.
    """
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {DEFAULT_API_KEY}"
    started, cpu, client_cpu = time.monotonic(), time.process_time(), time.thread_time()
    for ref in refs:
        session.get(f"{base_url}/{ref.path()}", timeout=30).json()
    return {
        "wall": time.monotonic() - started,
        "cpu": time.process_time() - cpu,
        "client_cpu": time.thread_time() - client_cpu,
    }


def faults_main(args: argparse.Namespace) -> None:
    """The fault matrix of the reliability issue on a bigger run; prints lost/duplicated counts."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        store = JobStore(generate_jobs(args.jobs, seed=6))
        plan = FaultPlan.fault_matrix(seed=6, hang_seconds=2.0)
        with EmulatorServer(store, faults=plan) as server:
            jobs_file = write_jobs_csv(store.refs(), tmp / "jobs.csv")
            env = {"SOURCES__UP_JOBS__READ_TIMEOUT_SECONDS": "1", "SOURCES__UP_JOBS__MAX_ATTEMPTS": "6"}
            db = tmp / "f.duckdb"
            runs = [run_pipeline(server.base_url, jobs_file, db, args.concurrency, env=env) for _ in range(2)]
        expected_bad = {ref.job_id: plan.permanent_fault(ref.path()) for ref in store.refs()}
        with duckdb.connect(str(db), read_only=True) as connection:
            loaded = {row[0] for row in connection.sql("select id from telestream_up.workflow_jobs").fetchall()}
            rows = connection.sql("select count(*) from telestream_up.workflow_jobs").fetchall()[0][0]
            open_errors = dict(connection.sql("select job_id, error_kind from telestream_up.open_fetch_errors").fetchall())
            error_rows = connection.sql("select error_kind, count(*) from telestream_up.fetch_errors group by all order by 1").fetchall()
        all_ids = {ref.job_id for ref in store.refs()}
        lost = all_ids - loaded - set(open_errors)
        print(f"fault matrix: N={args.jobs}, 10% 5xx, 5% 429+Retry-After, 2% timeouts, 1% malformed, 1% 404; C={args.concurrency}")
        for index, result in enumerate(runs, 1):
            print(f"  run {index}: wall {result['wall']:.1f}s exit {result['code']}")
        print(f"  requests made {store.total_requests} for {args.jobs} jobs")
        print(f"  loaded {len(loaded)} (rows {rows}, duplicated {rows - len(loaded)})")
        print(f"  open errors {len(open_errors)}: {sorted(open_errors.values()).count('not_found')} not_found, "
              f"{sorted(open_errors.values()).count('malformed')} malformed; expected permanent faults "
              f"{sum(1 for kind in expected_bad.values() if kind)}")
        print(f"  fetch_errors rows by kind (both runs): {error_rows}")
        print(f"  lost {len(lost)}")


def strategies_main(args: argparse.Namespace) -> None:
    from bench.strategies import compare

    compare(args.jobs, args.latency_ms, args.concurrency)


def loading_main(args: argparse.Namespace) -> None:
    from bench.loading import compare

    compare(args.jobs)


def publishing_main(args: argparse.Namespace) -> None:
    from bench.publishing import measure

    measure(args.jobs)


def readers_main(args: argparse.Namespace) -> None:
    from bench.readers import check

    db = Path(args.db).resolve()
    if not db.is_file():
        raise SystemExit(f"{db} does not exist: run `up-jobs demo` first, or pass --db")
    if not check(db):
        raise SystemExit(1)


def parsing_main(args: argparse.Namespace) -> None:
    from bench.parsing import main as measure

    measure(args)


def scale_main(args: argparse.Namespace) -> None:
    from bench.scale import measure

    measure(args)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="pipeline", choices=["pipeline", "faults", "strategies", "loading", "publishing", "readers", "parsing", "scale"])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--db", default="up_jobs_demo.duckdb", help="published file for `readers`")
    parser.add_argument("--rerun-jobs", type=int, default=100_000, help="jobs for the all-terminal re-run (0 = skip)")
    parser.add_argument("--fresh", type=int, default=10_000, help="`scale`: jobs to request among --jobs (the rest loaded terminal)")
    parser.add_argument("--memory-jobs", type=int, default=100_000, help="jobs for the L=0 memory run (0 = skip)")
    parser.add_argument("--postgres", metavar="ADMIN_DSN", help="`scale`: into a scratch database on this PostgreSQL server "
                        "(created and dropped), instead of the DuckDB file")
    args = parser.parse_args()
    modes = {"pipeline": bench_main, "faults": faults_main, "strategies": strategies_main, "loading": loading_main,
             "publishing": publishing_main, "readers": readers_main, "parsing": parsing_main,
             "scale": scale_main}
    modes[args.mode](args)


if __name__ == "__main__":
    main()
