"""Turn one UP job response body into a ``workflow_jobs`` row, or say why it is a bad record.

The body is documented at Telestream UP's API reference (workflow job object): scalar fields
``id``, ``name``, ``workflow_id``, ``workflow_name``, ``progress``, ``state``,
``workflow_version``, ``created_at``, ``updated_at``, ``elapsed_time``. The vendor's sample
wraps each field in a one-element list; that form is unwrapped. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from pipeline.job_ids import JobRef
from pipeline.timespan import TimeSpanError, parse_timespan_seconds

KNOWN_STATES = frozenset({"created", "in-process", "succeeded", "failed", "stopped", "retry"})
TERMINAL_STATES = frozenset({"succeeded", "failed", "stopped"})
TEXT_FIELDS = ("id", "name", "workflow_id", "workflow_name", "state", "workflow_version", "elapsed_time")
TIMESTAMP_FIELDS = ("created_at", "updated_at")
# Columns we compute; an API field of the same name must not silently overwrite them.
DERIVED_FIELDS = ("space_id", "elapsed_seconds", "elapsed_time_error")


class BadRecord(ValueError):
    """The body is not the documented job object; it goes to quarantine, not to the table."""


@dataclass
class NormalizedJob:
    """A row for ``telestream_up.workflow_jobs`` plus what the run summary should mention."""

    row: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def updated_at(self) -> datetime:
        return self.row["updated_at"]  # type: ignore[no-any-return]


def unwrap(name: str, value: Any) -> Any:
    """Unwrap the vendor sample's one-element list of a scalar; any other list is a bad record."""
    if isinstance(value, list):
        if len(value) == 1 and not isinstance(value[0], (list, dict)):
            return value[0]
        raise BadRecord(f"field {name!r} is a list of {len(value)} element(s), expected a scalar")
    return value


def _unwrap_field(name: str, value: Any) -> Any:
    """Documented fields must be scalars; a field the API adds later may legitimately be a list."""
    if name in TEXT_FIELDS or name in TIMESTAMP_FIELDS or name == "progress":
        return unwrap(name, value)
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], (list, dict)):
        return value[0]
    return value


def parse_timestamp(name: str, value: Any) -> datetime | None:
    """ISO-8601 to an aware UTC datetime; naive values are UTC as the API documents."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 16 or len(value) > 64:
        raise BadRecord(f"field {name!r} is not an ISO-8601 timestamp: {value!r:.80}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise BadRecord(f"field {name!r} is not an ISO-8601 timestamp: {value!r:.80}") from error
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def parse_progress(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRecord(f"field 'progress' is not a number: {value!r:.80}")
    return float(value)


def parse_elapsed(value: Any) -> tuple[float | None, str | None]:
    """Seconds and the parse problem; an unparseable value never rejects the job."""
    if value is None:
        return None, None
    try:
        return parse_timespan_seconds(value), None
    except TimeSpanError as error:
        return None, str(error)


def normalize_job(body: Any, ref: JobRef) -> NormalizedJob:
    """Validate and normalise one job body fetched for ``ref``; raise BadRecord if unusable."""
    if not isinstance(body, Mapping):
        raise BadRecord(f"body is a JSON {type(body).__name__}, expected an object")
    fields = {str(key): _unwrap_field(str(key), value) for key, value in body.items()}
    for name in TEXT_FIELDS:
        value = fields.get(name)
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"field {name!r} is not a string: {value!r:.80}")
    if not fields.get("id"):
        raise BadRecord("field 'id' is missing")
    if fields["id"] != ref.job_id:
        raise BadRecord(f"field 'id' is {fields['id']!r:.80}, but job {ref.job_id!r} was requested")
    updated_at = parse_timestamp("updated_at", fields.get("updated_at"))
    if updated_at is None:
        raise BadRecord("field 'updated_at' is missing; it is what tells a newer record from an older one")

    elapsed_seconds, elapsed_error = parse_elapsed(fields.get("elapsed_time"))
    row = {key: value for key, value in fields.items() if key not in DERIVED_FIELDS}
    row.update(
        space_id=ref.space_id,
        progress=parse_progress(fields.get("progress")),
        created_at=parse_timestamp("created_at", fields.get("created_at")),
        updated_at=updated_at,
        elapsed_seconds=elapsed_seconds,
        elapsed_time_error=elapsed_error,
    )
    notes = []
    if row.get("state") not in KNOWN_STATES:
        notes.append(f"unknown state {row.get('state')!r}")
    if elapsed_error:
        notes.append(f"unparseable elapsed_time: {elapsed_error}")
    return NormalizedJob(row, notes)


def is_terminal(state: object) -> bool:
    return state in TERMINAL_STATES
