"""The parts a run is built from, each made from its resolved settings: the UP client, the local
workspace, the dlt pipeline and its destination, and the source.

``up-jobs run`` (:mod:`pipeline.runner`) and the orchestration helpers
(:mod:`pipeline.orchestration`) build them here, so both build them the same way.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Protocol, Sequence

import dlt
from dlt.common.destination import Destination, TDestinationReferenceArg
from dlt.extract.source import DltSource

from pipeline.errors import ConfigError, naming_options
from pipeline.http import FetchResult, RetryPolicy, UpClient
from pipeline.job_ids import Shard
from pipeline.names import DATASET_NAME, PIPELINE_NAME
from pipeline.run_options import RunSettings, is_local_duckdb, parse_shard
from pipeline.settings import require_api_key, validate_base_url
from pipeline.source import FetchPlan, FetchStats, up_jobs_source
from pipeline.workspace import DUCKDB_MEMORY_LIMIT, Workspace


def make_client(settings: RunSettings, stop: threading.Event | None = None) -> UpClient:
    """The UP API client, one pooled connection per worker; ``stop`` cuts its requests short."""
    config = settings.config
    policy = RetryPolicy(**{name: getattr(config, name) for name in RetryPolicy.__dataclass_fields__})
    return UpClient(
        validate_base_url(config.base_url),
        require_api_key(config.api_key),
        policy,
        pool_size=settings.concurrency,
        max_body_bytes=config.max_body_bytes,
        stop=stop or threading.Event(),
    )


def build_source(
    settings: RunSettings,
    plan: FetchPlan | Callable[[], FetchPlan],
    stats: FetchStats | None = None,
    client: UpClient | None = None,
    on_progress: Callable[[int], None] | None = None,
    results: Sequence[FetchResult] | None = None,
) -> DltSource:
    """The UP jobs source for ``settings``: a client of its own unless one is given (the runner
    shares one between the main fetch and the suspects' refetch)."""
    client = client or make_client(settings)
    return up_jobs_source(client, plan, stats or FetchStats(), settings.concurrency, on_progress, results)


class WorkspaceTarget(Protocol):
    """What a workspace depends on: :class:`RunSettings` (or, in tests, :class:`RunOptions`)."""

    @property
    def db_path(self) -> Path | str: ...
    @property
    def destination(self) -> str | None: ...
    @property
    def shard(self) -> Shard | str | None: ...
    @property
    def state_root(self) -> Path | None: ...


def pipeline_name(shard: Shard | None) -> str:
    """Each shard is its own dlt pipeline, so each keeps its own state."""
    return PIPELINE_NAME if shard is None else f"{PIPELINE_NAME}_{shard.suffix}"


def make_workspace(target: WorkspaceTarget) -> Workspace:
    if is_local_duckdb(target.destination):
        if target.shard is not None:
            raise naming_options(ConfigError, "{shard} needs a shared warehouse ({destination}); a DuckDB file has one writer at a time")
        return Workspace.for_duckdb(Path(target.db_path))
    return Workspace.for_warehouse(target.state_root or Path.cwd(), pipeline_name(parse_shard(target.shard)))


DLT_COLUMNS_ON_ARROW_ROWS = {
    "normalize.parquet_normalizer.add_dlt_load_id": True,
    "normalize.parquet_normalizer.add_dlt_id": True,
}
"""Rows arrive as Arrow tables; these keep dlt's load id and row id on them as on JSON rows, so
every table says which run wrote each row. dlt reads them from its config providers only (the
extractor when extraction starts, the normaliser when normalisation does): no pipeline or
destination argument carries them."""


@contextmanager
def dlt_columns_on_arrow_rows() -> Iterator[None]:
    """For the length of a run: dlt's ``config.values`` restores the previous values on exit,
    so a process that also runs other dlt pipelines (a notebook, a test) sees no change after."""
    with dlt.config.values(DLT_COLUMNS_ON_ARROW_ROWS):
        yield


def keep_dlt_columns_on_arrow_rows() -> None:
    """For the orchestration helpers only, and set for the rest of the process: the orchestrator
    calls ``pipeline.run`` after our helper has returned, so no context of ours spans it."""
    for key, value in DLT_COLUMNS_ON_ARROW_ROWS.items():
        dlt.config[key] = value


def working_copy_destination(work_db: Path) -> TDestinationReferenceArg:
    """The local DuckDB working copy, its buffer pool capped (passed here, not through dlt.config,
    where a ``destination`` key would shadow ``sources.up_jobs.destination`` for later runs)."""
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    credentials = DuckDbCredentials(str(work_db), global_config={"memory_limit": DUCKDB_MEMORY_LIMIT})
    return dlt.destinations.duckdb(credentials=credentials)


def warehouse_destination(destination: str, shard: Shard | None) -> TDestinationReferenceArg:
    """Each shard merges through its own staging dataset: dlt empties the staging table at the
    start of every merge load, so shards sharing one delete each other's rows mid-merge (seen
    here: 56 of 150 jobs kept, every shard reporting success)."""
    if shard is None:
        return destination
    return Destination.from_reference(destination, staging_dataset_name_layout=f"%s_staging_{shard.suffix}")


def make_pipeline(workspace: Workspace | None, destination: str | None = None, shard: Shard | None = None) -> dlt.Pipeline:
    """The dlt pipeline: the private DuckDB working copy, or the configured warehouse.

    ``workspace`` None: dlt's default pipelines folder (an orchestrator's helper manages it).
    """
    if not is_local_duckdb(destination):
        target = warehouse_destination(str(destination), shard)
    elif workspace is None:
        raise ConfigError("the local DuckDB file is written through a workspace; name a warehouse destination")
    else:
        target = working_copy_destination(workspace.work_db)
    return dlt.pipeline(
        pipeline_name=pipeline_name(shard),
        destination=target,
        dataset_name=DATASET_NAME,
        pipelines_dir=str(workspace.pipelines_dir) if workspace else None,  # type: ignore[arg-type]  # dlt: None = default
    )
