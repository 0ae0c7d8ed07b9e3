"""Dagster definitions: the UP tables and views as assets, loaded by n shards in parallel.

``dagster dev -m pipeline.dagster_defs`` serves :data:`defs` (destination and shard count from
``UP_JOBS_DESTINATION``, default postgres, and ``UP_JOBS_SHARDS``, default 1); or call
:func:`build_definitions` from your own code location. Needs the ``dagster`` extra.

Why not ``dagster_dlt.dlt_assets``: it makes one asset per dlt *resource*, and our one resource
(``up_jobs_fetch``) routes rows to four tables, so the asset is named after the resource, carries
no row counts, and the error tables and views are not assets; shards share resource names, so
their keys collide. Here the assets are the tables (``workflow_jobs``, ``fetch_errors``,
``quarantined_records``, ``fetch_recoveries``, with rows loaded per run) and the views; inside,
one op per shard, each its own step process with the multiprocess executor.

Pipelines are built inside the ops, never at import, so a step process builds only its own. Each
step also gets its own dlt data folder (``DLT_DATA_DIR``), deleted afterwards, as Airflow's
``PipelineTasksGroup`` gives each task; dlt restores the pipeline's state from the destination.
A shared folder races when two processes create the same pipeline folder (overlapping runs; or,
as reported with ``dlt_assets``, every step process building every shard's pipeline): dlt wipes
a folder that has no ``state.json`` yet and the other fails with ``FileExistsError``.
Keep one run of the job at a time (Dagster's run queue or a concurrency pool), as the Airflow
example does with ``max_active_runs=1``.
"""


import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

import dagster as dg

from pipeline import tables, views, warehouse
from pipeline.names import DATASET_NAME
from pipeline.orchestration import prepare_tables, refresh_views, shard_pipeline, up_jobs

TABLES = (tables.WORKFLOW_JOBS, tables.FETCH_ERRORS, tables.QUARANTINE, tables.RECOVERIES)
GROUP = DATASET_NAME


@contextmanager
def own_dlt_data_dir(step: str) -> Iterator[str]:
    """A fresh dlt data folder for one step, removed afterwards (the state lives in the destination)."""
    folder = tempfile.mkdtemp(prefix=f"up_jobs_{step}_")
    previous = os.environ.get("DLT_DATA_DIR")
    os.environ["DLT_DATA_DIR"] = folder
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("DLT_DATA_DIR", None)
        else:
            os.environ["DLT_DATA_DIR"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def shard_names(shards: int) -> list[str | None]:
    """``["0/3", "1/3", "2/3"]``; ``[None]`` for one worker (the pipeline ``up-jobs run`` uses)."""
    if shards < 1:
        raise ValueError(f"shards must be at least 1, not {shards}")
    return [None] if shards == 1 else [f"{index}/{shards}" for index in range(shards)]


def _load_shard_op(destination: str, shard: str | None) -> dg.OpDefinition:
    suffix = "all" if shard is None else shard.replace("/", "_of_")

    @dg.op(name=f"load_shard_{suffix}", ins={"tables_ready": dg.In(dg.Nothing)})
    def load(context: dg.OpExecutionContext) -> dict[str, int]:
        """Fetch this shard's jobs and load them; per-job failures are rows in fetch_errors."""
        with own_dlt_data_dir(f"shard_{suffix}"):
            pipeline = shard_pipeline(destination, shard)
            pipeline.run(up_jobs(shard=shard))
            normalized = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
            counts = dict(normalized.row_counts) if normalized else {}
        context.log.info(f"shard {shard or 'all'}: rows loaded {counts}")
        return {table: counts.get(table, 0) for table in TABLES}

    return load


def _reads(sql: str, view: str) -> list[dg.AssetKey]:
    """The tables and views a view selects from, as asset keys (its lineage in Dagster's graph)."""
    return [dg.AssetKey([GROUP, name]) for name in sorted(views.references(sql, view))]


def build_definitions(destination: str = "postgres", shards: int = 1, cron: str | None = "*/15 * * * *") -> dg.Definitions:
    """Assets, a job materialising them all, and (unless ``cron`` is None) its schedule."""
    shard_ops = [_load_shard_op(destination, shard) for shard in shard_names(shards)]

    @dg.op(out=dg.Out(dg.Nothing))
    def prepare_up_jobs_tables() -> None:
        """Dataset and tables once, so shards starting together race on no DDL."""
        with own_dlt_data_dir("prepare"):
            prepare_tables(shard_pipeline(destination))

    @dg.op(out={table: dg.Out(dg.Nothing) for table in TABLES}, ins={"counts": dg.In(list)})
    def rows_loaded(counts: list[dict[str, Any]]) -> Iterator[dg.Output[None]]:
        for table in TABLES:
            yield dg.Output(None, output_name=table, metadata={"rows_loaded": sum(shard[table] for shard in counts)})

    @dg.graph_multi_asset(outs={table: dg.AssetOut(key=dg.AssetKey([GROUP, table])) for table in TABLES},
                          name="up_jobs_tables", group_name=GROUP)
    def up_jobs_tables() -> dict[str, Any]:
        ready = prepare_up_jobs_tables()
        return rows_loaded([load(tables_ready=ready) for load in shard_ops])

    sources = warehouse.view_sources()  # in dependency order: Dagster wants a multi-asset's outputs so
    view_specs = [dg.AssetSpec(dg.AssetKey([GROUP, name]), group_name=GROUP, deps=_reads(sql, name))
                  for name, sql in sources.items()]

    @dg.multi_asset(specs=view_specs, name="up_jobs_views")
    def up_jobs_views() -> Iterator[dg.MaterializeResult]:
        """Every view in sql/, once, after every shard (translated to the destination's dialect)."""
        with own_dlt_data_dir("views"):
            applied = set(refresh_views(shard_pipeline(destination)))  # in file order when none changed
        for name in sources:
            if name in applied:
                yield dg.MaterializeResult(asset_key=dg.AssetKey([GROUP, name]))

    job = dg.define_asset_job("up_jobs", selection=dg.AssetSelection.assets(up_jobs_tables, up_jobs_views))
    schedules = [dg.ScheduleDefinition(job=job, cron_schedule=cron)] if cron else []
    return dg.Definitions(assets=[up_jobs_tables, up_jobs_views], jobs=[job], schedules=schedules)


defs = build_definitions(os.environ.get("UP_JOBS_DESTINATION", "postgres"), int(os.environ.get("UP_JOBS_SHARDS", "1")))
