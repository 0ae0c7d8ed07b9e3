"""The ``workflow_jobs`` row, one entry per column: its type and where its value comes from.

Everything that knows the row's shape derives from :data:`JOB_FIELDS`: which keys of UP's job
body are documented and how :mod:`pipeline.normalize` checks each, the dlt column hints in
:mod:`pipeline.tables` and through them the Arrow schema in :mod:`pipeline.arrow_rows`. What
cannot import Python (the README's column table, ``sql/job_durations.sql``) is checked against
it by ``tests/test_job_fields.py``. A new documented field of a known kind is one line here and
one row in the README. No dlt import: the pure normaliser and the emulator's tests use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

DataType = Literal["text", "double", "timestamp"]
"""dlt's names; :mod:`pipeline.tables` passes them on, :mod:`pipeline.arrow_rows` maps them to Arrow."""


class Source(Enum):
    """Where a column's value comes from and how it is checked (:mod:`pipeline.normalize`).

    A body value in a one-element list (the vendor's sample wraps every field) is unwrapped first.
    """

    TEXT = "text"  # from the body: a string or null; anything else makes the body a bad record
    NUMBER = "number"  # from the body: a finite JSON number (int or float; a bool is not one) or null, as a double
    TIMESTAMP = "timestamp"  # from the body: ISO-8601 or null, stored in UTC; a naive value is UTC, as UP documents
    REQUEST = "request"  # the requested JobRef's attribute of the column's name, never the body
    TIMESPAN_SECONDS = "timespan_seconds"  # seconds of field ``of`` read as a .NET TimeSpan; null if it does not parse
    TIMESPAN_ERROR = "timespan_error"  # why field ``of`` did not parse as a TimeSpan (the job still loads)
    EXTRA = "extra"  # every body key no TEXT/NUMBER/TIMESTAMP field names, as one JSON object; null if none

    @property
    def from_body(self) -> bool:
        """Read from the body key of the column's name: a documented field."""
        return self in (Source.TEXT, Source.NUMBER, Source.TIMESTAMP)

    @property
    def of_field(self) -> bool:
        """Computed from another field, named by ``Field.of``."""
        return self in (Source.TIMESPAN_SECONDS, Source.TIMESPAN_ERROR)


@dataclass(frozen=True)
class Field:
    """One column of ``workflow_jobs``.

    ``nullable`` is the column's constraint; ``required`` is what the normaliser enforces (a
    body without the value is a bad record, ``why_required`` says why in the reason).
    """

    name: str
    data_type: DataType
    source: Source
    nullable: bool = True
    required: bool = False
    why_required: str = ""
    of: str | None = None  # the field a derived column is computed from

    def __post_init__(self) -> None:
        if self.source.of_field and self.of is None:
            raise ValueError(f"field {self.name!r}: a {self.source.name} column needs of=<the field it reads>")


# Column order is the table's. Validation order: text fields, then the body's identity (it must
# be the requested job: pipeline.normalize._check_identity), then required fields, then the rest.
JOB_FIELDS: tuple[Field, ...] = (
    Field("id", "text", Source.TEXT, nullable=False, required=True),
    Field("space_id", "text", Source.REQUEST),
    Field("workflow_id", "text", Source.TEXT),  # absent: the requested job's workflow
    Field("workflow_name", "text", Source.TEXT),
    Field("name", "text", Source.TEXT),
    Field("workflow_version", "text", Source.TEXT),
    Field("state", "text", Source.TEXT),  # kept even when unknown (noted); see pipeline.states
    Field("progress", "double", Source.NUMBER),
    Field("created_at", "timestamp", Source.TIMESTAMP),
    Field("updated_at", "timestamp", Source.TIMESTAMP, required=True,
          why_required="it is what tells a newer record from an older one"),
    Field("elapsed_time", "text", Source.TEXT),  # raw, as received
    Field("elapsed_seconds", "double", Source.TIMESPAN_SECONDS, of="elapsed_time"),
    Field("elapsed_time_error", "text", Source.TIMESPAN_ERROR, of="elapsed_time"),
    Field("extra_fields", "text", Source.EXTRA),
)

BODY_FIELDS: tuple[Field, ...] = tuple(field for field in JOB_FIELDS if field.source.from_body)
DOCUMENTED_FIELDS = frozenset(field.name for field in BODY_FIELDS)
"""Keys of UP's job body that have a column; every other key goes to ``extra_fields``."""
