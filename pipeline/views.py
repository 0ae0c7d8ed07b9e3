"""The analytics views in ``sql/``: translated to the destination's SQL, applied only when missing
or changed, and replaced without losing the views users built on ours.

Every run (every shard) calls :func:`apply_views` under the load lock. It compares a SHA-256 of
each view's translated statement with the one recorded in ``telestream_up._up_jobs_views`` and
touches only views that are missing or different, so the usual run costs two small queries.

Replacing a view whose columns changed: Postgres' ``create or replace view`` refuses to rename,
reorder or drop columns, and ``drop ... cascade`` would also remove users' views built on ours.
So on Postgres one transaction per changed view saves the views that depend on it (found through
``pg_depend``/``pg_rewrite``: definition, owner, grants), drops them and ours, creates ours with
the new definition and theirs with their saved one. If theirs no longer fits, the transaction is
rolled back and the error names their view: our old definition stays, nothing of theirs is lost.
DuckDB accepts any ``create or replace view``; there one transaction per view checks that every
user view which worked before still binds afterwards, with the same roll back otherwise.
"""

from __future__ import annotations

import graphlib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet, Any, Mapping

import dlt
import sqlglot
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from pipeline import tables
from pipeline.errors import first_line
from pipeline.names import DATASET_NAME

SQL_DIR_CANDIDATES = (
    Path(__file__).resolve().parent / "sql",  # installed: sql/ is packaged as pipeline/sql
    Path(__file__).resolve().parent.parent / "sql",  # source checkout
)
STATE_TABLE = "_up_jobs_views"
"""One row per view we applied: its name and the SHA-256 of the statement that created it."""
TRANSACTIONAL_DDL = ("duckdb", "postgres")
MISSING = (DatabaseUndefinedRelation, DestinationUndefinedEntity)


class ViewError(RuntimeError):
    """A view in sql/ could not be applied; names the file and the database's reason."""


@dataclass
class AppliedViews:
    names: list[str] = field(default_factory=list)
    """Every view now in place with its current definition."""
    changed: list[str] = field(default_factory=list)
    """The views this call created or replaced (missing or with another definition before)."""
    restored: list[str] = field(default_factory=list)
    """Users' views that depended on a replaced view and were recreated on top of it."""


def sql_dir() -> Path:
    for candidate in SQL_DIR_CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise ViewError("the sql/ folder with the view definitions was not found next to the package")


def view_files() -> list[Path]:
    return sorted(sql_dir().glob("*.sql"))


def read_sources() -> dict[str, str]:
    """View name → DuckDB SQL, by name; :func:`view_sources` also puts them in dependency order."""
    return {path.stem: path.read_text(encoding="utf-8") for path in view_files()}


def view_sources() -> dict[str, str]:
    """View name → DuckDB SQL, in dependency order (a view after the views it selects from)."""
    sources = read_sources()
    return {name: sources[name] for name in dependency_order(sources)}


DLT_TABLE_PREFIX = "_dlt_"
"""dlt's own tables in the dataset (``_dlt_loads``...), which a view may read."""


