"""What the pipeline reads from and writes to the destination besides loading: held job
state, open fetch errors, empty tables and the analytics views.

Everything goes through dlt's SQL client, so it works for any SQL destination dlt supports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from pipeline import tables
from pipeline.job_ids import JobRef
from pipeline.outcomes import HeldJob

SQL_DIR_CANDIDATES = (
    Path(__file__).resolve().parent / "sql",  # installed: sql/ is packaged as pipeline/sql
    Path(__file__).resolve().parent.parent / "sql",  # source checkout
)
MISSING = (DatabaseUndefinedRelation, DestinationUndefinedEntity)


class ViewError(RuntimeError):
    """A view in sql/ could not be applied; names the file and the database's reason."""


def _query(pipeline: dlt.Pipeline, sql: str) -> list[tuple[Any, ...]]:
    try:
        with pipeline.sql_client() as client:
            return list(client.execute_sql(sql) or [])
    except MISSING:
        return []


def held_jobs(pipeline: dlt.Pipeline) -> dict[str, HeldJob]:
    """``id → (updated_at, state)`` for every loaded job; empty before the first load."""
    rows = _query(pipeline, f"select id, updated_at, state from {pipeline.dataset_name}.{tables.WORKFLOW_JOBS}")
    return {job_id: HeldJob(updated_at, state) for job_id, updated_at, state in rows}


def open_error_refs(pipeline: dlt.Pipeline) -> frozenset[JobRef]:
    rows = _query(pipeline, f"select space_id, workflow_id, job_id from {pipeline.dataset_name}.open_fetch_errors")
    return frozenset(JobRef(*row) for row in rows)


def ensure_tables(pipeline: dlt.Pipeline) -> None:
    """Create every table the views read, empty, so views apply even before the first error."""
    schema = pipeline.default_schema
    missing = [table for table in tables.empty_table_schemas() if table["name"] not in schema.tables]
    if not missing:
        return
    for table in missing:
        schema.update_table(table)
    pipeline.sync_schema()


def sql_dir() -> Path:
    for candidate in SQL_DIR_CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise ViewError("the sql/ folder with the view definitions was not found next to the package")


def view_files() -> list[Path]:
    return sorted(sql_dir().glob("*.sql"))


def apply_views(pipeline: dlt.Pipeline) -> list[str]:
    """``create or replace`` every view; order is found by retrying until dependencies exist."""
    pending = {path.stem: path.read_text(encoding="utf-8") for path in view_files()}
    applied: list[str] = []
    with pipeline.sql_client() as client:
        while pending:
            pending_before_pass = len(pending)
            errors: dict[str, Exception] = {}
            for name, sql in list(pending.items()):
                try:
                    client.execute_sql(sql)
                except Exception as error:  # noqa: BLE001 - may depend on a view not yet applied
                    errors[name] = error
                else:
                    applied.append(name)
                    del pending[name]
            if len(pending) == pending_before_pass:  # no progress: a real error, not an ordering issue
                name, error = next(iter(errors.items()))
                raise ViewError(f"sql/{name}.sql could not be applied: {str(error).splitlines()[0]}")
    return applied
