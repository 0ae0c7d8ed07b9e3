"""What the pipeline reads from and writes to the destination besides loading: empty tables,
the load lock between shards, and the checks that turn a wrong destination name or login into
a configuration error (reading its state for planning: :mod:`pipeline.planning`). The views:
:mod:`pipeline.views`.

Everything goes through dlt's SQL client, so it works for any SQL destination dlt supports.
"""

from __future__ import annotations

import difflib
import re
import time
from contextlib import contextmanager
from typing import Any, Iterator

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.client import WithStagingDataset
from dlt.common.destination.exceptions import DestinationUndefinedEntity, UnknownDestinationModule
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase

from pipeline import tables
from pipeline.errors import chain, naming_options
from pipeline.settings import ConfigError
from pipeline.views import (  # noqa: F401 - re-exported: the views' home was this module
    ViewError,
    apply_views,
    check_runs_on,
    destination_kind,
    translate,
    view_sources,
)
from pipeline.workspace import LockHeld

MISSING = (DatabaseUndefinedRelation, DestinationUndefinedEntity)


LOAD_LOCK_KEY = 0x5550_4A4F_4253  # "UPJOBS": one advisory lock for every shard of every host
LOAD_LOCKING_DESTINATIONS = ("postgres",)
DEFAULT_LOAD_LOCK_WAIT_SECONDS = 300.0
"""How long a shard waits for another shard's load when ``--lock-timeout`` is 0 (the default):
shards take turns loading, so waiting a little is normal, but never forever."""
LOCK_POLL_SECONDS = 0.25


@contextmanager
def load_lock(
    pipeline: dlt.Pipeline, timeout_seconds: float | None = None, timings: dict[str, float] | None = None
) -> Iterator[None]:
    """Serialise normalise+load+DDL across shards on Postgres (they share staging tables and DDL).

    Fetching, the slow part, stays parallel; loads are short. Waits at most ``timeout_seconds``
    (``DEFAULT_LOAD_LOCK_WAIT_SECONDS`` when 0 or None), then raises LockHeld naming the session
    that holds it; the wait is added to ``timings["load lock wait"]``. Other warehouses: no lock
    (run shards there with an orchestrator's pool of one for the load, or accept dlt's behaviour).
    """
    if destination_kind(pipeline) not in LOAD_LOCKING_DESTINATIONS:
        yield
        return
    limit = timeout_seconds if timeout_seconds and timeout_seconds > 0 else DEFAULT_LOAD_LOCK_WAIT_SECONDS
    with pipeline.sql_client() as client:
        started = time.monotonic()
        while not (client.execute_sql("select pg_try_advisory_lock(%s)", LOAD_LOCK_KEY) or [[False]])[0][0]:
            waited = time.monotonic() - started
            if waited >= limit:
                raise naming_options(LockHeld, lock_holder_message(client, waited))
            time.sleep(min(LOCK_POLL_SECONDS, limit - waited))
        if timings is not None:
            timings["load lock wait"] = timings.get("load lock wait", 0.0) + time.monotonic() - started
        try:
            yield
        finally:
            client.execute_sql("select pg_advisory_unlock(%s)", LOAD_LOCK_KEY)


_LOCK_HOLDER = """
select activity.pid, activity.usename, activity.application_name, activity.client_addr,
       activity.backend_start, activity.state, activity.state_change
from pg_locks as lock
left join pg_stat_activity as activity on activity.pid = lock.pid
where lock.locktype = 'advisory' and lock.granted
    and lock.classid::bigint = %s and lock.objid::bigint = %s and lock.objsubid = 1
    and lock.database = (select oid from pg_database where datname = current_database())
"""


def lock_holder_message(client: Any, waited: float) -> str:
    """Who holds the load lock, from pg_locks and pg_stat_activity, as one line for exit 5."""
    rows = client.execute_sql(_LOCK_HOLDER, LOAD_LOCK_KEY >> 32, LOAD_LOCK_KEY & 0xFFFF_FFFF) or []
    return _held_by(f"the warehouse load lock (Postgres advisory lock {LOAD_LOCK_KEY}) is still held after waiting {waited:.1f} s", rows)


_TABLE_LOCK_HOLDER = """
select activity.pid, activity.usename, activity.application_name, activity.client_addr,
       activity.backend_start, activity.state, activity.state_change
from pg_locks as lock
join pg_stat_activity as activity on activity.pid = lock.pid
where lock.locktype = 'relation' and lock.granted and lock.relation = to_regclass(%s)
    and lock.pid <> pg_backend_pid()
order by activity.xact_start nulls last
limit 1
"""


