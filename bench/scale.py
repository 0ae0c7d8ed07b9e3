"""Years of jobs: a re-run over a million configured jobs, 99 % of them already loaded terminal.

    python -m bench scale --jobs 1000000 --fresh 10000 --latency-ms 0 --concurrency 32

Builds the case: a seed run of the real pipeline creates the warehouse (tables, views, dlt
state); then terminal rows with generated IDs are inserted by SQL into its working copy (or,
with ``--postgres ADMIN_DSN``, into a scratch Postgres database) until it holds ``jobs - fresh``
of them; the jobs file lists all of them plus ``fresh`` jobs the
emulator serves and the warehouse has never seen. The re-run, a real ``up-jobs run``
subprocess as cron starts it, must request exactly the fresh ones. Prints its wall time, peak
RSS (its own VmHWM, bench/peak.py) and requests, and the jobs-file parse figures of the same file.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from bench.parsing import CHILD as PARSE_CHILD
from bench.runs import run_pipeline
from pipeline.demo import write_jobs_csv
from pipeline.emulator import EmulatorServer, JobStore, generate_jobs
from pipeline.names import DATASET_NAME
from pipeline.settings import DUCKDB_STORAGE_VERSION
from pipeline.states import TERMINAL_STATES
from pipeline.tables import PRIMARY_KEY
from pipeline.workspace import Workspace

SEED_JOBS = 200


def seed_run(db: Path, base_url: str, store: JobStore, concurrency: int, *extra: str, env: dict[str, str] | None = None) -> None:
    """The real pipeline on the emulator's first SEED_JOBS jobs (all finished): it creates the
    warehouse's tables, views and dlt state."""
    seed_file = write_jobs_csv(store.refs()[:SEED_JOBS], db.parent / "seed.csv")
    seeded = run_pipeline(base_url, seed_file, db, concurrency, *extra, env=env, cwd=db.parent)
    if seeded["code"] != 0:
        raise SystemExit(f"seed run failed (exit {seeded['code']}):\n{seeded['output']}")


def build_warehouse(db: Path, base_url: str, store: JobStore, terminal_rows: int, concurrency: int) -> tuple[str, str]:
    """Seed run, then synthetic terminal rows inserted into the working copy."""
    seed_run(db, base_url, store, concurrency)
    started = time.monotonic()
    terminal = ", ".join(f"'{state}'" for state in sorted(TERMINAL_STATES))
    with duckdb.connect(str(db.with_name(db.name + ".work") / "work.duckdb")) as connection:
        connection.execute(f"""
            insert into {DATASET_NAME}.workflow_jobs
            select template.* replace (
                'scale' || lpad(series.i::varchar, 27, '0') as id,
                substr(md5(series.i::varchar), 1, 14) as _dlt_id
            )
            from (select * from {DATASET_NAME}.workflow_jobs where state in ({terminal}) limit 1) as template,
                range({terminal_rows - SEED_JOBS}) as series(i)
        """)
        held = connection.execute(f"select count(*) from {DATASET_NAME}.workflow_jobs").fetchall()[0][0]
        workflow_id, space_id = connection.execute(
            f"select workflow_id, space_id from {DATASET_NAME}.workflow_jobs where id like 'scale%' limit 1"
        ).fetchall()[0]
    Workspace.for_duckdb(db).publish(DUCKDB_STORAGE_VERSION, PRIMARY_KEY)  # as the run that loaded them would have
    print(f"    warehouse: {held:,} terminal rows ({time.monotonic() - started:.1f} s to insert and publish)")
    return workflow_id, space_id


def write_scale_jobs_file(path: Path, store: JobStore, terminal_rows: int, workflow_id: str, space_id: str) -> None:
    """Seed jobs, synthetic terminal jobs, then the fresh ones, one per line as users keep them."""
    refs = store.refs()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["workflow_id", "job_id", "space_id"])
        writer.writerows([ref.workflow_id, ref.job_id, ref.space_id] for ref in refs[:SEED_JOBS])
        writer.writerows([workflow_id, "scale" + str(i).zfill(27), space_id] for i in range(terminal_rows - SEED_JOBS))
        writer.writerows([ref.workflow_id, ref.job_id, ref.space_id] for ref in refs[SEED_JOBS:])


