"""Publish cost alone: copy the working DuckDB file to the analysis file users open.

The working copy is built as a run builds it (dlt merge loads of normalised Arrow rows, a
second load so dlt's staging schema holds rows, the error tables, the views); then
``Workspace.publish`` is timed a few times and the published file's size and storage
version are printed.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import dlt
import duckdb

from pipeline import tables, warehouse
from pipeline.arrow_rows import rows_to_table
from pipeline.emulator import generate_jobs
from pipeline.factories import dlt_columns_on_arrow_rows, make_pipeline
from pipeline.normalize import normalize_job
from pipeline.workspace import Workspace


def _load(pipeline: dlt.Pipeline, rows: list[dict[str, Any]]) -> None:
    batches = [rows_to_table(rows[index:index + 1000]) for index in range(0, len(rows), 1000)]

    @dlt.resource(name=tables.WORKFLOW_JOBS, write_disposition="merge", primary_key="id",
                  columns=tables.columns_hint(tables.WORKFLOW_JOBS))
    def workflow_jobs() -> Any:
        yield from batches

    pipeline.run(workflow_jobs(), loader_file_format="parquet")


def build_workspace(folder: Path, count: int) -> Workspace:
    rows = [normalize_job(body, ref).row for ref, body in generate_jobs(count, seed=1)]
    workspace = Workspace.for_duckdb(folder / "up_jobs.duckdb")
    workspace.prepare()
    pipeline = make_pipeline(workspace)
    with dlt_columns_on_arrow_rows():  # the tables as a run writes them
        _load(pipeline, rows)
        _load(pipeline, rows[: max(1, count // 10)])  # a merge load leaves rows in the staging schema
    warehouse.ensure_tables(pipeline)
    warehouse.apply_views(pipeline)
    return workspace


def _storage(path: Path) -> str:
    """The storage format DuckDB reports for the file (what decides which releases read it)."""
    with duckdb.connect() as connection:
        connection.execute(f"attach '{path}' as published (read_only)")
        rows = connection.sql("select tags from duckdb_databases() where database_name = 'published'").fetchall()
    return str(rows[0][0].get("storage_version", "?"))


def measure(count: int, repeats: int = 3) -> None:
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        workspace = build_workspace(Path(folder), count)
        print(f"working copy with {count} jobs built in {time.monotonic() - started:.1f}s, "
              f"{workspace.work_db.stat().st_size / 1e6:.1f} MB")
        seconds = []
        for _ in range(repeats):
            started = time.monotonic()
            workspace.publish()
            seconds.append(time.monotonic() - started)
        assert workspace.db_path is not None
        print(f"publish: median {statistics.median(seconds):.3f}s of {repeats} ({', '.join(f'{s:.3f}' for s in seconds)}); "
              f"published file {workspace.db_path.stat().st_size / 1e6:.1f} MB, storage {_storage(workspace.db_path)}")
