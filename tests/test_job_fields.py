"""One specification of the ``workflow_jobs`` row (pipeline/job_fields.py) and one set of job states
(pipeline/states.py): the normaliser follows the spec field by field, and what cannot import
Python (the README's column table, the SQL views) is held to it here."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlglot
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlglot import exp

from pipeline.arrow_rows import rows_to_table
from pipeline.emulator import generator, timeline
from pipeline.job_fields import BODY_FIELDS, DOCUMENTED_FIELDS, JOB_FIELDS, Field, Source
from pipeline.job_ids import JobRef
from pipeline.normalize import BadRecord, normalize_job
from pipeline.states import KNOWN_STATES, TERMINAL_STATES
from tests.conftest import REPO

SQL = REPO / "sql"
REF = JobRef("space", "wf-1", "job-1")
VALID = {"id": "job-1", "workflow_id": "wf-1", "updated_at": "2024-05-01T10:00:00Z"}
NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)

# ---- the normaliser follows the spec (properties over every field the spec lists) ----------

# text every destination stores unchanged (NUL and lone surrogates become U+FFFD: test_hostile.py)
storable_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | storable_text
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(storable_text, inner, max_size=3), max_leaves=8
)
undocumented_keys = storable_text.filter(lambda key: key not in DOCUMENTED_FIELDS)


@settings(deadline=None)  # a shared machine: time is not what these tests check
@given(st.dictionaries(undocumented_keys, json_values, max_size=5))
def test_a_row_has_exactly_the_spec_columns_and_undocumented_keys_go_to_extra_fields(extra):
    row = normalize_job({**VALID, **extra}, REF, NOW).row
    assert list(row) == [field.name for field in JOB_FIELDS]
    assert (json.loads(row["extra_fields"]) if row["extra_fields"] else {}) == extra
    assert rows_to_table([row]).num_rows == 1  # the Arrow types (from the same spec) take every value


@settings(deadline=None)  # a shared machine: time is not what these tests check
@given(st.sampled_from([field for field in BODY_FIELDS if field.name not in VALID]), st.data())
def test_each_documented_field_is_converted_as_its_spec_says(field: Field, data: st.DataObject):
    value, stored = data.draw(_good_value(field.source))
    row = normalize_job({**VALID, field.name: [value]}, REF, NOW).row  # the vendor's one-element list too
    assert row[field.name] == stored
    assert row["extra_fields"] is None


@settings(deadline=None)  # a shared machine: time is not what these tests check
@given(st.sampled_from(BODY_FIELDS), st.data())
def test_a_value_of_the_wrong_type_makes_a_bad_record_that_names_the_field(field: Field, data: st.DataObject):
    wrong = data.draw(_wrong_value(field.source))
    with pytest.raises(BadRecord, match=f"field '{field.name}' is "):
        normalize_job({**VALID, field.name: wrong}, REF, NOW)


@pytest.mark.parametrize("field", [field for field in JOB_FIELDS if field.required], ids=lambda field: field.name)
def test_a_body_without_a_required_field_is_a_bad_record(field: Field):
    body = {key: value for key, value in VALID.items() if key != field.name}
    with pytest.raises(BadRecord, match=f"field '{field.name}' is missing"):
        normalize_job(body, REF, NOW)


def test_derived_columns_come_from_the_request_and_the_timespan_never_from_the_body():
    body = {**VALID, "elapsed_time": "1:02:03.5", "space_id": "spoofed", "elapsed_seconds": 1, "elapsed_time_error": "x"}
    row = normalize_job(body, REF, NOW).row
    assert (row["space_id"], row["elapsed_seconds"], row["elapsed_time_error"]) == ("space", 3723.5, None)
    assert json.loads(row["extra_fields"]) == {"space_id": "spoofed", "elapsed_seconds": 1, "elapsed_time_error": "x"}


def _good_value(source: Source) -> st.SearchStrategy[tuple[Any, Any]]:
    """(a body value of the kind, what the row stores)."""
    if source is Source.TEXT:
        return storable_text.map(lambda text: (text, text))
    if source is Source.NUMBER:
        numbers = st.integers(-(10**15), 10**15) | st.floats(allow_nan=False, allow_infinity=False)
        return numbers.map(lambda number: (number, float(number)))
    if source is Source.TIMESTAMP:
        moments = st.datetimes(datetime(1970, 1, 2), datetime(9998, 12, 31), timezones=st.just(timezone.utc))
        return moments.map(lambda moment: (moment.isoformat(), moment))
    raise AssertionError(f"no values for {source}: add them here")


def _wrong_value(source: Source) -> st.SearchStrategy[Any]:
    if source is Source.TEXT:
        return st.integers() | st.booleans() | st.floats() | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
    if source is Source.NUMBER:
        return st.booleans() | st.text(max_size=5) | st.just({"value": 1})
    if source is Source.TIMESTAMP:
        return st.integers() | st.text(max_size=15) | st.just("yesterday at noon, roughly")
    raise AssertionError(f"no wrong values for {source}: add them here")


# ---- what cannot import the spec is held to it ------------------------------------------------

_README_TYPES = {"text": "text", "double": "double", "timestamp": "timestamp with time zone"}


def test_the_readme_column_table_lists_exactly_the_spec_fields_with_their_types():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("`workflow_jobs` columns"):]
    table = re.match(r"[^\n]*\n\n((?:\|[^\n]*\n)+)", section)
    assert table, "the README's workflow_jobs column table is missing"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.group(1).splitlines()[2:]]
    assert [(row[0].strip("`"), row[1]) for row in rows] == [(field.name, _README_TYPES[field.data_type]) for field in JOB_FIELDS]


def _view(name: str) -> exp.Expression:
    return sqlglot.parse_one((SQL / f"{name}.sql").read_text(encoding="utf-8"), read="duckdb")


def _views() -> dict[str, exp.Expression]:
    return {path.stem: _view(path.stem) for path in sorted(SQL.glob("*.sql"))}


def test_every_is_terminal_a_view_defines_lists_exactly_the_terminal_states():
    definitions = {}
    for name, view in _views().items():
        for alias in view.find_all(exp.Alias):
            if alias.alias == "is_terminal" and isinstance(alias.this, exp.In):
                definitions[name] = {literal.this for literal in alias.this.expressions}
    assert {"job_durations", "job_state_intervals"} <= set(definitions)  # where the views define it today
    assert definitions == {name: set(TERMINAL_STATES) for name in definitions}


def test_every_state_a_view_compares_with_is_a_known_state():
    """A typo ('succeded') or a state UP renamed would count nothing, silently."""
    compared = {}
    for name, view in _views().items():
        for node in view.find_all(exp.In, exp.EQ):
            column = node.this
            if isinstance(column, exp.Column) and column.name.endswith("state"):
                literals = node.expressions if isinstance(node, exp.In) else [node.expression]
                compared.setdefault(name, set()).update(literal.this for literal in literals if isinstance(literal, exp.Literal))
    assert {"workflow_duration_stats", "job_state_intervals", "workflow_time_breakdown"} <= set(compared)
    assert {name: states - KNOWN_STATES for name, states in compared.items()} == {name: set() for name in compared}


def test_views_read_only_workflow_jobs_columns_the_spec_defines():
    """job_durations is a curated view (renames ``id`` and ``name``, leaves out the error and JSON
    columns): a new column need not appear in it, but every column a view reads must exist."""
    read = {column.name for column in _view("job_durations").find_all(exp.Column)}  # its only source is workflow_jobs
    assert {"id", "state", "created_at", "updated_at", "elapsed_seconds"} <= read
    for view in _views().values():
        read |= {column.name for column in view.find_all(exp.Column) if column.table == "workflow_jobs"}
    assert "elapsed_time_error" in read  # data_quality_issues reads it from workflow_jobs
    assert {name for name in read if not name.startswith("_dlt_")} - {field.name for field in JOB_FIELDS} == set()


def test_the_emulator_produces_every_known_state_and_finishes_in_every_terminal_one():
    assert TERMINAL_STATES <= KNOWN_STATES
    assert set(generator.STATE_WEIGHTS) == KNOWN_STATES
    assert set(generator.FINISH_WEIGHTS) == TERMINAL_STATES
    assert set(timeline.FINISH_WEIGHTS) == TERMINAL_STATES
