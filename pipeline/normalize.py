"""Turn one UP job response body into a ``workflow_jobs`` row, or say why it is a bad record.

The body is documented at Telestream UP's API reference (workflow job object). Which fields it
has, their types and how each is checked come from :data:`pipeline.job_fields.JOB_FIELDS`; this
module holds the checks themselves. The vendor's sample wraps each field in a one-element list;
that form is unwrapped. Pure functions, no I/O.

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
from typing import Any, Callable, Mapping

from pipeline.job_fields import BODY_FIELDS, DOCUMENTED_FIELDS, JOB_FIELDS, Field, Source
from pipeline.job_ids import JobRef
from pipeline.states import KNOWN_STATES
from pipeline.timespan import TimeSpanError, parse_timespan_seconds

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


def parse_text(name: str, value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRecord(f"field {name!r} is not a string: {value!r:.80}")
    return None if value is None else safe_text(value)


def parse_number(name: str, value: Any) -> float | None:
    """A JSON number as a double; ``true`` is not a number, nor is one too large for a double."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRecord(f"field {name!r} is not a number: {value!r:.80}")
    try:
        number = float(value)
    except OverflowError:  # a 400-digit integer
        raise BadRecord(f"field {name!r} is too large for a number: {len(str(value))} digits") from None
    if not math.isfinite(number):
        raise BadRecord(f"field {name!r} is not a finite number: {value!r:.80}")
    return number


def parse_elapsed(value: Any) -> tuple[float | None, str | None]:
    """Seconds and the parse problem; an unparseable value never rejects the job."""
    if value is None:
        return None, None
    try:
        return parse_timespan_seconds(value), None
    except TimeSpanError as error:
        return None, str(error)


_PARSERS: dict[Source, Callable[[str, Any], Any]] = {
    Source.TEXT: parse_text,
    Source.NUMBER: parse_number,
    Source.TIMESTAMP: parse_timestamp,
}
_Timespans = Mapping[str, tuple[float | None, str | None]]
_Rule = Callable[[JobRef, Mapping[str, Any], _Timespans], Any]


def _rule(spec: Field) -> _Rule:
    """How a column not read from the body key of its name gets its value (see :class:`Source`)."""
    name, of = spec.name, spec.of or ""
    if spec.source is Source.REQUEST:
        return lambda ref, body, timespans: getattr(ref, name)
    if spec.source is Source.TIMESPAN_SECONDS:
        return lambda ref, body, timespans: timespans[of][0]
    if spec.source is Source.TIMESPAN_ERROR:
        return lambda ref, body, timespans: timespans[of][1]
    if spec.source is Source.EXTRA:
        return lambda ref, body, timespans: extra_fields_json(
            {str(key): value for key, value in body.items() if key not in DOCUMENTED_FIELDS}
        )
    raise AssertionError(f"pipeline.normalize has no rule for {spec.source}")  # a Source added without one


# Plans worked out once from the spec (a job is normalised in tens of microseconds). The order a
# body is checked in makes the most telling problem the one reported: the text fields (identity
# among them), then the fields a row cannot do without, then the rest.
_Check = tuple[str, Callable[[str, Any], Any], Field]
_TEXT_CHECKS: tuple[_Check, ...] = tuple((spec.name, _PARSERS[spec.source], spec) for spec in BODY_FIELDS if spec.source is Source.TEXT)
_LATER_CHECKS: tuple[_Check, ...] = tuple(
    (spec.name, _PARSERS[spec.source], spec)
    for spec in sorted((spec for spec in BODY_FIELDS if spec.source is not Source.TEXT), key=lambda spec: not spec.required)
)
_REQUIRED_TEXT = tuple(spec for spec in BODY_FIELDS if spec.source is Source.TEXT and spec.required)
_DERIVED: tuple[tuple[str, _Rule], ...] = tuple((spec.name, _rule(spec)) for spec in JOB_FIELDS if not spec.source.from_body)
_TIMESPAN_OF = tuple(dict.fromkeys(spec.of for spec in JOB_FIELDS if spec.source.of_field and spec.of))
_TIMESPAN_ERRORS = tuple((spec.name, spec.of) for spec in JOB_FIELDS if spec.source is Source.TIMESPAN_ERROR)
_COLUMNS = tuple(spec.name for spec in JOB_FIELDS)


def _require(spec: Field, value: Any) -> None:
    """An empty string is as missing as no value (an empty ``id`` names no job)."""
    if spec.required and (value is None or value == ""):
        because = f"; {spec.why_required}" if spec.why_required else ""
        raise BadRecord(f"field {spec.name!r} is missing{because}")


def _check_identity(texts: dict[str, Any], ref: JobRef) -> None:
    """The body must be the job that was requested, not another job or another workflow's."""
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
    row: dict[str, Any] = dict.fromkeys(_COLUMNS)  # the columns in the table's order
    for name, parse, _ in _TEXT_CHECKS:
        row[name] = parse(name, unwrap(name, body.get(name)))
    for spec in _REQUIRED_TEXT:
        _require(spec, row[spec.name])
    _check_identity(row, ref)
    for name, parse, spec in _LATER_CHECKS:
        row[name] = parse(name, unwrap(name, body.get(name)))
        if spec.required:
            _require(spec, row[name])
    timespans = {name: parse_elapsed(row[name]) for name in _TIMESPAN_OF}
    for name, rule in _DERIVED:
        row[name] = rule(ref, body, timespans)
    notes = []
    if row["state"] not in KNOWN_STATES:
        notes.append(f"unknown state {row['state']!r}")
    notes += [f"unparseable {of}: {row[name]}" for name, of in _TIMESPAN_ERRORS if row[name]]
    if row["updated_at"] > (now or datetime.now(timezone.utc)) + FUTURE_SKEW:
        notes.append("updated_at in the future (loaded; see data_quality_issues)")
    return NormalizedJob(row, notes)
