"""One resolution of a run's settings, errors that name options the reader's way, and dlt's
Arrow-row setting held for a run only."""

from __future__ import annotations

import ast
from pathlib import Path

import dlt
import pytest

from pipeline.cli import build_parser
from pipeline.error_state import BackoffPolicy
from pipeline.errors import ConfigError, naming_options, options_spelt
from pipeline.factories import DLT_COLUMNS_ON_ARROW_ROWS
from pipeline.job_ids import ConfigProblem, Shard
from pipeline.run_options import RunOptions, flag_of, options_from_flags, parse_shard, resolve_run
from pipeline.settings import UpJobsConfiguration
from pipeline.summary import RunSummary, format_summary
from tests.conftest import REPO


def _config(**values: object) -> UpJobsConfiguration:
    config = UpJobsConfiguration()
    for name, value in values.items():
        setattr(config, name, value)
    return config


def test_options_win_over_config_and_config_over_defaults(tmp_path):
    defaults = resolve_run(_config(), RunOptions(db_path=tmp_path / "a.duckdb"))
    assert (defaults.concurrency, defaults.lock_timeout_seconds, defaults.destination, defaults.warehouse) == (16, 0.0, None, None)
    assert defaults.loader_file_format == "parquet" and defaults.backoff == BackoffPolicy()
    assert defaults.state_root == Path.cwd() and defaults.db_path == tmp_path / "a.duckdb"

    config = _config(max_concurrency=4, lock_timeout_seconds=7.0, destination="postgres", jobs_file="config.csv",
                     dead_job_after_failures=5, dead_job_backoff_hours=2.0, dead_job_max_backoff_hours=48.0)
    configured = resolve_run(config, RunOptions())
    assert (configured.concurrency, configured.lock_timeout_seconds, configured.warehouse) == (4, 7.0, "postgres")
    assert configured.jobs_file == "config.csv" and configured.loader_file_format is None
    assert configured.backoff == BackoffPolicy(5, 2.0, 48.0)

    given = resolve_run(config, RunOptions(concurrency=2, lock_timeout_seconds=0.0, destination="duckdb",
                                           jobs_file="given.csv", shard="1/3"))
    assert (given.concurrency, given.lock_timeout_seconds, given.jobs_file) == (2, 0.0, "given.csv")  # a given 0 wins
    assert given.destination == "duckdb" and given.warehouse is None and given.loader_file_format == "parquet"
    assert given.shard == Shard(1, 3)


def test_every_run_flag_reaches_its_option(tmp_path):
    argv = ["run", "--db", "x.duckdb", "--jobs-file", "j.csv", "--refresh", "--retry-errors", "--concurrency", "3",
            "--lock-timeout", "2.5", "--destination", "postgres", "--shard", "0/2"]
    assert options_from_flags(vars(build_parser().parse_args(argv))) == RunOptions(
        db_path="x.duckdb", jobs_file="j.csv", refresh=True, retry_errors=True, concurrency=3,
        lock_timeout_seconds=2.5, destination="postgres", shard="0/2")
    assert options_from_flags(vars(build_parser().parse_args(["run"]))) == RunOptions(db_path="up_jobs.duckdb")


def test_library_errors_name_options_and_the_cli_names_its_flags():
    with pytest.raises(ConfigError) as raised:
        parse_shard("3/2")
    assert str(raised.value) == "shard takes i/n with 0 <= i < n, e.g. 0/3; got '3/2'"
    assert options_spelt(raised.value, flag_of) == "--shard takes i/n with 0 <= i < n, e.g. 0/3; got '3/2'"
    error = naming_options(RuntimeError, "raise {lock_timeout_seconds}, or {db_path}")
    assert (str(error), options_spelt(error, flag_of)) == ("raise lock_timeout_seconds, or db_path", "raise --lock-timeout, or --db")
    assert options_spelt(ConfigError("no {placeholders} here"), flag_of) == "no {placeholders} here"
    summary = RunSummary(config_problems=[ConfigProblem("shard", "one load at a time", is_error=False)])
    assert "warning: shard: one load at a time" in format_summary(summary)
    assert "warning: --shard: one load at a time" in format_summary(summary, spell=flag_of)


FLAG_MESSAGES_LEFT = {"pipeline/job_ids.py", "pipeline/planning.py", "pipeline/alerts/webhook.py"}
"""Messages still naming a flag, in modules outside this change (Shard.parse's text never reaches
a reader: parse_shard words its own)."""


def test_no_library_error_names_a_cli_flag():
    """Only the CLI spells flags: a raise elsewhere names options as ``{option}``."""
    offenders = []
    for path in sorted((REPO / "pipeline").rglob("*.py")):
        name = str(path.relative_to(REPO))
        if name == "pipeline/cli.py" or name in FLAG_MESSAGES_LEFT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [part.value for part in ast.walk(node.exc) if isinstance(part, ast.Constant) and isinstance(part.value, str)]
                offenders += [f"{name}:{node.lineno}" for text in texts if " --" in f" {text}"]
    assert offenders == []


def test_dlt_columns_on_arrow_rows_hold_for_the_run_only(emulator):
    keys = list(DLT_COLUMNS_ON_ARROW_ROWS)
    with dlt.config.values({key: False for key in keys}):  # as a host process may have them
        emulator.run()
        assert [dlt.config[key] for key in keys] == [False, False]
    loads = emulator.query("select count(*), count(_dlt_load_id), count(_dlt_id) from telestream_up.workflow_jobs")
    assert loads[0][0] > 0 and loads[0][0] == loads[0][1] == loads[0][2]


def test_the_error_log_goes_where_the_resolved_destination_keeps_state(tmp_path, monkeypatch):
    """A warehouse named only in config keeps its error log with the warehouse state, as a flag does."""
    from pipeline.cli import _error_log_path

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["run"])
    assert _error_log_path(args) == tmp_path / "up_jobs.duckdb.work" / "last_error.log"
    monkeypatch.setenv("SOURCES__UP_JOBS__DESTINATION", "postgres")
    assert _error_log_path(args) == tmp_path / ".up_jobs" / "last_error.log"


def test_unknown_key_hints_keep_the_options_for_the_cli_to_spell():
    from pipeline.config_hints import hinted

    with pytest.raises(ConfigError) as raised, hinted([ConfigProblem("environment", "unknown key 'shards'")]):
        parse_shard("3/2")
    assert str(raised.value).startswith("shard takes i/n") and "environment: unknown key 'shards'" in str(raised.value)
    assert options_spelt(raised.value, flag_of).startswith("--shard takes i/n")
