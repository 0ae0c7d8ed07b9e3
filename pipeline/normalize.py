"""Turn one UP job response body into a ``workflow_jobs`` row, or say why it is a bad record.

The body is documented at Telestream UP's API reference (workflow job object): scalar fields
``id``, ``name``, ``workflow_id``, ``workflow_name``, ``progress``, ``state``,
``workflow_version``, ``created_at``, ``updated_at``, ``elapsed_time``. The vendor's sample
wraps each field in a one-element list; that form is unwrapped. Pure functions, no I/O.

Fields the API adds beyond the documented ones are kept, all of them, as one JSON object in
the text column ``extra_fields``; they never become columns of their own. A column per field
let one odd value break every later load (a key that collides after name normalisation, an
empty key, an int in one run and ``"abc"`` in the next, nesting deeper than parquet allows,
shards that typed the same field differently), and rounded 5.7 to 6 in a column typed by an
earlier int. JSON text can hold any value the API sends, on every destination.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from pipeline.job_ids import JobRef
from pipeline.timespan import TimeSpanError, parse_timespan_seconds

KNOWN_STATES = frozenset({"created", "in-process", "succeeded", "failed", "stopped", "retry"})
TERMINAL_STATES = frozenset({"succeeded", "failed", "stopped"})
TEXT_FIELDS = ("id", "name", "workflow_id", "workflow_name", "state", "workflow_version", "elapsed_time")
TIMESTAMP_FIELDS = ("created_at", "updated_at")
DOCUMENTED_FIELDS = frozenset((*TEXT_FIELDS, *TIMESTAMP_FIELDS, "progress"))
EXTRA_FIELDS_COLUMN = "extra_fields"
# How far ahead of this machine's clock an updated_at may be before it is reported as bogus.
FUTURE_SKEW = timedelta(minutes=10)
_UNSAFE_CHARS = re.compile("[\x00\ud800-\udfff]")  # NUL (Postgres text refuses it), lone surrogates


class BadRecord(ValueError):
    """The body is not the documented job object; it goes to quarantine, not to the table."""


@dataclass
class NormalizedJob:
    """A row for ``telestream_up.workflow_jobs`` plus what the run summary should mention."""

    row: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def updated_at(self) -> datetime:
        return self.row["updated_at"]


def unwrap(name: str, value: Any) -> Any:
    """Unwrap the vendor sample's one-element list of a scalar; any other list is a bad record."""
    if isinstance(value, list):
        if len(value) == 1 and not isinstance(value[0], (list, dict)):
            return value[0]
        raise BadRecord(f"field {name!r} is a list of {len(value)} element(s), expected a scalar")
    return value


def safe_text(value: str) -> str:
    """Text every destination stores: NUL and lone surrogates become U+FFFD."""
    return _UNSAFE_CHARS.sub("\ufffd", value)


def safe_json_value(value: Any) -> Any:
    """A JSON value any JSON reader accepts: safe text, and NaN/Infinity as strings."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [safe_json_value(item) for item in value]
    if isinstance(value, dict):
        return {safe_text(str(key)): safe_json_value(item) for key, item in value.items()}
    return value


def extra_fields_json(extra: Mapping[str, Any]) -> str | None:
    """Undocumented fields as one JSON object (sorted keys), or None when there are none."""
    if not extra:
        return None
    return json.dumps(safe_json_value(dict(extra)), ensure_ascii=False, sort_keys=True, allow_nan=False)


def parse_timestamp(name: str, value: Any) -> datetime | None:
    """ISO-8601 to an aware UTC datetime; naive values are UTC as the API documents."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) < 16 or len(value) > 64:
        raise BadRecord(f"field {name!r} is not an ISO-8601 timestamp: {value!r:.80}")
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError) as error:  # 9999-12-31T23:00:00-05:00 overflows in UTC
        raise BadRecord(f"field {name!r} is not a representable ISO-8601 timestamp: {value!r:.80}") from error


def parse_progress(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord(f"field 'progress' is not a number: {value!r:.80}")
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer
        raise BadRecord(f"field 'progress' is too large for a number: {len(str(value))} digits") from None
    if not math.isfinite(number):
        raise BadRecord(f"field 'progress' is not a finite number: {value!r:.80}")
    return number


def parse_elapsed(value: Any) -> tuple[float | None, str | None]:
    """Seconds and the parse problem; an unparseable value never rejects the job."""
    if value is None:
        return None, None
    try:
        return parse_timespan_seconds(value), None
    except TimeSpanError as error:
        return None, str(error)


def _documented_text(fields: Mapping[str, Any]) -> dict[str, str | None]:
    texts = {}
    for name in TEXT_FIELDS:
        value = unwrap(name, fields.get(name))
        if value is not None and not isinstance(value, str):
            raise BadRecord(f"field {name!r} is not a string: {value!r:.80}")
        texts[name] = None if value is None else safe_text(value)
    return texts


def _check_identity(texts: dict[str, str | None], ref: JobRef) -> None:
    """The body must be the job that was requested, not another job or another workflow's."""
    if not texts["id"]:
        raise BadRecord("field 'id' is missing")
    if texts["id"] != ref.job_id:
        raise BadRecord(f"field 'id' is {texts['id']!r:.80}, but job {ref.job_id!r} was requested")
    if texts["workflow_id"] is None:
        texts["workflow_id"] = ref.workflow_id  # absent: the job is the one we asked for
    elif texts["workflow_id"] != ref.workflow_id:
        raise BadRecord(
            f"field 'workflow_id' is {texts['workflow_id']!r:.80}, but workflow {ref.workflow_id!r} was requested"
        )


def normalize_job(body: Any, ref: JobRef, now: datetime | None = None) -> NormalizedJob:
    """Validate and normalise one job body fetched for ``ref``; raise BadRecord if unusable."""
    if not isinstance(body, Mapping):
        raise BadRecord(f"body is a JSON {type(body).__name__}, expected an object")
    texts = _documented_text(body)
    _check_identity(texts, ref)
    updated_at = parse_timestamp("updated_at", unwrap("updated_at", body.get("updated_at")))
    if updated_at is None:
        raise BadRecord("field 'updated_at' is missing; it is what tells a newer record from an older one")

    elapsed_seconds, elapsed_error = parse_elapsed(texts["elapsed_time"])
    row: dict[str, Any] = {
        **texts,
        "space_id": ref.space_id,
        "progress": parse_progress(unwrap("progress", body.get("progress"))),
        "created_at": parse_timestamp("created_at", unwrap("created_at", body.get("created_at"))),
        "updated_at": updated_at,
        "elapsed_seconds": elapsed_seconds,
        "elapsed_time_error": elapsed_error,
        EXTRA_FIELDS_COLUMN: extra_fields_json({
            str(key): value for key, value in body.items() if key not in DOCUMENTED_FIELDS
        }),
    }
    notes = []
    if row["state"] not in KNOWN_STATES:
        notes.append(f"unknown state {row['state']!r}")
    if elapsed_error:
        notes.append(f"unparseable elapsed_time: {elapsed_error}")
    if updated_at > (now or datetime.now(timezone.utc)) + FUTURE_SKEW:
        notes.append("updated_at in the future (loaded; see data_quality_issues)")
    return NormalizedJob(row, notes)
