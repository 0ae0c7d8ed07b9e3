"""dlt keeps every loaded package; a package per cron run must not fill the disk."""

from __future__ import annotations

import dlt

from pipeline.run_record import prune_loaded_packages


def test_prune_keeps_the_newest_loaded_packages(tmp_path):
    pipeline = dlt.pipeline("prune_test", destination=dlt.destinations.duckdb(str(tmp_path / "p.duckdb")),
                            dataset_name="d", pipelines_dir=str(tmp_path / "pipelines"))
    loads = [pipeline.run([{"n": n}], table_name="t").loads_ids[0] for n in range(3)]
    assert sorted(pipeline.list_completed_load_packages()) == sorted(loads)
    assert prune_loaded_packages(pipeline, keep=1) == 2
    assert sorted(pipeline.list_completed_load_packages()) == loads[2:]
    assert prune_loaded_packages(pipeline, keep=1) == 0
    with pipeline.sql_client() as client:  # the loaded data is untouched
        assert client.execute_sql("select count(*) from t")[0][0] == 3
