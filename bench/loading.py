"""Loading cost alone (no HTTP): the same normalised rows through dlt four ways and plain DuckDB.

Rows come from the emulator's generator and the real normaliser; each variant loads them into
a fresh DuckDB file with the same merge-on-id table, and is timed end to end (extract,
normalize, load). Peak RSS is per variant, measured in a child process.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import dlt
import duckdb

from pipeline import tables
from pipeline.arrow_rows import rows_to_table
from pipeline.emulator import generate_jobs
from pipeline.normalize import normalize_job


def _rows(count: int) -> list[dict[str, Any]]:
    return [normalize_job(body, ref).row for ref, body in generate_jobs(count, seed=1)]


def _dlt_load(rows: list[dict[str, Any]], folder: Path, file_format: str | None, as_arrow: bool) -> None:
    pipeline = dlt.pipeline("loading", destination=dlt.destinations.duckdb(str(folder / "l.duckdb")),
                            dataset_name="bench", pipelines_dir=str(folder))
    batches = [rows[index:index + 1000] for index in range(0, len(rows), 1000)]
    data = [rows_to_table(batch) for batch in batches] if as_arrow else batches

    @dlt.resource(name="workflow_jobs", write_disposition="merge", primary_key="id",
                  columns=tables.columns_hint(tables.WORKFLOW_JOBS))
    def workflow_jobs() -> Any:
        yield from data

    pipeline.run(workflow_jobs(), loader_file_format=file_format)


def _plain_duckdb(rows: list[dict[str, Any]], folder: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)  # noqa: F841 - read by name by DuckDB's replacement scan below
    with duckdb.connect(str(folder / "plain.duckdb")) as connection:
        connection.execute("create table workflow_jobs as select * from frame")


def _variant(name: str, count: int, queue: Any) -> None:
    rows = _rows(count)
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        if name == "plain":
            _plain_duckdb(rows, Path(folder))
        else:
            file_format, as_arrow = {"dicts/insert_values": (None, False), "dicts/parquet": ("parquet", False),
                                     "arrow/parquet": ("parquet", True)}[name]
            _dlt_load(rows, Path(folder), file_format, as_arrow)
        queue.put((name, time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def compare(count: int) -> None:
    print(f"loading {count} normalised job rows into a fresh DuckDB (merge on id for dlt); each in its own process")
    context = multiprocessing.get_context("spawn")
    for name in ("dicts/insert_values", "dicts/parquet", "arrow/parquet", "plain"):
        queue = context.Queue()
        process = context.Process(target=_variant, args=(name, count, queue))
        process.start()
        label, seconds, rss = queue.get()
        process.join()
        label = "plain DuckDB insert of a pandas frame" if label == "plain" else f"dlt, {label}"
        print(f"  {label:<40} {seconds:6.2f}s  peak RSS {rss:5.0f} MB (rows in memory included)")