def references(sql: str, name: str) -> set[str]:
    """The tables and views of our dataset that view ``name`` selects from, as sqlglot parses them
    (quoted or not, whatever the layout; CTEs and the view itself are not references)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError as error:
        raise ViewError(f"sql/{name}.sql cannot be parsed to find what it selects from: {first_line(error)}") from None
    return {
        table.name for table in tree.find_all(exp.Table)
        if table.db.lower() == DATASET_NAME and table.name != name
    }


def dependency_order(sources: Mapping[str, str]) -> list[str]:
    """The views' names, each after the views it selects from (the same order every time).

    ViewError for views that select from each other in a cycle, and for a reference to something
    in our dataset that is neither one of these views nor a table the pipeline loads (a view
    renamed or removed while another still reads it).
    """
    known_tables = {*tables.COLUMNS, STATE_TABLE}
    graph: dict[str, list[str]] = {}
    for name in sorted(sources):
        reads = references(sources[name], name)
        missing = sorted(read for read in reads - set(sources) - known_tables if not read.startswith(DLT_TABLE_PREFIX))
        if missing:
            raise ViewError(f"sql/{name}.sql selects from {', '.join(f'{DATASET_NAME}.{read}' for read in missing)}, "
                            "which is neither a view in sql/ nor a table the pipeline loads")
        graph[name] = sorted(reads & set(sources))
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = list(reversed(error.args[1]))  # graphlib lists each node before what it depends on
        raise ViewError(f"views select from each other in a cycle: {' -> '.join(cycle)}") from None


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
    return pipeline.destination.capabilities().sqlglot_dialect


def destination_kind(pipeline: dlt.Pipeline) -> str:
    """``postgres`` also for a named destination of that type (``--destination analytics``)."""
    return str(pipeline.destination.destination_type).rsplit(".", 1)[-1]


def definition_hash(statement: str) -> str:
    return hashlib.sha256(statement.encode("utf-8")).hexdigest()


def statements(sources: dict[str, str], dialect: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """View name → statement for the destination, in dependency order; and view name → why it cannot be."""
    ready: dict[str, str] = {}
    failures: dict[str, str] = {}
    for name, sql in sources.items():
        try:
            statement = translate(sql, dialect, name)
            check_runs_on(statement, dialect, name)
        except ViewError as error:
            failures[name] = str(error)
            continue
        ready[name] = statement
    return ready, failures


def to_apply(wanted: dict[str, str], recorded: dict[str, str], existing: AbstractSet[str] | None) -> list[str]:
    """Views whose recorded hash differs from the wanted one, or that are not there (``existing``
    None: unknown, so apply all). Pure, so the rule is tested without a database."""
    return [
        name for name, statement in wanted.items()
        if recorded.get(name) != definition_hash(statement) or existing is None or name not in existing
    ]


def apply_views(pipeline: dlt.Pipeline, sources: dict[str, str] | None = None) -> AppliedViews:
    """Create or replace every view that is missing or changed, in dependency order.

    A view that cannot be applied does not stop the others (a view built on it fails too);
    one ViewError at the end names every failure. Run it under the load lock. When every view is
    current (the usual run) no SQL is parsed: the order matters only to what is applied.
    """
    dialect = destination_dialect(pipeline)
    destination = destination_kind(pipeline)
    sources = sources or read_sources()
    wanted, failures = statements(sources, dialect)
    result = AppliedViews()
    with pipeline.sql_client() as client:
        dataset = pipeline.dataset_name
        state = client.make_qualified_table_name(STATE_TABLE)
        catalog = _catalog(client, dataset)
        try:
            recorded = _recorded_hashes(client, state, dialect, catalog)
        except Exception:
            if destination in TRANSACTIONAL_DDL:
                raise
            recorded = {}  # no bookkeeping on this warehouse: every view is applied, as before it existed
        pending = to_apply(wanted, recorded, None if catalog is None else catalog.views)
        if pending or failures:
            order = dependency_order(sources)  # also what Postgres recreates a replaced view's dependents by
            wanted = {name: wanted[name] for name in order if name in wanted}
            pending = [name for name in wanted if name in pending]
        working_user_views = _binding_user_views(client, dataset, set(wanted)) if pending and destination == "duckdb" else []
        for name in pending:
            if name in result.changed:
                continue  # recreated with a view it depends on
            try:
                if destination == "postgres":
                    replaced, restored = _replace_on_postgres(client, state, dataset, name, wanted)
                else:
                    replaced, restored = _replace(client, state, name, wanted, destination, working_user_views)
            except ViewError as error:
                failures[name] = str(error)
                continue
            except Exception as error:  # named and reported as one clear line
                failures[name] = f"sql/{name}.sql could not be applied: {first_line(error)}"
                continue
            result.changed += replaced
            result.restored += restored
    result.names = [name for name in wanted if name not in failures]
    if failures:
        reasons = [failures[name] for name in dependency_order(sources) if name in failures]
        raise ViewError(f"{len(failures)} view(s) not applied ({len(result.names)} applied): " + "; ".join(reasons))
    return result


def _translated_ddl(sql: str, dialect: str | None) -> str:
    return sql if dialect in (None, "duckdb") else sqlglot.transpile(sql, read="duckdb", write=dialect)[0]


@dataclass(frozen=True)
class _Catalog:
    """The dataset's tables and views (lower-cased), read in one query."""

    tables: frozenset[str]
    views: frozenset[str]


