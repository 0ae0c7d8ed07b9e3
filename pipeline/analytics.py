"""Open the analysis database from pandas the safe way: read-only, briefly, with real dtypes.

    from pipeline.analytics import read_view
    stats = read_view("workflow_duration_stats", "up_jobs.duckdb")

A read-only connection never blocks a run (runs publish a new file atomically) and is closed
before returning, so notebooks do not hold locks between cells.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import pandas as pd

from pipeline.names import DATASET_NAME

DATASET = DATASET_NAME
_NAME = re.compile(r"[a-z_][a-z0-9_]*")
DB_ENV = "UP_JOBS_DB"
DB_NAMES = ("up_jobs.duckdb", "up_jobs_demo.duckdb")  # a real run's default --db, then the demo's


__all__ = ["find_database", "connect", "read_sql", "read_view"]  # the public API; the rest may change

def find_database(start: str | Path | None = None, names: tuple[str, ...] = DB_NAMES) -> Path:
    """The analysis database a notebook means: ``$UP_JOBS_DB``, else the first of ``names`` found in
    the working folder or one of its parents.

    ``jupyter lab notebooks/`` starts kernels in ``notebooks/``, while ``up-jobs demo`` leaves its
    file in the project root: looking upwards finds it from either place.
    """
    configured = os.environ.get(DB_ENV)
    if configured:
        path = Path(configured).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"{DB_ENV}={configured} does not exist (resolved: {path})")
        return path
    folder = Path(start or Path.cwd()).resolve()
    searched = [folder, *folder.parents]
    for candidate in (place / name for place in searched for name in names):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no {' or '.join(names)} in {folder} or its parent folders; run `up-jobs demo` in the project "
        f"folder, or set {DB_ENV} to the database file"
    )


def connect(db_path: str | Path = "up_jobs.duckdb") -> duckdb.DuckDBPyConnection:
    """A read-only connection; close it when done (or use it in a ``with`` block)."""
    return duckdb.connect(str(db_path), read_only=True)


def read_sql(sql: str, db_path: str | Path = "up_jobs.duckdb") -> pd.DataFrame:
    with connect(db_path) as connection:
        return connection.sql(sql).df()


def read_view(name: str, db_path: str | Path = "up_jobs.duckdb") -> pd.DataFrame:
    """A view or table of schema ``telestream_up`` as a DataFrame (tz-aware timestamps, floats)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a view name: {name!r}")
    return read_sql(f"select * from {DATASET}.{name}", db_path)
