"""What a run is asked to do (:class:`RunOptions`) and the settings it runs with
(:class:`RunSettings`): the caller's options over ``[sources.up_jobs]`` config over defaults,
decided by :func:`resolve_run` and nowhere else.

``up-jobs run`` and the orchestration helpers both describe a run as options and both run on
what :func:`resolve_run` makes of them. A field with ``flag`` metadata is also an ``up-jobs run``
flag (the CLI builds them from here), so a new ``run`` option is a field here, its resolved value
in :class:`RunSettings`, and the code that uses it. No dlt import: the CLI's parser reads this.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from pipeline.error_state import BackoffPolicy
from pipeline.errors import ConfigError, naming_options
from pipeline.job_ids import Shard

if TYPE_CHECKING:
    from pipeline.settings import UpJobsConfiguration

__all__ = ["RunOptions", "RunSettings", "resolve_run", "parse_shard", "is_local_duckdb", "run_flags", "flag_of"]

DEFAULT_DB = "up_jobs.duckdb"


def _flag(flag: str, help: str, **argparse: Any) -> dict[str, Any]:
    """Field metadata that makes the option an ``up-jobs run`` flag (argparse's keyword arguments)."""
    return {"flag": flag, "argparse": {"help": help, **argparse}}


@dataclass
class RunOptions:
    """What the caller asks for; None: as configured in ``[sources.up_jobs]``, else the default."""

    db_path: Path | str = field(default=DEFAULT_DB, metadata=_flag(
        "--db", f"analysis DuckDB file (default {DEFAULT_DB})"))
    jobs_file: str | None = field(default=None, metadata=_flag(
        "--jobs-file", "CSV of jobs (header workflow_id,job_id[,space_id])"))
    refresh: bool = field(default=False, metadata=_flag(
        "--refresh", "refetch every job, terminal ones too", action="store_true"))
    retry_errors: bool = field(default=False, metadata=_flag(
        "--retry-errors", "retry jobs failing permanently now, not when their backoff ends", action="store_true"))
    """Request jobs whose permanent errors are backing off now, rather than when their backoff ends."""
    concurrency: int | None = field(default=None, metadata=_flag(
        "--concurrency", "parallel requests (default: max_concurrency, 16)", type=int))
    lock_timeout_seconds: float | None = field(default=None, metadata=_flag(
        "--lock-timeout", "seconds to wait for another run's lock (default 0)", type=float))
    destination: str | None = field(default=None, metadata=_flag(
        "--destination", "any dlt destination (postgres, snowflake, bigquery, motherduck…); default: the --db DuckDB file"))
    """A dlt destination name (postgres, snowflake, ...); None or duckdb: the local DuckDB file."""
    shard: Shard | str | None = field(default=None, metadata=_flag(
        "--shard", "i/n: load this worker's share of the jobs (0 <= i < n), for parallel workers"))
    """``"i/n"`` (or a Shard): this worker's share of the jobs; None for one worker."""
    loader_file_format: str | None = None
    """None: parquet for the local DuckDB file (measured fastest), the destination's preferred format elsewhere."""
    state_root: Path | None = None
    """Where warehouse runs keep local state (.up_jobs/ under it); default: the current folder."""


@dataclass(frozen=True)
class RunSettings:
    """One run's settings, every precedence already decided."""

    config: UpJobsConfiguration
    """The source's own configuration: base URL, key, retry policy, the configured job list."""
    db_path: Path
    jobs_file: str | None
    refresh: bool
    retry_errors: bool
    concurrency: int
    lock_timeout_seconds: float
    loader_file_format: str | None
    destination: str | None
    """As named (``duckdb`` included); see :attr:`warehouse` for "a shared warehouse, or None"."""
    shard: Shard | None
    state_root: Path
    backoff: BackoffPolicy
    storage_version: str

    @property
    def warehouse(self) -> str | None:
        """The warehouse destination's name; None for the local DuckDB file."""
        return None if is_local_duckdb(self.destination) else self.destination


def is_local_duckdb(destination: str | None) -> bool:
    return destination in (None, "", "duckdb")


def resolve_run(config: UpJobsConfiguration, options: RunOptions | None = None) -> RunSettings:
    """Options given win, then ``[sources.up_jobs]`` (env vars, secrets.toml, config.toml), then defaults."""
    options = options or RunOptions()
    destination = options.destination or config.destination
    return RunSettings(
        config=config,
        db_path=Path(options.db_path).resolve(),
        jobs_file=options.jobs_file or config.jobs_file,
        refresh=options.refresh,
        retry_errors=options.retry_errors,
        concurrency=max(1, options.concurrency or config.max_concurrency),
        lock_timeout_seconds=config.lock_timeout_seconds if options.lock_timeout_seconds is None else options.lock_timeout_seconds,
        loader_file_format=options.loader_file_format or ("parquet" if is_local_duckdb(destination) else None),
        destination=destination,
        shard=parse_shard(options.shard),
        state_root=options.state_root or Path.cwd(),
        backoff=BackoffPolicy(config.dead_job_after_failures, config.dead_job_backoff_hours, config.dead_job_max_backoff_hours),
        storage_version=config.duckdb_storage_version,
    )


def parse_shard(shard: Shard | str | None) -> Shard | None:
    """``"i/n"`` as given on the command line or to the orchestration helpers; None for one worker."""
    if shard is None or isinstance(shard, Shard):
        return shard
    try:
        return Shard.parse(shard) if shard else None
    except ValueError:
        raise naming_options(ConfigError, f"{{shard}} takes i/n with 0 <= i < n, e.g. 0/3; got {shard!r}") from None


def run_flags() -> Iterator[tuple[str, dict[str, Any]]]:
    """``(flag, argparse keyword arguments)`` of every option that is an ``up-jobs run`` flag."""
    for option in fields(RunOptions):
        if "flag" in option.metadata:
            yield option.metadata["flag"], {"default": option.default, **option.metadata["argparse"]}


def options_from_flags(parsed: Mapping[str, Any]) -> RunOptions:
    """RunOptions from parsed flags (argparse's namespace as a mapping: ``--lock-timeout`` → ``lock_timeout``)."""
    values = {option.name: parsed[_dest(option.metadata["flag"])] for option in fields(RunOptions) if "flag" in option.metadata}
    return RunOptions(**values)


def flag_of(option: str) -> str:
    """How ``up-jobs run`` spells an option named in an error (``shard`` → ``--shard``)."""
    return next((item.metadata["flag"] for item in fields(RunOptions) if item.name == option and "flag" in item.metadata), option)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")