@contextmanager
def table_lock_wait(client: Any, table: str, timeout_seconds: float | None) -> Iterator[None]:
    """Statements on ``table`` in this session wait for another session's lock at most
    ``timeout_seconds`` (the load lock's wait when 0 or None), then raise LockHeld (exit 5)
    naming the holder. Postgres waits forever by default: a transaction left open after a
    ``LOCK TABLE`` or an ``ALTER`` hung the run (14 minutes and counting, seen here), and every
    later cron run then exited 5 on the run lock with no word of why."""
    limit = timeout_seconds if timeout_seconds and timeout_seconds > 0 else DEFAULT_LOAD_LOCK_WAIT_SECONDS
    client.execute_sql("select set_config('lock_timeout', %s, false)", f"{int(limit * 1000)}ms")
    try:
        yield
    except Exception as error:
        if not any(getattr(cause, "pgcode", None) == LOCK_NOT_AVAILABLE for cause in chain(error)):
            raise
        rows = client.execute_sql(_TABLE_LOCK_HOLDER, table) or []
        raise naming_options(LockHeld, _held_by(f"{table} is still locked by another session after waiting {limit:.0f} s", rows)) from error
    finally:
        client.execute_sql("select set_config('lock_timeout', '0', false)")


LOCK_NOT_AVAILABLE = "55P03"
"""Postgres' SQLSTATE for ``canceling statement due to lock timeout``."""


def _held_by(prefix: str, rows: list[Any]) -> str:
    if not rows:
        return prefix + " (its holder just left; the next run proceeds)"
    pid, user, application, client_addr, since, state, state_since = rows[0]
    who = ", ".join(part for part in (
        f"user {user}" if user else "",
        f"application {application!r}" if application else "",
        f"from {client_addr}" if client_addr else "",
        f"connected since {since:%Y-%m-%d %H:%M:%S %Z}".strip() if since else "",
        f"{state} since {state_since:%Y-%m-%d %H:%M:%S %Z}".strip() if state and state_since else "",
    ) if part)
    return (f"{prefix}: held by server process {pid}" + (f" ({who})" if who else "")
            + f"; raise {{lock_timeout_seconds}}, or if that session is stale end it: select pg_terminate_backend({pid})")


def ensure_tables(pipeline: dlt.Pipeline) -> None:
    """Create every table the views read, empty, so views apply even before the first error;
    and again any table or column the destination lost while the local schema still records it.

    The second case is a dataset dropped, or the credentials pointed at a new database, with the
    project's local pipeline folder kept: dlt then creates only the tables a load brings rows to
    and stores the schema's version as current, so a table with no rows yet (``fetch_error_state``)
    was never created again, and every later run failed applying the views that read it. An
    orchestrator's ``prepare_tables`` runs this before any load: then the dataset and dlt's own
    tables are missing too. ``up-jobs run`` calls it before each load (:func:`loader.normalize_load`):
    a load into a table dlt believes exists fails, and failed on every run (``job_observations``
    dropped: exit 1 each time). One ``information_schema`` query per run (19-30 ms on local Postgres)."""
    schema = pipeline.default_schema
    missing = [table for table in tables.empty_table_schemas() if table["name"] not in schema.tables]
    for table in missing:
        schema.update_table(table)
    if missing:
        pipeline.sync_schema()
    if destination_kind(pipeline) == "duckdb":
        return  # our working copy: a lost one is rebuilt from the published file before the run
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return  # a destination without information_schema: dlt's own migration is all there is
        expected = [*schema.data_table_names(), *schema.dlt_table_names()]
        lost = [name for name, columns in client.get_storage_tables(expected) if not columns or _lacks_columns(schema, name, columns)]
        if lost:
            client.initialize_storage()  # the dataset itself, when it went too
            # force: the version may be stored, the tables are not; every table, not only the lost
            # ones: run before a load, the schema may hold a version dlt has not migrated yet, and
            # storing it after creating only these would make the load skip the other tables' new columns
            client.update_stored_schema(force=True)


def _lacks_columns(schema: Any, table: str, columns: dict[str, Any]) -> bool:
    """A column of the local schema that the destination's table no longer has (dropped by hand):
    dlt adds it only when its schema version changes, so every load would fail until then."""
    return bool(schema.get_new_table_columns(table, columns, case_sensitive=False))


class WarehouseDrift(RuntimeError):
    """A table of ours was changed by hand so that every run would fail: only a human can decide
    how to change it back (the data in it may matter), so the run stops naming the column and the fix."""


