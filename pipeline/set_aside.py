"""Set aside a load package that dlt cannot normalise or load, so it never blocks later runs.

dlt finishes pending packages before anything else; a package that fails the same way every
time (a value the destination refuses, a corrupt file left by a crash) would stop every later
run. Such a package is copied to ``<state>/set_aside/<load_id>/`` with the reason beside it,
then aborted in dlt. Its jobs are not lost: every job in it is either not held yet or held in
an older state, so the next run fetches it again, and the run records them in ``fetch_errors``
(``error_kind = 'load_failed'``) so that it is visible and retried on its own.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dlt
from dlt.common.exceptions import TerminalException

from pipeline.errors import innermost
from pipeline.job_ids import JobRef

ATTEMPTS_FILE = "load_attempts.json"
MAX_TRANSIENT_ATTEMPTS = 3
"""A load failure dlt calls transient (a connection) is retried by the next runs, this many times."""


@dataclass(frozen=True)
class SetAside:
    """One package moved out of dlt's way: where it is kept and why."""

    load_id: str
    path: Path
    cause: str
    refs: tuple[JobRef, ...]

    def __str__(self) -> str:
        jobs = f"{len(self.refs)} job(s)" if self.refs else "jobs not readable from it"
        return (f"load package {self.load_id} set aside ({jobs}; they are refetched and retried): "
                f"{self.cause}; kept in {self.path}")


def is_terminal(error: BaseException) -> bool:
    """dlt marks failures that retrying cannot fix (a value refused by the destination) terminal."""
    return innermost(error, TerminalException) is not None


def pending_load_ids(pipeline: dlt.Pipeline) -> list[str]:
    return [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]


def unreadable_packages(pipeline: dlt.Pipeline) -> list[str]:
    """Pending packages' state files that are not JSON, as paths inside the pipeline folder."""
    working_dir = Path(pipeline.working_dir)
    unreadable = []
    for load_id in pending_load_ids(pipeline):
        package = _package_dir(working_dir, load_id)
        state = package / "load_package_state.json" if package else None
        if state is not None and state.exists():
            try:
                json.loads(state.read_bytes())
            except (OSError, ValueError):
                unreadable.append(str(state.relative_to(working_dir)))
    return unreadable


def count_attempt(state_dir: Path, load_ids: list[str]) -> int:
    """Remember one more failed attempt at these packages; returns the most attempts of any."""
    path = state_dir / ATTEMPTS_FILE
    try:
        attempts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        attempts = {}
    attempts = {load_id: int(attempts.get(load_id, 0)) + 1 for load_id in load_ids}
    path.write_text(json.dumps(attempts), encoding="utf-8")
    return max(attempts.values(), default=0)


def set_aside_pending(pipeline: dlt.Pipeline, state_dir: Path, cause: str) -> list[SetAside]:
    """Copy every pending package away, then abort them in dlt; never raises for a bad package."""
    kept = []
    for load_id in pending_load_ids(pipeline):
        target = state_dir / "set_aside" / load_id
        source = _package_dir(Path(pipeline.working_dir), load_id)
        if source is not None:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target)
        target.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (target / "SET_ASIDE_REASON.txt").write_text(f"{stamp}\n{cause}\n", encoding="utf-8")
        kept.append(SetAside(load_id, target, cause, tuple(_refs_in(target))))
    _abort(pipeline)
    (state_dir / ATTEMPTS_FILE).unlink(missing_ok=True)
    return kept


def _abort(pipeline: dlt.Pipeline) -> None:
    """dlt's abort (restores the local schema and state); if even that fails, delete the packages."""
    try:
        pipeline.abort_packages()
    except Exception:  # the copy is kept; what matters is that nothing stays pending
        for load_id in pending_load_ids(pipeline):
            package = _package_dir(Path(pipeline.working_dir), load_id)
            if package is not None:
                shutil.rmtree(package, ignore_errors=True)


def _package_dir(working_dir: Path, load_id: str) -> Path | None:
    for candidate in (working_dir / "normalize" / "extracted" / load_id, working_dir / "load" / "normalized" / load_id):
        if candidate.is_dir():
            return candidate
    return None


def _refs_in(package: Path) -> list[JobRef]:
    """The jobs whose rows the package held, from its workflow_jobs parquet files (best effort)."""
    import pyarrow.parquet as pq  # only when a package is set aside: 0.2 s of every run's start-up otherwise

    refs: set[JobRef] = set()
    for path in package.rglob("workflow_jobs.*.parquet"):
        try:
            table = pq.read_table(path, columns=["space_id", "workflow_id", "id"])
        except Exception:  # a corrupt file is one reason a package is set aside
            continue
        columns = (table.column(name).to_pylist() for name in ("space_id", "workflow_id", "id"))
        refs.update(JobRef(*row) for row in zip(*columns) if all(row))
    return sorted(refs)