def _catalog(client: Any, dataset: str) -> _Catalog | None:
    """So a view dropped by hand is recreated, and the state table is created rather than queried
    when missing; None when the warehouse has no such catalog view (every view counts as missing)."""
    sql = "select table_name, table_type from information_schema.tables where lower(table_schema) = lower(%s)"
    try:
        rows = client.execute_sql(sql, dataset) or []
    except Exception:  # a warehouse without this catalog view: treat every view as missing
        return None
    views = frozenset(str(name).lower() for name, kind in rows if str(kind).upper() == "VIEW")
    return _Catalog(frozenset(str(name).lower() for name, _ in rows) - views, views)


def _recorded_hashes(client: Any, state: str, dialect: str | None, catalog: _Catalog | None = None) -> dict[str, str]:
    """View name → hash of the statement last applied; creates the table the first time.

    With the catalog at hand a missing table is created without a failing query first (the
    failure's traceback holds a DuckDB cursor in a reference cycle until the collector runs).
    """
    if catalog is None or STATE_TABLE in catalog.tables:
        try:
            rows = client.execute_sql(f"select view_name, definition_sha256 from {state}")
            return {name: digest for name, digest in rows or []}
        except MISSING:
            pass
    ddl = f"create table if not exists {state} (view_name text, definition_sha256 text, applied_at timestamptz)"
    client.execute_sql(_translated_ddl(ddl, dialect))
    return {}


def _record(client: Any, state: str, names: list[str], wanted: dict[str, str]) -> None:
    for name in names:
        client.execute_sql(f"delete from {state} where view_name = %s", name)
        client.execute_sql(f"insert into {state} values (%s, %s, current_timestamp)", name, definition_hash(wanted[name]))


