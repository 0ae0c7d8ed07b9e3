"""The order views are applied in: each after the views it selects from, found by parsing the SQL."""

from __future__ import annotations

import pytest

from pipeline.names import DATASET_NAME
from pipeline.runner import RunOptions, make_pipeline, make_workspace
from pipeline.views import ViewError, apply_views, dependency_order, references, view_sources

# the dependent view sorts first by name, so an alphabetical order would create it before its base
DEPENDENT_FIRST = {
    "a_summary": f"create or replace view {DATASET_NAME}.a_summary as select count(*) as jobs from {DATASET_NAME}.z_base",
    "z_base": f"create or replace view {DATASET_NAME}.z_base as select id from {DATASET_NAME}.workflow_jobs",
}


def test_a_view_comes_after_the_view_it_reads_even_when_its_name_sorts_first():
    assert dependency_order(DEPENDENT_FIRST) == ["z_base", "a_summary"]


def test_references_are_parsed_not_matched():
    """Quoted names count; a CTE, a string that looks like a name and the view itself do not."""
    sql = (
        f'create or replace view {DATASET_NAME}.v as\n'
        f'with z_base as (select * from "{DATASET_NAME}"."workflow_jobs")\n'
        f"select '{DATASET_NAME}.a_summary' as note, * from z_base join {DATASET_NAME}.fetch_errors using (job_id)"
    )
    assert references(sql, "v") == {"workflow_jobs", "fetch_errors"}


def test_a_cycle_is_named():
    sources = {
        "a": f"create or replace view {DATASET_NAME}.a as select * from {DATASET_NAME}.b",
        "b": f"create or replace view {DATASET_NAME}.b as select * from {DATASET_NAME}.c",
        "c": f"create or replace view {DATASET_NAME}.c as select * from {DATASET_NAME}.a",
    }
    with pytest.raises(ViewError, match=r"views select from each other in a cycle: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)"):
        dependency_order(sources)


def test_a_view_reading_a_missing_view_is_named():
    sources = {"a_summary": DEPENDENT_FIRST["a_summary"]}  # z_base renamed or removed
    with pytest.raises(ViewError, match=rf"sql/a_summary\.sql selects from {DATASET_NAME}\.z_base, which is neither a view"):
        dependency_order(sources)


def test_the_shipped_views_come_after_job_durations():
    order = list(view_sources())
    readers = [name for name, sql in view_sources().items() if "job_durations" in references(sql, name)]
    assert len(readers) >= 5
    assert all(order.index("job_durations") < order.index(name) for name in readers)


def test_apply_views_creates_the_base_view_first(tmp_path):
    """DuckDB refuses a view on a view that does not exist yet: applied by name, this fails."""
    pipeline = make_pipeline(make_workspace(RunOptions(db_path=tmp_path / "order.duckdb")))
    pipeline.run([{"id": "job-1"}], table_name="workflow_jobs")
    assert apply_views(pipeline, DEPENDENT_FIRST).changed == ["z_base", "a_summary"]
    with pipeline.sql_client() as client:
        assert client.execute_sql(f"select jobs from {DATASET_NAME}.a_summary") == [(1,)]
    assert apply_views(pipeline, DEPENDENT_FIRST).changed == []  # current: nothing parsed, nothing applied
