"""The pipeline as parts for an orchestrator's own dlt helpers.

Airflow's ``PipelineTasksGroup`` and Dagster's dlt integration run ``pipeline.run(source)`` in a
worker. ``up-jobs run`` does a little more around that call; these are the same parts, shaped
for them:

- :func:`shard_pipeline`: the pipeline ``up-jobs run --destination D --shard i/n`` uses (same
  name, so the same state), in dlt's default pipelines folder as those helpers require;
- :func:`up_jobs`: the source. It reads the destination when extraction starts, not when it is
  built, so the per-job rule and the skip of terminal jobs hold as in ``up-jobs run``;
- :func:`prepare_tables`: create the dataset and tables once before shards fan out, since
  parallel first loads race on DDL (dlt's ``serialize_first_task`` exists for the same reason);
- :func:`refresh_views`: the views step, once, after the shards.
"""

from __future__ import annotations

import dlt
from dlt.extract.source import DltSource

from pipeline import warehouse
from pipeline.factories import build_source, keep_dlt_columns_on_arrow_rows, make_pipeline
from pipeline.planning import load_job_list, plan_fetch
from pipeline.run_options import RunOptions, parse_shard, resolve_run
from pipeline.settings import UpJobsConfiguration, load_settings
from pipeline.source import FetchPlan

__all__ = ["shard_pipeline", "up_jobs", "prepare_tables", "refresh_views"]  # the public API; the rest may change


def shard_pipeline(destination: str, shard: str | None = None) -> dlt.Pipeline:
    """``shard`` as on the command line, ``"i/n"``; None for one worker."""
    keep_dlt_columns_on_arrow_rows()
    return make_pipeline(None, destination, parse_shard(shard))


def up_jobs(
    shard: str | None = None,
    refresh: bool = False,
    jobs_file: str | None = None,
    settings: UpJobsConfiguration | None = None,
) -> DltSource:
    """The UP jobs source for ``pipeline.run``; its settings resolved as ``up-jobs run`` resolves
    its own (:func:`pipeline.run_options.resolve_run`: concurrency, jobs file, dead-job backoff).

    Per-job errors land in ``fetch_errors``/``quarantined_records`` as usual; a rejected key
    raises, failing the task.
    """
    keep_dlt_columns_on_arrow_rows()
    run = resolve_run(settings or load_settings(), RunOptions(shard=shard, refresh=refresh, jobs_file=jobs_file))
    jobs = load_job_list(run.config, run.jobs_file, run.shard)

    def plan() -> FetchPlan:
        return plan_fetch(dlt.current.pipeline(), jobs, run.refresh, run.retry_errors, run.backoff)[0]

    return build_source(run, plan)


@dlt.source(name="up_jobs", max_table_nesting=0)
def _no_rows() -> object:
    """The source's schema with nothing in it: what :func:`prepare_tables` extracts."""
    return dlt.resource([], name="up_jobs_fetch")


def prepare_tables(pipeline: dlt.Pipeline) -> None:
    """Create the dataset and every table (empty) if missing; safe to repeat.

    A run with no rows makes dlt create the dataset and its own tables (state with ``_dlt_id``,
    loads, versions) as a first load would; then ours. A bare ``extract`` would leave a package
    that the next ``run()`` loads *instead of* its data (dlt loads pending packages first).
    """
    if pipeline.default_schema_name is None:
        pipeline.run(_no_rows())
    warehouse.ensure_tables(pipeline)


def refresh_views(pipeline: dlt.Pipeline) -> list[str]:
    """Apply every view in ``sql/`` (translated to the destination's dialect); returns their names.

    Needs only a connection, not the pipeline's local schema, so a fresh worker can run it;
    the tables it reads exist once :func:`prepare_tables` has run. Every ``up-jobs run`` shard
    also applies missing or changed views, so this step is a safety net, not the only way in.
    """
    with warehouse.load_lock(pipeline):
        return warehouse.apply_views(pipeline).names
