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

from datetime import datetime
from typing import Any

import pyarrow as pa

from pipeline.outcomes import HeldJob
from pipeline.tables import COLUMNS, JOB_OBSERVATIONS

_ARROW = {"text": pa.string(), "double": pa.float64(), "timestamp": pa.timestamp("us", tz="UTC")}
SCHEMA = pa.schema([
    pa.field(column["name"], _ARROW[str(column["data_type"])], nullable=column.get("nullable") is not False)
    for column in COLUMNS[JOB_OBSERVATIONS]
])


def observation_row(job_row: dict[str, Any], held: HeldJob | None, observed_at: datetime) -> dict[str, Any]:
    """The version of a job just loaded, when this run saw it, and what was held before.

    ``previous_updated_at`` / ``previous_state`` are null for a job new to the warehouse; set on
    a job's first observation, they say its history began before observations were kept.
    """
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
    }


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Arrow batch, so dlt skips per-row normalisation (as for ``workflow_jobs``)."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)
