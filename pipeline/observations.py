"""Job history: one ``job_observations`` row per distinct (job id, ``updated_at``) the pipeline sees.

UP's job record carries only the current state. Kept over polls, the versions of a record say
when each state began and ended, within bounds (``sql/job_state_intervals.sql``). A version is
new exactly when :mod:`pipeline.outcomes` loads the job ("loaded": a newer ``updated_at``), so a
run with nothing changed adds nothing. The rows travel in the same dlt resource and load
package as ``workflow_jobs``: a crash leaves both tables loaded, or neither.

Append, not dlt's ``scd2``: scd2 stamps validity with load times (our clock, at poll
granularity) and retires rows missing from a load, while here every row is an event at the
API's clock that never changes; ``bench/observations.py`` measures both.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from pipeline.arrow_rows import arrow_schema
from pipeline.outcomes import HeldJob
from pipeline.tables import JOB_OBSERVATIONS

SCHEMA = arrow_schema(JOB_OBSERVATIONS)


def observation_row(
    job_row: dict[str, Any], held: HeldJob | None, observed_at: datetime, confirmed: Confirmation | None = None
) -> dict[str, Any]:
    """The version of a job just loaded, when this run saw it, and what was held before.

    ``previous_updated_at`` / ``previous_state`` are null for a job new to the warehouse; set on
    a job's first observation, they say its history began before observations were kept.
    ``previous_confirmed_at``: the last poll that still found the held version (see
    :func:`load_confirmations`); null when unknown.
    """
    still = confirmed is not None and held is not None and confirmed[0] == held.updated_at
    return {
        "job_id": job_row["id"],
        "space_id": job_row["space_id"],
        "workflow_id": job_row["workflow_id"],
        "workflow_name": job_row["workflow_name"],
        "state": job_row["state"],
        "progress": job_row["progress"],
        "created_at": job_row["created_at"],
        "updated_at": job_row["updated_at"],
        "observed_at": observed_at,
        "previous_updated_at": held.updated_at if held else None,
        "previous_state": held.state if held else None,
        "previous_confirmed_at": confirmed[1] if still and confirmed else None,
    }


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow batch, so dlt skips per-row normalisation (as for ``workflow_jobs``)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


# ---- last confirmations: when each running job's current version was last seen -------------
#
# A run with nothing changed writes nothing to the warehouse, yet it learns something: each
# running job was still in its version at that poll. Without it, the end of a silent wait
# (queued in created, waiting in retry) is bounded only by the wait's start. It is kept in a
# small file beside the run's state, not in the warehouse: every entry is a plain fact ("at
# poll t the job still had updated_at u"), so a lost or stale file only loosens bounds; an
# entry is used only while the warehouse still holds that same version.

Confirmation = tuple[datetime, datetime]
"""(updated_at of the version, when a poll last found it current)"""
CONFIRMATIONS_FILE = "last_confirmed.json"


def load_confirmations(state_dir: Path) -> dict[str, Confirmation]:
    try:
        raw = json.loads((state_dir / CONFIRMATIONS_FILE).read_text(encoding="utf-8"))
        return {job_id: (datetime.fromisoformat(pair[0]), datetime.fromisoformat(pair[1])) for job_id, pair in raw.items()}
    except (OSError, ValueError, TypeError, IndexError, AttributeError):
        return {}  # missing or unreadable: bounds fall back to the reports alone


def save_confirmations(state_dir: Path, known: Mapping[str, Confirmation], seen: Mapping[str, tuple[datetime, datetime] | None]) -> None:
    """Merge this run's sightings ((updated_at, fetched_at), or None for a finished job, which is
    dropped: it is not polled again). Written atomically: a crash leaves the old file or the new
    one; streamed, so 100,000 running jobs never sit in memory as one JSON string."""
    merged = dict(known)
    for job_id, sighting in seen.items():
        if sighting is None:
            merged.pop(job_id, None)
        else:
            merged[job_id] = sighting
    path = state_dir / CONFIRMATIONS_FILE
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump({job_id: [u.isoformat(), f.isoformat()] for job_id, (u, f) in merged.items()}, handle)
    os.replace(temporary, path)
