"""Normalise and load what a run extracted; set aside a package that cannot be loaded.

A package that fails normalisation (its data), or whose load dlt says retrying cannot help, or
that failed :data:`set_aside.MAX_TRANSIENT_ATTEMPTS` runs in a row, is moved aside so the next
run proceeds; its jobs are recorded as ``load_failed`` errors and refetched later.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Sequence

import dlt

from pipeline import failpoints, set_aside, warehouse
from pipeline.errors import innermost, one_line_cause
from pipeline.factories import build_source
from pipeline.http import FetchResult, UpClient
from pipeline.job_ids import JobRef
from pipeline.outcomes import Status, load_failed_row
from pipeline.run_options import RunSettings
from pipeline.source import FetchPlan, FetchStats, error_rows, table_rows_source
from pipeline.summary import RunSummary
from pipeline.workspace import Workspace


def normalize_load(pipeline: dlt.Pipeline, timings: dict[str, float]) -> None:
    """dlt's normalize and load, spelled out so a crash test can stop between them; each timed.

    Between them, the tables are ensured (:func:`warehouse.ensure_tables`): a table or column
    dropped by hand while dlt's stored schema version still lists it would fail this load, and
    every later one. After normalize, so the schema ensured is exactly the one this load uses."""
    started = time.monotonic()
    pipeline.normalize()
    timings["normalize"] = time.monotonic() - started
    failpoints.reached("normalized")
    failpoints.reached("load")
    started = time.monotonic()
    warehouse.ensure_tables(pipeline)
    pipeline.load()
    timings["load"] = time.monotonic() - started
    failpoints.reached("loaded")


class Loader:
    """Normalise and load pending packages; set aside a package that cannot be loaded."""

    def __init__(self, pipeline: dlt.Pipeline, workspace: Workspace, summary: RunSummary, settings: RunSettings) -> None:
        self.pipeline, self.workspace, self.summary, self.settings = pipeline, workspace, summary, settings
        self.file_format = settings.loader_file_format
        self.failed: dict[JobRef, str] = {}

    def load_or_set_aside(self, refs: Sequence[JobRef], timings: dict[str, float] | None = None) -> bool:
        """True when the pending packages loaded; False when they were set aside (refs recorded)."""
        try:
            normalize_load(self.pipeline, {} if timings is None else timings)
            return True
        except Exception as error:  # decided below: set aside, or re-raised
            if innermost(error, KeyboardInterrupt) is not None or not self._should_set_aside(error):
                raise
            cause = one_line_cause(error)
        self._set_aside(refs, cause)
        return False

    def has_pending_data(self) -> bool:
        """dlt's ``has_pending_data``, after setting aside at once the pending packages when one has
        a state file that is not JSON (a crash can leave it empty): dlt fails parsing it outside
        any step, at every run, so counting attempts never reached the set-aside."""
        unreadable = set_aside.unreadable_packages(self.pipeline)
        if unreadable:
            self._set_aside((), f"dlt cannot read {unreadable[0]}")
        return self.pipeline.has_pending_data

    def _set_aside(self, refs: Sequence[JobRef], cause: str) -> None:
        kept = set_aside.set_aside_pending(self.pipeline, self.workspace.state_dir, cause)
        self.summary.set_aside.extend(kept)
        for ref in [*refs, *(ref for package in kept for ref in package.refs)]:
            self.failed[ref] = f"{cause} (package set aside in {self.workspace.state_dir / 'set_aside'})"

    def _should_set_aside(self, error: Exception) -> bool:
        """Always for normalisation (data); for a load, when dlt says retrying cannot help, or after
        the same package failed MAX_TRANSIENT_ATTEMPTS runs in a row."""
        if getattr(error, "step", None) == "normalize" or set_aside.is_terminal(error):
            return True
        attempts = set_aside.count_attempt(self.workspace.state_dir, set_aside.pending_load_ids(self.pipeline))
        return attempts >= set_aside.MAX_TRANSIENT_ATTEMPTS

    def load_suspects(self, results: list[FetchResult], plan: FetchPlan, client: UpClient) -> None:
        """Load the suspects' responses, halving every group that fails down to single jobs."""
        groups = [results]
        while groups:
            group = groups.pop()
            stats = FetchStats()
            self.pipeline.extract(
                build_source(self.settings, plan, stats, client=client, results=group),
                loader_file_format=self.file_format,  # type: ignore[arg-type]  # dlt: a Literal of format names
            )
            if self.load_or_set_aside(refs=[result.ref for result in group]):
                self.summary.stats.outcomes.update(stats.outcomes)
                self.summary.stats.notes.update(stats.notes)
                self.summary.stats.requests += stats.requests
                self.summary.stats.recovered += stats.recovered
                for result in group:
                    self.failed.pop(result.ref, None)
            elif len(group) > 1:
                groups += [group[: len(group) // 2], group[len(group) // 2 :]]
            else:
                self.summary.stats.outcomes[Status.LOAD_FAILED] += 1

    def record_load_failures(self, plan: FetchPlan) -> None:
        """One bookkeeping load of ``load_failed`` errors, so the jobs show in open_fetch_errors."""
        if not self.failed:
            return
        now = datetime.now(timezone.utc)
        rows = [row for ref, message in sorted(self.failed.items()) for row in error_rows(ref, load_failed_row(ref, message), plan, now)]
        self.pipeline.extract(table_rows_source(rows))
        normalize_load(self.pipeline, {})
        self.failed.clear()