def check_columns(pipeline: dlt.Pipeline) -> bool:
    """True when a table or column of the local schema is missing in the warehouse (then
    :func:`ensure_tables` must run before planning, which reads ``workflow_jobs.updated_at``: a
    column dropped or renamed aside failed every run there). Stops, naming what to change, when a column of ours has another type in the warehouse than
    the pipeline loads (``elapsed_seconds`` made text: every run failed applying the views; made
    so ``updated_at``: planning failed on ``isfinite(text)``, no job was ever updated again), or a
    column it does not know is NOT NULL without a default (every row's insert fails: every job set
    aside on every run). One ``information_schema`` query (with a second only for a NOT NULL column
    we do not know); nothing to check before the first run or off SQL warehouses."""
    if pipeline.default_schema_name is None or destination_kind(pipeline) == "duckdb":
        return False
    schema = pipeline.default_schema
    lost = False
    with pipeline.destination_client() as client:
        if not isinstance(client, SqlJobClientBase):
            return False
        problems = []
        for table, found in client.get_storage_tables(schema.data_table_names()):
            lost = lost or not found or _lacks_columns(schema, table, found)
            wanted = schema.tables[table].get("columns", {})
            for name, column in found.items():
                expected = wanted.get(name, {}).get("data_type")
                if expected and column.get("data_type") and column["data_type"] != expected:
                    problems.append(f"{table}.{name} is {column['data_type']}, the pipeline loads {expected} (change the "
                                    "type back, or rename the column aside: the next run adds it, --refresh refills it)")
                elif name not in wanted and column.get("nullable") is False and not _has_default(client, table, name):
                    problems.append(f"{table}.{name} is NOT NULL with no default, the pipeline does not write it (alter "
                                    f"table {pipeline.dataset_name}.{table} alter column {name} drop not null)")
        if isinstance(client, WithStagingDataset):
            _reset_staging_if_stale(client, schema)
    if problems:
        raise WarehouseDrift(f"columns of {pipeline.dataset_name} changed by hand fail every run: " + "; ".join(problems))
    return lost


def _reset_staging_if_stale(client: Any, schema: Any) -> None:
    """Drop this pipeline's merge staging dataset when a column of one of its tables has another
    type than the schema: dlt empties staging tables and adds columns, never retypes, so such a
    table (``name`` made int there) failed every load of every later run. It holds nothing between
    loads; dlt creates it again with the next load. One more ``information_schema`` query."""
    with client.with_staging_dataset():
        for table, found in client.get_storage_tables(schema.data_table_names()):
            wanted = schema.tables[table].get("columns", {})
            retyped = any(wanted.get(name, {}).get("data_type") not in (None, column.get("data_type")) for name, column in found.items())
            if retyped:
                client.sql_client.drop_dataset()
                return


def _has_default(client: Any, table: str, column: str) -> bool:
    rows = client.sql_client.execute_sql(
        "select column_default is not null from information_schema.columns "
        "where table_schema = %s and table_name = %s and column_name = %s",
        client.sql_client.dataset_name, table, column,
    )
    return bool(rows and rows[0][0])


def check_destination_name(name: str) -> None:
    """An unknown ``--destination`` is a configuration error naming the setting, not a traceback."""
    try:
        Destination.from_reference(name)
    except UnknownDestinationModule:
        close = difflib.get_close_matches(name, dlt.destinations.__all__, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise naming_options(
            ConfigError,
            f"unknown destination {name!r} ({{destination}} or sources.up_jobs.destination): {hint}"
            f"dlt's destinations are {', '.join(sorted(dlt.destinations.__all__))}; a named destination "
            f"needs destination.{name}.destination_type"
        ) from None


# What a database says when the credentials, not the network, are wrong (Postgres, Snowflake, MSSQL, ...)
LOGIN_REFUSED = re.compile(
    r"authentication failed|password|no pg_hba\.conf entry|role \S+ does not exist|database \S+ does not exist"
    r"|incorrect username|login failed|access denied|invalid credentials",
    re.IGNORECASE,
)
_SECRET_IN_URL = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


class WarehouseUnreachable(RuntimeError):
    """The destination did not answer (down, wrong host or port); the next run tries again."""


def check_connection(pipeline: dlt.Pipeline) -> None:
    """Connect once before any work: a refused login is a configuration error naming the setting."""
    name = pipeline.destination.destination_name
    setting = f"destination.{name}.credentials (or DESTINATION__{name.upper()}__CREDENTIALS)"
    try:
        with pipeline.sql_client() as client:
            client.execute_sql("select 1")
    except MISSING:
        return  # connected; the dataset is created by the first load
    except Exception as error:  # every driver has its own connection errors
        reason = _SECRET_IN_URL.sub(r"\1***@", _connection_reason(error))
        if LOGIN_REFUSED.search(reason):
            raise ConfigError(f"the {name} destination refused the login: {reason}; check {setting}") from None
        raise WarehouseUnreachable(f"cannot reach the {name} destination: {reason}; check {setting} or the server") from None


def _connection_reason(error: BaseException) -> str:
    """The driver's own line, without the ``connection to server at ... failed: FATAL:`` preamble."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return re.sub(r"^.*?failed:\s*(FATAL:\s*)?", "", text) or text
