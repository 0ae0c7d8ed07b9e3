"""Open the analysis database from pandas the safe way: read-only, briefly, with real dtypes.

    from pipeline.analytics import read_view
    stats = read_view("workflow_duration_stats", "up_jobs.duckdb")

A read-only connection never blocks a run (runs publish a new file atomically) and is closed
before returning, so notebooks do not hold locks between cells.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pandas as pd

DATASET = "telestream_up"
_NAME = re.compile(r"[a-z_][a-z0-9_]*")


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