def _replace(
    client: Any, state: str, name: str, wanted: dict[str, str], destination: str, user_views: list[tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """``create or replace`` (DuckDB and most warehouses accept a change of columns); on DuckDB in a
    transaction that also checks every user view that bound before still binds."""
    if destination not in TRANSACTIONAL_DDL:  # Snowflake/BigQuery commit DDL at once anyway
        client.execute_sql(wanted[name])
        try:
            _record(client, state, [name], wanted)
        except Exception:  # bookkeeping only: unrecorded, the view is re-applied next run
            pass
        return [name], []
    with client.begin_transaction():
        client.execute_sql(wanted[name])
        # DuckDB names one broken view per transaction: look first at those that name ours
        for view, _ in sorted(user_views, key=lambda view: f"telestream_up.{name}" not in view[1].lower()):
            try:
                client.execute_sql(f"select * from {view} limit 0")
            except Exception as error:
                raise ViewError(_blocked(name, view, error)) from None
        _record(client, state, [name], wanted)
    return [name], []


def _blocked(name: str, view: str, error: BaseException) -> str:
    return (f"sql/{name}.sql not applied: your view {view} depends on telestream_up.{name} and would no longer "
            f"work on its new definition ({first_line(error)}); the old definition stays: change or drop "
            f"{view}, then the next run applies it")


def _binding_user_views(client: Any, dataset: str, ours: set[str]) -> list[tuple[str, str]]:
    """DuckDB: the other views in this database that work now, with their SQL (a view already
    broken is not ours to judge)."""
    rows = client.execute_sql(
        "select schema_name, view_name, sql from duckdb_views() where not internal and not temporary "
        "and database_name = current_database()"
    ) or []
    views = [(f'"{schema}"."{view}"', sql or "") for schema, view, sql in rows if not (schema == dataset and view in ours)]
    working = []
    for view, sql in views:
        try:
            client.execute_sql(f"select * from {view} limit 0")
            working.append((view, sql))
        except Exception:  # broken before we touched anything
            continue
    return working


_PG_DEPENDENTS = """
with recursive dependents(oid, depth) as (
    select to_regclass(%s)::oid, 0
    union all
    select rewrite.ev_class, dependents.depth + 1
    from dependents
    join pg_depend as dep
        on dep.refobjid = dependents.oid
        and dep.refclassid = 'pg_class'::regclass
        and dep.classid = 'pg_rewrite'::regclass
    join pg_rewrite as rewrite on rewrite.oid = dep.objid
    where rewrite.ev_class <> dependents.oid
)
select
    n.nspname,
    c.relname,
    quote_ident(n.nspname) || '.' || quote_ident(c.relname),
    c.relkind,
    max(d.depth),
    pg_get_viewdef(c.oid),
    quote_ident(pg_get_userbyid(c.relowner)),
    c.oid,
    coalesce(array_to_string(c.reloptions, ', '), ''),
    obj_description(c.oid, 'pg_class'),
    array(select indexdef from pg_indexes as i where i.schemaname = n.nspname and i.tablename = c.relname),
    (select count(*) from pg_trigger as t where t.tgrelid = c.oid and not t.tgisinternal)
    + (select count(*) from pg_rewrite as r where r.ev_class = c.oid and r.rulename <> '_RETURN')
from dependents as d
join pg_class as c on c.oid = d.oid
join pg_namespace as n on n.oid = c.relnamespace
where d.oid is not null
group by n.nspname, c.relname, c.relkind, c.oid, c.relowner, c.reloptions
order by max(d.depth), c.oid
"""

_PG_GRANTS = """
select
    case when acl.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(acl.grantee)) end,
    acl.privilege_type,
    acl.is_grantable
from pg_class as c, aclexplode(c.relacl) as acl
where c.oid = %s and acl.grantee <> c.relowner
"""


@dataclass
class _PgView:
    schema: str
    name: str
    qualified: str
    kind: str
    depth: int
    definition: str
    owner: str
    oid: int
    options: str
    comment: str | None
    indexes: list[str]
    triggers_and_rules: int
    grants: list[str] = field(default_factory=list)

    @property
    def keyword(self) -> str:
        return "materialized view" if self.kind == "m" else "view"


def _replace_on_postgres(
    client: Any, state: str, dataset: str, name: str, wanted: dict[str, str]
) -> tuple[list[str], list[str]]:
    """One transaction: save the views on ours, drop them and ours, create ours, recreate theirs.

    Returns the views of ours that were (re)created and the users' views that were restored.
    """
    with client.begin_transaction():
        found = [_PgView(*row) for row in client.execute_sql(_PG_DEPENDENTS, f"{dataset}.{name}") or []]
        for view in found:
            view.grants = _pg_grants(client, view.oid)
        cannot_keep = [view.qualified for view in found if view.triggers_and_rules]
        if cannot_keep:  # dropping a view drops its triggers and rules, which we cannot save
            raise ViewError(f"sql/{name}.sql not applied: {', '.join(cannot_keep)} on it have triggers or rules, which "
                            "recreating would lose; drop them, or the views, then the next run applies it")
        ours = [view for view in found if view.schema == dataset and view.name in wanted]
        theirs = [view for view in found if view not in ours]
        current_user = client.execute_sql("select quote_ident(current_user)")[0][0]
        for view in sorted(found, key=lambda view: -view.depth):
            client.execute_sql(f"drop {view.keyword} {view.qualified}")  # no cascade: anything else unsaved stops it
        recreate = [view_name for view_name in wanted if view_name == name or view_name in {view.name for view in ours}]
        for view_name in recreate:  # ours in dependency order, with their new definitions
            try:
                client.execute_sql(wanted[view_name])
            except Exception as error:
                if view_name == name:
                    raise
                raise ViewError(f"sql/{name}.sql not applied: sql/{view_name}.sql, built on it, fails on the new "
                                f"definition ({first_line(error)})") from None
        for view in ours:
            _restore_privileges(client, view, current_user)
        for view in theirs:  # by depth: a user view after those it selects from
            try:
                options = f" with ({view.options})" if view.options else ""
                client.execute_sql(f"create {view.keyword} {view.qualified}{options} as {view.definition}")
                _restore_privileges(client, view, current_user)
            except Exception as error:
                raise ViewError(_blocked(name, view.qualified, error)) from None
        _record(client, state, recreate, wanted)
    return recreate, [view.qualified for view in theirs]


def _pg_grants(client: Any, oid: int) -> list[str]:
    rows = client.execute_sql(_PG_GRANTS, oid) or []
    return [f"{privilege} to {grantee}{' with grant option' if grantable else ''}" for grantee, privilege, grantable in rows]


def _restore_privileges(client: Any, view: _PgView, current_user: str) -> None:
    """A recreated view belongs to whoever recreated it and has no grants, comment or indexes: give them back."""
    for index in view.indexes:  # a materialized view's
        client.execute_sql(index)
    if view.comment is not None:
        client.execute_sql(f"comment on {view.keyword} {view.qualified} is %s", view.comment)
    if view.owner != current_user:
        client.execute_sql(f"alter {view.keyword} {view.qualified} owner to {view.owner}")
    for grant in view.grants:
        privilege, _, rest = grant.partition(" to ")
        client.execute_sql(f"grant {privilege} on {view.qualified} to {rest}")
