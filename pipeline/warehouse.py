"""What the pipeline reads from and writes to the destination besides loading: held job
state, open fetch errors, empty tables and the analytics views.

Everything goes through dlt's SQL client, so it works for any SQL destination dlt supports.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import dlt
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel
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
            return [tuple(row) for row in client.execute_sql(sql) or []]
    except MISSING:
        return []


LOAD_LOCK_KEY = 0x5550_4A4F_4253  # "UPJOBS": one advisory lock for every shard of every host
LOAD_LOCKING_DESTINATIONS = ("postgres",)


@contextmanager
def load_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Serialise normalise+load+DDL across shards on Postgres (they share staging tables and DDL).

    Fetching, the slow part, stays parallel; loads are short. Other warehouses: no lock (run
    shards there with an orchestrator's pool of one for the load, or accept dlt's behaviour).
    """
    if pipeline.destination.destination_name not in LOAD_LOCKING_DESTINATIONS:
        yield
        return
    with pipeline.sql_client() as client:
        client.execute_sql("select pg_advisory_lock(%s)", LOAD_LOCK_KEY)
        try:
            yield
        finally:
            client.execute_sql("select pg_advisory_unlock(%s)", LOAD_LOCK_KEY)


def held_jobs(pipeline: dlt.Pipeline) -> dict[str, HeldJob]:
    """``id → (updated_at, state)`` for every loaded job; empty before the first load."""
    rows = _query(pipeline, f"select id, updated_at, state from {pipeline.dataset_name}.{tables.WORKFLOW_JOBS}")
    return {job_id: HeldJob(updated_at, state) for job_id, updated_at, state in rows}


def open_error_refs(pipeline: dlt.Pipeline) -> frozenset[JobRef]:
    return frozenset(open_errors(pipeline))


def open_errors(pipeline: dlt.Pipeline) -> dict[JobRef, str]:
    """Each job whose latest fetch or load failed, with that failure's ``error_kind``."""
    sql = f"select space_id, workflow_id, job_id, error_kind from {pipeline.dataset_name}.open_fetch_errors"
    return {JobRef(space_id, workflow_id, job_id): kind for space_id, workflow_id, job_id, kind in _query(pipeline, sql)}


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


def view_sources() -> dict[str, str]:
    """View name → DuckDB SQL, in dependency order (a view after the views it selects from)."""
    sources = {path.stem: path.read_text(encoding="utf-8") for path in view_files()}
    ordered: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in path:
            raise ViewError(f"views depend on each other in a cycle: {' -> '.join(path + (name,))}")
        for dependency in _REFERENCE.findall(sources[name]):
            if dependency in sources and dependency != name:
                visit(dependency, path + (name,))
        ordered[name] = sources[name]

    for name in sorted(sources):
        visit(name, ())
    return ordered


_REFERENCE = re.compile(r"\btelestream_up\.(\w+)")


def translate(sql: str, dialect: str | None, name: str) -> str:
    """DuckDB SQL → the destination's dialect with sqlglot; a function with no equivalent is an error."""
    if dialect in (None, "duckdb"):
        return sql
    try:
        translated = sqlglot.transpile(sql, read="duckdb", write=dialect, unsupported_level=ErrorLevel.RAISE)[0]
        # sqlglot passes functions it does not know through unchanged; in the target they would
        # fail at query time, so name them now.
        unknown = sorted({node.name for node in sqlglot.parse_one(translated, read=dialect).find_all(exp.Anonymous)})
    except sqlglot.errors.SqlglotError as error:
        raise ViewError(f"sql/{name}.sql cannot be translated to {dialect}: {str(error).splitlines()[0]}") from None
    if unknown:
        raise ViewError(f"sql/{name}.sql cannot be translated to {dialect}: no known equivalent for {', '.join(unknown)}")
    return translated


# What sqlglot writes without complaint but the database refuses. BigQuery has PERCENTILE_CONT
# and PERCENTILE_DISC only as window ("navigation") functions, needing OVER; its aggregate
# APPROX_QUANTILES is approximate, not the linear interpolation the views promise.
WINDOW_ONLY_FUNCTIONS: dict[str, tuple[type[exp.Expression], ...]] = {
    "bigquery": (exp.PercentileCont, exp.PercentileDisc),
}


def check_runs_on(translated: str, dialect: str | None, name: str) -> None:
    """Name now what would fail at query time: a window-only function used as an aggregate."""
    kinds = WINDOW_ONLY_FUNCTIONS.get(dialect or "", ())
    if not kinds:
        return
    misused = sorted({
        node.sql_name()
        for node in sqlglot.parse_one(translated, read=dialect).find_all(*kinds)
        if isinstance(node, exp.Func) and not node.find_ancestor(exp.Window)
    })
    if misused:
        raise ViewError(
            f"sql/{name}.sql cannot run on {dialect}: {', '.join(misused)} is only a window function there "
            "and no exact aggregate equivalent exists"
        )


def destination_dialect(pipeline: dlt.Pipeline) -> str | None:
    return pipeline.destination.capabilities().sqlglot_dialect  # type: ignore[no-any-return]


def apply_views(pipeline: dlt.Pipeline, sources: dict[str, str] | None = None) -> list[str]:
    """``create or replace`` every view in dependency order, translated to the destination's SQL.

    A view that cannot be applied does not stop the others (a view built on it fails too);
    one ViewError at the end names every failure.
    """
    dialect = destination_dialect(pipeline)
    applied: list[str] = []
    failures: list[str] = []
    with pipeline.sql_client() as client:
        for name, sql in (sources or view_sources()).items():
            try:
                statement = translate(sql, dialect, name)
                check_runs_on(statement, dialect, name)
            except ViewError as error:
                failures.append(str(error))
                continue
            try:
                client.execute_sql(statement)
            except Exception as error:  # noqa: BLE001 - named and reported as one clear line
                failures.append(f"sql/{name}.sql could not be applied: {str(error).strip().splitlines()[0]}")
                continue
            applied.append(name)
    if failures:
        raise ViewError(f"{len(failures)} view(s) not applied ({len(applied)} applied): " + "; ".join(failures))
    return applied
