"""Concurrency strategies for fetching, measured on the same emulator (run in its own process).

(a) our bounded thread pool, fetch only; (b) dlt's own ``parallelized=True`` resource
yielding ``@dlt.defer`` calls, through ``pipeline.extract``; (c) our thread pool inside the
real source, through ``pipeline.extract``. Same N, latency and concurrency for each.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import dlt

from pipeline.emulator import generate_jobs
from pipeline.emulator.server import DEFAULT_API_KEY
from pipeline.fetch import fetch_concurrently
from pipeline.http import RetryPolicy, UpClient
from pipeline.outcomes import classify
from pipeline.source import FetchPlan, FetchStats, up_jobs_source


def _start_emulator(jobs: int, latency_ms: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "emulator", "--port", "0", "--jobs", str(jobs), "--seed", "1",
         "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE, text=True, cwd=tempfile.gettempdir(),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert process.stdout is not None
    base_url = re.search(r"at (http://\S+)", process.stdout.readline()).group(1)
    return process, base_url


def _client(base_url: str, concurrency: int) -> UpClient:
    return UpClient(base_url, DEFAULT_API_KEY, RetryPolicy(), pool_size=concurrency)


def _timed(label: str, jobs: int, floor: float, work: Any) -> None:
    started = time.monotonic()
    count = work()
    wall = time.monotonic() - started
    print(f"  {label:<52} {wall:6.2f}s  {count / wall:6.0f} jobs/s  wall/floor {wall / floor if floor else float('nan'):.2f}")


def compare(jobs: int, latency_ms: float, concurrency: int) -> None:
    refs = [ref for ref, _ in generate_jobs(jobs, seed=1)]
    floor = jobs * latency_ms / 1000 / concurrency
    process, base_url = _start_emulator(jobs, latency_ms)
    print(f"N={jobs} L={latency_ms:g}ms C={concurrency} floor={floor:.2f}s (emulator in its own process)")
    try:
        with tempfile.TemporaryDirectory() as folder:
            _timed("(a) thread pool, fetch only", jobs, floor,
                   lambda: sum(1 for _ in fetch_concurrently(_client(base_url, concurrency), refs, concurrency)))
            _timed("(b) dlt parallelized resource + @dlt.defer, extract", jobs, floor,
                   lambda: _dlt_deferred(base_url, refs, concurrency, Path(folder) / "b"))
            _timed("(c) thread pool inside the source, extract", jobs, floor,
                   lambda: _our_source(base_url, refs, concurrency, Path(folder) / "c"))
    finally:
        process.terminate()


def _pipeline(folder: Path) -> dlt.Pipeline:
    return dlt.pipeline("bench", destination=dlt.destinations.duckdb(str(folder / "b.duckdb")),
                        dataset_name="bench", pipelines_dir=str(folder))


def _dlt_deferred(base_url: str, refs: list, concurrency: int, folder: Path) -> int:
    client = _client(base_url, concurrency)
    lock, done = threading.Lock(), [0]

    @dlt.defer
    def fetch_one(ref: Any) -> Any:
        outcome = classify(client.fetch(ref), None)
        with lock:
            done[0] += 1
        return outcome.job_row

    @dlt.resource(name="jobs", parallelized=True)
    def jobs() -> Iterator[Any]:
        for ref in refs:
            yield fetch_one(ref)

    _pipeline(folder).extract(jobs(), workers=concurrency, max_parallel_items=concurrency * 2)
    return done[0]


def _our_source(base_url: str, refs: list, concurrency: int, folder: Path) -> int:
    stats = FetchStats()
    source = up_jobs_source(_client(base_url, concurrency), FetchPlan(refs, {}, frozenset()), stats, concurrency)
    _pipeline(folder).extract(source)
    return stats.fetched
