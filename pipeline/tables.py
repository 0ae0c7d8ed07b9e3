"""Column definitions of the tables the pipeline writes, used as dlt schema hints.

``workflow_jobs``'s columns come from :data:`pipeline.job_fields.JOB_FIELDS`; this module adds
the table's own hints (key, which version wins a merge). Types are pinned so the first value seen never decides them (JSON ``100`` vs ``33.3`` would
otherwise split ``progress`` into a ``progress__v_double`` variant column). The same
definitions create empty tables up front, so views always have something to select from.
"""

from __future__ import annotations

from dlt.common.schema.typing import (
    TColumnSchema,
    TMergeDispositionDict,
    TTableSchema,
    TWriteDisposition,
    TWriteDispositionConfig,
)
from dlt.common.schema.utils import new_table

from pipeline.job_fields import JOB_FIELDS, Field

WORKFLOW_JOBS = "workflow_jobs"
FETCH_ERRORS = "fetch_errors"
QUARANTINE = "quarantined_records"
RECOVERIES = "fetch_recoveries"
ERROR_STATE = "fetch_error_state"
JOB_OBSERVATIONS = "job_observations"


def _text(name: str, nullable: bool = True) -> TColumnSchema:
    return {"name": name, "data_type": "text", "nullable": nullable}


def _double(name: str) -> TColumnSchema:
    return {"name": name, "data_type": "double", "nullable": True}


def _bigint(name: str) -> TColumnSchema:
    return {"name": name, "data_type": "bigint", "nullable": True}


def _timestamp(name: str) -> TColumnSchema:
    return {"name": name, "data_type": "timestamp", "timezone": True, "nullable": True}


def _key_column(name: str) -> TColumnSchema:
    return {"name": name, "data_type": "text", "nullable": False, "primary_key": True}


def _field_column(field: Field, hints: TColumnSchema) -> TColumnSchema:
    column: TColumnSchema = {"name": field.name, "data_type": field.data_type, "nullable": field.nullable}
    if field.data_type == "timestamp":
        column["timezone"] = True
    return {**column, **hints}


# workflow_jobs' own hints: its key, and the newest updated_at wins when one load holds two versions
_WORKFLOW_JOBS_HINTS: dict[str, TColumnSchema] = {
    "id": {"primary_key": True},
    "updated_at": {"dedup_sort": "desc"},
}


def _job_key() -> list[TColumnSchema]:
    return [_text("space_id"), _text("workflow_id"), _text("job_id")]


COLUMNS: dict[str, list[TColumnSchema]] = {
    WORKFLOW_JOBS: [_field_column(field, _WORKFLOW_JOBS_HINTS.get(field.name, {})) for field in JOB_FIELDS],
    FETCH_ERRORS: [
        *_job_key(),
        _text("error_kind"),
        _bigint("http_status"),
        _text("message"),
        _bigint("attempts"),
        _timestamp("occurred_at"),
    ],
    QUARANTINE: [
        *_job_key(),
        _text("reason"),
        _bigint("http_status"),
        _text("payload"),
        _bigint("payload_bytes"),
        {"name": "is_payload_truncated", "data_type": "bool", "nullable": True},
        _timestamp("received_at"),
    ],
    RECOVERIES: [*_job_key(), _timestamp("recovered_at")],
    ERROR_STATE: [
        *(_key_column(name) for name in ("space_id", "workflow_id", "job_id")),
        _text("error_kind"),
        _bigint("http_status"),
        _text("message"),
        _bigint("attempts"),
        _timestamp("first_failed_at"),
        _timestamp("last_failed_at"),
        _bigint("consecutive_failures"),
        _timestamp("next_attempt_at"),
        _timestamp("recovered_at"),
    ],
    # one row per distinct (job_id, updated_at) seen; see pipeline/observations.py
    JOB_OBSERVATIONS: [
        {"name": "job_id", "data_type": "text", "nullable": False},
        _text("space_id"),
        _text("workflow_id"),
        _text("workflow_name"),
        _text("state"),
        _double("progress"),
        _timestamp("created_at"),
        {"name": "updated_at", "data_type": "timestamp", "timezone": True, "nullable": False},
        _timestamp("observed_at"),
        _timestamp("previous_updated_at"),
        _text("previous_state"),
        _timestamp("previous_confirmed_at"),  # last poll that still saw the previous version
    ],
}
PRIMARY_KEY: dict[str, list[str]] = {WORKFLOW_JOBS: ["id"], ERROR_STATE: ["space_id", "workflow_id", "job_id"]}

WRITE_DISPOSITION: dict[str, TWriteDispositionConfig] = {
    WORKFLOW_JOBS: TMergeDispositionDict(disposition="merge", strategy="delete-insert"),
    FETCH_ERRORS: "append",
    QUARANTINE: "append",
    RECOVERIES: "append",
    ERROR_STATE: TMergeDispositionDict(disposition="merge", strategy="delete-insert"),
    JOB_OBSERVATIONS: "append",
}


_DLT_COLUMNS: list[TColumnSchema] = [
    {"name": "_dlt_load_id", "data_type": "text", "nullable": False},
    {"name": "_dlt_id", "data_type": "text", "nullable": False, "unique": True, "row_key": True},
]


def columns_hint(table: str) -> dict[str, TColumnSchema]:
    return {column["name"]: column for column in COLUMNS[table]}  # type: ignore[misc]  # dlt: TColumnSchema's name is NotRequired


def empty_table_schemas() -> list[TTableSchema]:
    """Table schemas (with dlt's own columns) for creating every table before any row arrives."""
    schemas = []
    for table, columns in COLUMNS.items():
        disposition: TWriteDisposition = "merge" if table in PRIMARY_KEY else "append"
        schemas.append(new_table(table, write_disposition=disposition, columns=[*columns, *_DLT_COLUMNS]))
    return schemas
