"""Normalising one job body: the vendor sample form, bad records, timestamps, unknown fields."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from pipeline.job_ids import JobRef
from pipeline.normalize import BadRecord, normalize_job

REF = JobRef("space", "1b4c2f0e-8d7a-4e3b-9c6d-5a4b3c2d1e0f", "e75e4c3b9d2a4f6e8b1c0d9e7f6a5b4c")

# The shape of the vendor's published sample: every field wrapped in a one-element list.
VENDOR_SAMPLE = {
    "id": ["e75e4c3b9d2a4f6e8b1c0d9e7f6a5b4c"],
    "name": ["my-job"],
    "workflow_id": ["1b4c2f0e-8d7a-4e3b-9c6d-5a4b3c2d1e0f"],
    "workflow_name": ["Transcode"],
    "progress": [100],
    "state": ["succeeded"],
    "workflow_version": ["1"],
    "created_at": ["2020-01-21T15:53:12.388317Z"],
    "updated_at": ["2020-01-21T17:17:00.6Z"],
    "elapsed_time": ["1:23:48.211683"],
}


def test_vendor_sample_with_one_element_lists_is_unwrapped():
    row = normalize_job(VENDOR_SAMPLE, REF).row
    assert row["id"] == REF.job_id and row["state"] == "succeeded" and row["progress"] == 100.0
    assert row["created_at"] == datetime(2020, 1, 21, 15, 53, 12, 388317, tzinfo=timezone.utc)
    assert row["elapsed_seconds"] == pytest.approx(5028.211683)
    assert row["space_id"] == "space"


def test_timestamps_compare_as_time_not_text():
    """'...:00.6Z' sorts after '...:00.65Z' as text but is earlier in time."""
    earlier_text, later_text = "2020-01-21T17:17:00.6Z", "2020-01-21T17:17:00.65Z"
    assert earlier_text > later_text
    earlier = normalize_job({**VENDOR_SAMPLE, "updated_at": earlier_text}, REF)
    later = normalize_job({**VENDOR_SAMPLE, "updated_at": later_text}, REF)
    assert later.updated_at > earlier.updated_at


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "'id' is missing"),
        ({"id": "f" * 32}, "was requested"),
        ({"progress": "fifty"}, "not a number"),
        ({"progress": True}, "not a number"),
        ({"state": ["succeeded", "failed"]}, "list of 2"),
        ({"name": {"nested": 1}}, "not a string"),
        ({"updated_at": None}, "'updated_at' is missing"),
        ({"updated_at": "yesterday"}, "ISO-8601"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(change, reason):
    body = {**VENDOR_SAMPLE, **change}
    body = {key: value for key, value in body.items() if value is not None}
    with pytest.raises(BadRecord, match=reason):
        normalize_job(body, REF)


@pytest.mark.parametrize("body", [[VENDOR_SAMPLE], "text", 42, None])
def test_non_object_bodies_are_bad_records(body):
    with pytest.raises(BadRecord):
        normalize_job(body, REF)


def test_unparseable_elapsed_time_keeps_the_job_and_records_the_problem():
    job = normalize_job({**VENDOR_SAMPLE, "elapsed_time": "1:60:00"}, REF)
    assert job.row["elapsed_seconds"] is None
    assert job.row["elapsed_time"] == "1:60:00"
    assert "minutes" in job.row["elapsed_time_error"]
    assert any("elapsed_time" in note for note in job.notes)


def test_unknown_state_is_kept_and_noted():
    job = normalize_job({**VENDOR_SAMPLE, "state": "paused"}, REF)
    assert job.row["state"] == "paused" and job.notes == ["unknown state 'paused'"]


def test_fields_added_later_are_kept_as_json_text():
    job = normalize_job({**VENDOR_SAMPLE, "priority": [5], "tags": ["a", "b"], "ratio": 5.7}, REF)
    assert json.loads(job.row["extra_fields"]) == {"priority": [5], "tags": ["a", "b"], "ratio": 5.7}
    assert "priority" not in job.row
    assert normalize_job(VENDOR_SAMPLE, REF).row["extra_fields"] is None


def test_api_field_cannot_overwrite_derived_columns_and_is_kept():
    job = normalize_job({**VENDOR_SAMPLE, "space_id": "spoofed", "elapsed_seconds": 1}, REF)
    assert job.row["space_id"] == "space" and job.row["elapsed_seconds"] == pytest.approx(5028.211683)
    assert json.loads(job.row["extra_fields"]) == {"space_id": "spoofed", "elapsed_seconds": 1}