def build_postgres_warehouse(dsn: str, db: Path, base_url: str, store: JobStore, terminal_rows: int, concurrency: int) -> tuple[str, str]:
    """As :func:`build_warehouse`, into Postgres (``--destination postgres``)."""
    import psycopg2

    seed_run(db, base_url, store, concurrency, "--destination", "postgres", env=postgres_env(dsn))
    started = time.monotonic()
    terminal = ", ".join(f"'{state}'" for state in sorted(TERMINAL_STATES))
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(f"""
            insert into {DATASET_NAME}.workflow_jobs
            select (jsonb_populate_record(template, jsonb_build_object(
                'id', 'scale' || lpad(i::text, 27, '0'), '_dlt_id', substr(md5(i::text), 1, 14)))).*
            from {DATASET_NAME}.workflow_jobs as template, generate_series(0, {terminal_rows - SEED_JOBS - 1}) as i
            where template.id = (select id from {DATASET_NAME}.workflow_jobs where state in ({terminal}) limit 1)
        """)
        cursor.execute(f"select count(*) from {DATASET_NAME}.workflow_jobs")
        held = cursor.fetchone()[0]
        cursor.execute(f"select workflow_id, space_id from {DATASET_NAME}.workflow_jobs where id like 'scale%' limit 1")
        workflow_id, space_id = cursor.fetchone()
    print(f"    warehouse (Postgres): {held:,} terminal rows ({time.monotonic() - started:.1f} s to insert)")
    return workflow_id, space_id


def postgres_env(dsn: str) -> dict[str, str]:
    return {"DESTINATION__POSTGRES__CREDENTIALS": dsn}


@contextmanager
def scratch_database(admin_dsn: str) -> Iterator[str]:
    """A new database on the server, dropped afterwards; yields its DSN."""
    import psycopg2

    name = f"up_jobs_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    admin.cursor().execute(f"create database {name}")
    try:
        yield admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin.cursor().execute(f"drop database if exists {name} with (force)")
        admin.close()


def measure(args: argparse.Namespace) -> None:
    fresh, total = args.fresh, args.jobs
    terminal_rows = total - fresh
    where = "a scratch Postgres database" if args.postgres else "the DuckDB file"
    print(f"scale: {total:,} configured jobs, {terminal_rows:,} already loaded terminal in {where}, {fresh:,} to request; "
          f"L={args.latency_ms:g}ms C={args.concurrency}")
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:
        tmp = Path(folder)
        store = JobStore(generate_jobs(SEED_JOBS + fresh, seed=11))
        store.advance(fraction=1.0, seed=12)  # the seed jobs are finished; the fresh ones are new to the warehouse
        db = tmp / "scale.duckdb"
        server = stack.enter_context(EmulatorServer(store, latency_ms=args.latency_ms))
        if args.postgres:
            dsn = stack.enter_context(scratch_database(args.postgres))
            workflow_id, space_id = build_postgres_warehouse(dsn, db, server.base_url, store, terminal_rows, args.concurrency)
            extra, env = ("--destination", "postgres"), postgres_env(dsn)
        else:
            workflow_id, space_id = build_warehouse(db, server.base_url, store, terminal_rows, args.concurrency)
            extra, env = (), {}
        jobs_file = tmp / "jobs.csv"
        write_scale_jobs_file(jobs_file, store, terminal_rows, workflow_id, space_id)
        print(f"    jobs file: {total:,} lines, {jobs_file.stat().st_size / 1e6:.0f} MB")
        before = store.total_requests
        rerun = run_pipeline(server.base_url, jobs_file, db, args.concurrency, *extra, env=env, cwd=tmp)
        requests = store.total_requests - before
        print(f"[scale] re-run: wall {rerun['wall']:.2f} s (target < 15), peak RSS {rerun['rss_mb']:.0f} MB (target < 300), "
              f"requests {requests:,} (expected {fresh:,}), exit {rerun['code']}")
        for line in rerun["output"].splitlines():
            if line.startswith(("time taken", "jobs listed", "  skipped", "  fetched")):
                print("    " + line)
        parsed = subprocess.run([sys.executable, "-c", PARSE_CHILD, str(jobs_file)], capture_output=True, text=True, check=True)
        print(f"[parse] the same {total:,}-line jobs file (target < 5 s, < 200 MB): {parsed.stdout.strip()}")
