"""Cron-log lines: a timestamped header, and progress lines that mean something (pure, no waiting)."""

from __future__ import annotations

import argparse
import io
import re
from datetime import datetime, timezone

from pipeline.runlog import ProgressLog, dlt_cli_command, header, timestamp

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class Clock:
    def __init__(self) -> None:
        self.seconds = 100.0

    def __call__(self) -> float:
        return self.seconds


def _log(interactive: bool = False) -> tuple[ProgressLog, io.StringIO, Clock]:
    stream, clock = io.StringIO(), Clock()
    fixed = datetime(2026, 11, 30, 2, 15, tzinfo=timezone.utc)
    return ProgressLog(stream, clock=clock, now=lambda: fixed, interactive=interactive), stream, clock


def test_cron_lines_are_timestamped_and_start_with_the_job_count_not_the_first_job():
    log, stream, clock = _log()
    log(0, 500)
    for done in range(1, 501):
        clock.seconds += 0.025  # 40 jobs/s: 12.5 s in all
        log(done, 500)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "2026-11-30T02:15:00Z to fetch: 500 jobs"
    assert all(re.match(STAMP + " ", line) for line in lines)
    assert [line.split()[2] for line in lines[1:]] == [f"{n}/500" for n in range(50, 501, 50)]  # one per 10 %
    assert "jobs/s" not in lines[1] and "left" not in lines[1]  # 1 s in: too early to estimate
    assert lines[-1].endswith("fetched 500/500 jobs (100%), 40 jobs/s, about 0 s left")
    assert lines[5].endswith("fetched 250/500 jobs (50%), 40 jobs/s, about 6 s left")


def test_a_slow_run_still_logs_once_a_minute():
    log, stream, clock = _log()
    log(0, 1000)
    for done in range(1, 60):  # one job per 3 s: 10 % takes 5 minutes
        clock.seconds += 3
        log(done, 1000)
    lines = stream.getvalue().splitlines()[1:]
    assert [line.split()[2] for line in lines] == ["20/1000", "40/1000"]  # at 60 s and 120 s...
    assert "about" in lines[0]  # 20 jobs and 60 s: enough to estimate


def test_nothing_to_fetch_is_said_plainly():
    log, stream, _ = _log()
    log(0, 0)
    assert stream.getvalue() == "2026-11-30T02:15:00Z to fetch: no jobs (all loaded in a terminal state)\n"


def test_terminal_gets_one_live_line_without_timestamps():
    log, stream, clock = _log(interactive=True)
    log(0, 3)
    for done in (1, 2, 3):
        clock.seconds += 1
        log(done, 3)
    assert stream.getvalue() == ("to fetch: 3 jobs\n\rfetched 1/3 jobs (33%)\rfetched 2/3 jobs (66%)"
                                 "\rfetched 3/3 jobs (100%)\n")


def test_header_names_time_command_and_target_and_masks_url_credentials():
    args = argparse.Namespace(command="run", project_dir="/opt/up-jobs", db="up.duckdb", refresh=True, shard=None,
                              destination="postgresql://loader:pw@db:5432/x")
    line = header(args, "database /opt/up-jobs/up.duckdb", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), pid=42)
    assert line == ("2026-01-02T03:04:05Z up-jobs run --project-dir /opt/up-jobs --db up.duckdb --refresh "
                    "--destination postgresql://***@db:5432/x (pid 42): database /opt/up-jobs/up.duckdb")


def test_timestamp_is_utc_whatever_the_zone():
    from datetime import timedelta

    assert timestamp(datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))) == "2025-12-31T23:00:00Z"


def test_dlt_command_quotes_the_folder():
    assert dlt_cli_command("/data/my dir/pipelines", "up_jobs", "trace") == (
        "dlt pipeline --pipelines-dir '/data/my dir/pipelines' up_jobs trace"
    )
