"""Each ``up-jobs run`` notes itself in dlt's pipeline state, so every run loads a package.

Without it, a run where nothing changed extracts an empty package that dlt's normalize drops:
``dlt pipeline up_jobs trace`` then shows "Load package … is EXTRACTED and NOT YET LOADED" and
"into dataset None", which reads like a failure. With it, dlt loads the new state row
(``_dlt_pipeline_state``) and records the run in ``_dlt_loads``, so the trace reads as a
completed load, ``dlt pipeline up_jobs info`` shows when the last run started, and the
warehouse knows the pipeline ran even when no job changed.
"""

from __future__ import annotations

from typing import Iterator

import dlt
from dlt.common.typing import TDataItem
from dlt.extract.resource import DltResource
from dlt.extract.source import DltSource

from pipeline.runlog import timestamp

RESOURCE_NAME = "up_jobs_run"


def run_record(jobs_requested: int) -> DltResource:
    """A resource that yields no rows and writes ``last_run`` into the source's state."""

    @dlt.resource(name=RESOURCE_NAME)
    def record() -> Iterator[TDataItem]:
        dlt.current.source_state()["last_run"] = {"started_at": timestamp(), "jobs_requested": jobs_requested}
        yield from ()

    return record


def with_run_record(source: DltSource, jobs_requested: int) -> DltSource:
    source.resources.add(run_record(jobs_requested))
    return source


KEEP_LOADED_PACKAGES = 100
"""Loaded packages dlt keeps in the pipeline folder (each ~80 KB, mostly a schema copy): about a
day of 15-minute runs for ``dlt pipeline … load-package``; older ones only fill the disk."""


def prune_loaded_packages(pipeline: dlt.Pipeline, keep: int = KEEP_LOADED_PACKAGES) -> int:
    """Delete all but the newest ``keep`` loaded packages (dlt never does); returns how many went.

    dlt keeps every loaded package forever; with a package per run that is ~3 GB a year.
    """
    loaded = sorted(pipeline.list_completed_load_packages(), key=float)
    storage = pipeline._get_load_storage()  # dlt 1.31 has no public call for this
    for load_id in loaded[: max(0, len(loaded) - keep)]:
        storage.delete_loaded_package(load_id)
    return max(0, len(loaded) - keep)
