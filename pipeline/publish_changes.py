"""Publishing by changes: bring a copy of the last published file up to date with what the loads
since then wrote, instead of copying every row of the working copy every run.

At a million loaded jobs a full copy took 4-5 s and ~120 MB of RSS per run (``bench scale``), most
of a re-run that requests 1 % of the jobs. Here a big table costs what changed in it: rows of
loads newer than the newest load already in the published table, with the older versions of
merged rows (same primary key) deleted first. Small tables, and tables without dlt's load id,
are copied whole.

Anything unexpected (a table or column or view that differs, row counts that disagree after the
update) answers False, and the caller makes a full copy: a published file is never a guess.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import duckdb

from pipeline.sql_quote import identifier

SMALL_TABLE_ROWS = 50_000
"""Tables up to this many rows are copied whole: simpler, and as fast as working out the change."""
FULL_COPY_EVERY = 96
"""Every this many publishes (a day at a 15-minute cron) one is a full copy: deleted rows leave
free blocks in a DuckDB file, and a fresh copy compacts it."""


def fingerprint(path: Path) -> list[int] | None:
    """``[size, mtime_ns]``: what a writer of the file changes; None when it cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


@dataclass(frozen=True)
class PublishedRecord:
    """What the last publish left: the published file and the working copy it read, so the next
    run knows whether either is still exactly that (lists, as JSON gives them back)."""

    published: list[int]
    working: list[int]
    storage_version: str
    publishes_since_full_copy: int = 0

    @classmethod
    def of(cls, published: Path, working: Path, storage_version: str, publishes_since_full_copy: int) -> "PublishedRecord":
        return cls(fingerprint(published) or [], fingerprint(working) or [], storage_version, publishes_since_full_copy)

    def describes(self, published: Path, storage_version: str) -> bool:
        """The published file is the one we wrote last (not replaced or written by someone), in this format."""
        return fingerprint(published) == self.published and self.storage_version == storage_version

    def describes_working(self, working: Path) -> bool:
        """The working copy is byte for byte what the last publish read."""
        return fingerprint(working) == self.working


def read_record(path: Path) -> PublishedRecord | None:
    """None when there is none yet, or it is unreadable or not what :func:`write_record` writes
    (every run would fail on a count that is not a number): the next publish is then a full copy
    and writes a new one."""
    try:
        record = PublishedRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return record if _well_formed(record) else None


def _well_formed(record: PublishedRecord) -> bool:
    def integers(value: object) -> bool:
        return isinstance(value, list) and all(type(item) is int for item in value)

    return (integers(record.published) and integers(record.working) and isinstance(record.storage_version, str)
            and type(record.publishes_since_full_copy) is int)


def write_record(path: Path, record: PublishedRecord) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(asdict(record)))
    os.replace(temporary, path)


def update_copy(
    connection: duckdb.DuckDBPyConnection, merge_keys: Mapping[str, Sequence[str]], skip_schemas: Collection[str]
) -> bool:
    """Make ``published`` (a copy of the last published file) equal to ``working``; both attached.

    False when that cannot be done by changes; ``published`` is then in an unknown state and
    must be thrown away."""
    if _shape(connection, "working", skip_schemas) != _shape(connection, "published", skip_schemas):
        return False
    tables = connection.execute(
        "select schema_name, table_name, list(column_name) from duckdb_columns() join duckdb_tables() "
        "using (database_name, schema_name, table_name) where database_name = 'working' group by all order by all"
    ).fetchall()
    for schema, table, columns in tables:
        if schema in skip_schemas:
            continue
        name = f"{identifier(schema)}.{identifier(table)}"
        rows = _scalar(connection, f"select count(*) from working.{name}")
        newest = _scalar(connection, f"select max(_dlt_load_id) from published.{name}") if "_dlt_load_id" in columns else None
        if rows <= SMALL_TABLE_ROWS or newest is None:
            connection.execute(f"delete from published.{name}")
            connection.execute(f"insert into published.{name} by name select * from working.{name}")
            continue
        changed = f"select * from working.{name} where _dlt_load_id > $newest"
        key = merge_keys.get(table)
        if key:
            matches = " and ".join(f"published.{name}.{identifier(column)} = changed.{identifier(column)}" for column in key)
            connection.execute(f"delete from published.{name} using ({changed}) as changed where {matches}", {"newest": newest})
        connection.execute(f"insert into published.{name} by name {changed}", {"newest": newest})
        if _scalar(connection, f"select count(*) from published.{name}") != rows:
            return False  # rows changed other than by a newer load (a dlt drop, a partial load): copy whole
    return True


def _shape(connection: duckdb.DuckDBPyConnection, database: str, skip_schemas: Collection[str]) -> list[Any]:
    """Every table's columns and types, every view's name, and the recorded definitions of our
    views (their SQL text cannot be compared: each storage version prints it differently), so a
    changed table or view makes a full copy."""
    from pipeline.views import STATE_TABLE as VIEW_RECORD_TABLE  # views import dlt: not at module level

    columns = connection.execute(
        "select schema_name, table_name, column_index, column_name, data_type from duckdb_columns() "
        "where database_name = $database and not internal order by all",
        {"database": database},
    ).fetchall()
    views = connection.execute(
        "select schema_name, view_name from duckdb_views() where database_name = $database and not internal order by all",
        {"database": database},
    ).fetchall()
    recorded = [
        connection.execute(f"select * from {database}.{identifier(schema)}.{identifier(table)} order by all").fetchall()
        for schema, table in connection.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = $database and table_name = $name",
            {"database": database, "name": VIEW_RECORD_TABLE},
        ).fetchall()
    ]
    return [row for row in [*columns, *views] if row[0] not in skip_schemas] + recorded


def _scalar(connection: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = connection.execute(sql).fetchone()
    assert row is not None, "an aggregate returns one row"
    return row[0]

