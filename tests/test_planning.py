"""Planning reads the pipeline's own tables: a missing one is reported, never silently empty."""

from __future__ import annotations

import duckdb


def test_a_dropped_jobs_table_is_an_error_and_the_runs_recover(emulator):
    """``workflow_jobs`` dropped after a load: every run that finds it missing says so (an error:
    exit 1), requests every job, and within two runs the table holds every job again."""
    emulator.run()
    work = emulator.db.with_name(emulator.db.name + ".work") / "work.duckdb"
    with duckdb.connect(str(work)) as connection:
        connection.execute("drop table telestream_up.workflow_jobs cascade")
    before = emulator.store.total_requests
    first = emulator.run()
    missing = [problem for problem in first.config_problems if "workflow_jobs" in problem.location]
    assert missing and missing[0].is_error and "missing" in missing[0].message and first.has_problems
    assert emulator.store.total_requests - before == 60, "with no state to trust, every job is requested"
    second = emulator.run()
    if second.count("loaded") < 60:
        second = emulator.run()
    assert second.count("loaded") == 60
    assert emulator.query("select count(*) from telestream_up.workflow_jobs") == [(60,)]
    healed = emulator.run()
    assert not healed.config_problems and healed.skipped_terminal == healed.listed - healed.stats.fetched
