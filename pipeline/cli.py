"""The ``up-jobs`` command: a thin edge that maps library results to output and exit codes.

Exit codes (also in the README):
  0  success
  1  run aborted by an unexpected error
  2  configuration or usage error
  3  the API rejected the key (401/403)
  4  finished, but some jobs failed or were quarantined, or job-list lines were unusable
  5  another run holds the lock on this database
  6  check: at least one alert fired (the alert lines are on stdout)
  130 interrupted (SIGINT/SIGTERM)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Callable, Sequence, TextIO

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_AUTH, EXIT_PARTIAL, EXIT_LOCKED, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
EXIT_ALERTS = 6
DEFAULT_DB = "up_jobs.duckdb"
DEFAULT_DEMO_DB = "up_jobs_demo.duckdb"


def _add_run_parser(commands: argparse._SubParsersAction) -> None:
    from pipeline.run_options import run_flags

    run = commands.add_parser("run", help="fetch the configured jobs and load them (the cron job)")
    for flag, arguments in run_flags():  # one per RunOptions field: the options live there, once
        run.add_argument(flag, **arguments)
    run.add_argument("--check", action="store_true", help="after a successful load, run 'up-jobs check' on --db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="up-jobs", description="Telestream UP workflow jobs into DuckDB.")
    _add_project_dir(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(commands)
    demo = commands.add_parser("demo", help="run end to end against the built-in emulator, then report")
    demo.add_argument("--db", default=DEFAULT_DEMO_DB, help=f"demo DuckDB file (default {DEFAULT_DEMO_DB})")
    demo.add_argument("--jobs", type=int, default=500, help="jobs to generate (default 500)")
    demo.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    emulator = commands.add_parser("emulator", help="serve the UP API emulator until Ctrl-C")
    emulator.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default 8765, 0 = any)")
    emulator.add_argument("--jobs", type=int, default=500, help="jobs to generate (default 500)")
    emulator.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    emulator.add_argument("--latency-ms", type=float, default=0, help="added latency per request")
    emulator.add_argument("--faults", action="store_true", help="inject the fault matrix (5xx, 429, timeouts, ...)")
    report = commands.add_parser("report", help="print the duration report from a database")
    report.add_argument("--db", default=DEFAULT_DB, help=f"analysis DuckDB file (default {DEFAULT_DB})")
    report.add_argument("--html", help="also write a self-contained HTML report with charts to this file")
    check = commands.add_parser("check", help="evaluate the alert rules on a database (read-only); exit 6 if any fires")
    check.add_argument("--db", default=DEFAULT_DB, help=f"analysis DuckDB file (default {DEFAULT_DB})")
    check.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    check.add_argument("--webhook", help="Slack-compatible webhook URL (default: the secret alerts.webhook_url)")
    for subcommand in commands.choices.values():
        _add_project_dir(subcommand, default=argparse.SUPPRESS)
    return parser


def _add_project_dir(parser: argparse.ArgumentParser, default: object) -> None:
    """Accepted before and after the subcommand (cron lines are written both ways).

    After the subcommand its default is SUPPRESS, so an absent option there keeps the value given
    before it instead of resetting it to None.
    """
    parser.add_argument(
        "--project-dir",
        default=default,
        help="folder holding .dlt/ (config and secrets); default: the current folder. Use it from cron.",
    )


GRACE_SECONDS = 10.0
"""After SIGTERM/SIGINT, how long a run may take to stop cleanly before it exits regardless."""


def _stop_on_signals(stop: threading.Event, grace_seconds: float = GRACE_SECONDS) -> None:
    """SIGTERM/SIGINT set ``stop`` and raise in the main thread, which cuts every request's socket.

    If the run still has not ended ``grace_seconds`` later, or a second signal arrives, the
    process exits 130 at once: what is loaded stays intact (the working copy is transactional,
    the published file is replaced atomically), and the lock dies with the process.
    """

    def hard_exit() -> None:
        sys.stderr.write("up-jobs: interrupted; did not stop cleanly in time, exiting now\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            hard_exit()
        stop.set()
        timer = threading.Timer(grace_seconds, hard_exit)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _progress_printer(stream: TextIO | None = None) -> Callable[[int, int], None]:
    """A live line on a terminal; timestamped lines (per 10 % or minute) for cron logs.

    ``sys.stderr`` is looked up per call, not bound at import, so ``main`` run in-process writes
    where the caller's stderr is now (a test capturing it, a task's log)."""
    from pipeline.runlog import ProgressLog

    return ProgressLog(stream or sys.stderr, announce=sys.stdout)


def _error_log_path(args: argparse.Namespace) -> Path:
    """Next to the run's private state: ``<db>.work/last_error.log`` (or ``.up_jobs/`` for warehouses),
    the destination resolved as the run resolves it (a flag, else ``sources.up_jobs.destination``)."""
    from pipeline.run_options import is_local_duckdb
    from pipeline.workspace import Workspace

    destination = getattr(args, "destination", None)
    if args.command == "run":
        try:
            from pipeline.run_options import options_from_flags, resolve_run
            from pipeline.settings import load_settings

            destination = resolve_run(load_settings(), options_from_flags(vars(args))).destination
        except Exception:  # the failure may be the settings themselves: the flag alone then
            pass
    if not is_local_duckdb(destination):
        return Path.cwd() / ".up_jobs" / "last_error.log"
    return Workspace.for_duckdb(Path(getattr(args, "db", DEFAULT_DB)).resolve()).state_dir / "last_error.log"


def _write_error_log(error: BaseException, path: Path, redact: Callable[[str], str]) -> Path | None:
    """The whole chain with tracebacks, for the engineer; the terminal gets one line."""
    import traceback
    from datetime import datetime, timezone

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        path.write_text(f"{stamp} up-jobs {' '.join(sys.argv[1:])}\n" + redact("".join(traceback.format_exception(error))), encoding="utf-8")
        return path
    except OSError:
        return None


def _redactor() -> Callable[[str], str]:
    """Redact the configured key (read again here: the failure may predate the settings)."""
    from pipeline.redact import Redactor

    try:
        from pipeline.settings import load_settings

        key = load_settings().api_key
    except Exception:  # redact at least Bearer values
        key = None
    return Redactor(str(key) if key else None).text


def command_run(args: argparse.Namespace) -> int:
    import dlt

    from pipeline import runlog
    from pipeline.config_hints import hinted
    from pipeline.run_options import flag_of, options_from_flags, resolve_run
    from pipeline.runner import execute
    from pipeline.settings import ConfigError, load_settings, unknown_keys
    from pipeline.summary import format_summary

    stop = threading.Event()
    _stop_on_signals(stop)
    options = options_from_flags(vars(args))
    unknown = unknown_keys(dlt.current.run_context().settings_dir, os.environ)  # first: typos explain errors
    with hinted(unknown):
        settings = resolve_run(load_settings(), options)
        target = f"destination {settings.destination}" if settings.destination else f"database {settings.db_path}"
        print(runlog.header(args, target), flush=True)
        summary = execute(settings, stop=stop, on_progress=_progress_printer())
    summary.config_problems[:0] = unknown
    print(format_summary(summary, spell=flag_of))
    print(f"destination: {summary.destination}" if summary.destination else f"database: {settings.db_path}")
    print(f"dlt's view:  {runlog.dlt_cli_command(*runlog.dlt_pipeline_location(settings))}")
    print(f"{runlog.timestamp()} finished in {summary.seconds:.1f} s")
    code = EXIT_PARTIAL if summary.has_problems else EXIT_OK
    if args.check:  # the load succeeded (failures raised above); a run problem (4) outranks alerts (6)
        if summary.destination:
            raise ConfigError("--check reads the local DuckDB file; with a warehouse destination query its views")
        check_code = _check(settings.db_path, "text", None, quiet=False)
        code = code or check_code
    return code


def command_demo(args: argparse.Namespace) -> int:
    from pipeline.demo import run_demo

    return run_demo(Path(args.db).resolve(), jobs=args.jobs, seed=args.seed, out=print)


def command_emulator(args: argparse.Namespace) -> int:
    from pipeline.demo import serve_emulator

    return serve_emulator(args.port, args.jobs, args.seed, args.latency_ms, args.faults, out=print)


def command_report(args: argparse.Namespace) -> int:
    from pipeline.report import format_report, write_html_report

    db = Path(args.db).resolve()
    if not db.exists():
        print(f"up-jobs: error: {db} does not exist; run 'up-jobs run' or 'up-jobs demo' first", file=sys.stderr)
        return EXIT_CONFIG
    print(format_report(db))
    if args.html:
        path = write_html_report(db, Path(args.html))
        print(f"HTML report: {path}")
    return EXIT_OK


def _check(db: Path, output_format: str, webhook: str | None, quiet: bool = True) -> int:
    import dlt

    from pipeline.alerts.check import format_json, format_text, run_check
    from pipeline.alerts.config import load_alerts_config, unknown_keys

    result = run_check(db, load_alerts_config(), webhook_url=webhook)
    result.warnings[:0] = unknown_keys(dlt.current.run_context().settings_dir, os.environ)
    text = format_json(result) if output_format == "json" else format_text(result)
    if text or not quiet:
        print(text or "check: no alerts")
    return EXIT_ALERTS if result.alerts else EXIT_OK


def command_check(args: argparse.Namespace) -> int:
    return _check(Path(args.db).resolve(), args.format, args.webhook)


def _interrupted(error: BaseException) -> int:
    signal_name = str(error) or "SIGINT"
    print(f"up-jobs: interrupted by {signal_name}; loaded data is intact, the next run resumes", file=sys.stderr)
    return EXIT_INTERRUPTED


COMMANDS = {"run": command_run, "demo": command_demo, "emulator": command_emulator, "report": command_report,
            "check": command_check}


def _use_project_dir(project_dir: str) -> None:
    """Settings from ``project_dir/.dlt``, files relative to it.

    dlt reads the TOML files when it first builds its config providers; in a process that has
    used dlt already (``main`` called in-process by a test or an orchestrator's task) they are
    rebuilt, as dlt's Airflow helper does, or the run would keep the previous folder's settings.
    """
    os.environ["DLT_PROJECT_DIR"] = str(Path(project_dir).resolve())
    os.chdir(project_dir)
    if "dlt" in sys.modules:
        from dlt.common.configuration.container import Container
        from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

        if PluggableRunContext in Container():
            Container()[PluggableRunContext].reload_providers()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.project_dir:
        _use_project_dir(args.project_dir)
    logging.getLogger("dlt").setLevel(logging.WARNING)
    from dlt.common.configuration.exceptions import ConfigurationException

    from pipeline.errors import ConfigError, innermost, one_line_cause, options_spelt
    from pipeline.http import AuthRejected
    from pipeline.run_options import flag_of
    from pipeline.workspace import LockHeld

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt as error:
        return _interrupted(error)
    except Exception as error:  # the edge: every failure becomes one line and a code
        interrupt = innermost(error, KeyboardInterrupt)  # dlt wraps a signal raised inside a step
        if interrupt is not None:
            return _interrupted(interrupt)
        redact = _redactor()
        for kind, code in ((AuthRejected, EXIT_AUTH), (LockHeld, EXIT_LOCKED), (ConfigError, EXIT_CONFIG),
                           (ConfigurationException, EXIT_CONFIG)):
            found = innermost(error, kind)
            if found is not None:
                print(f"up-jobs: error: {redact(options_spelt(found, flag_of))}", file=sys.stderr)
                return code
        log = _write_error_log(error, _error_log_path(args), redact)
        print(f"up-jobs: error: run aborted: {redact(one_line_cause(error))}", file=sys.stderr)
        if log is not None:
            print(f"up-jobs: full error chain in {log}", file=sys.stderr)
        return EXIT_FAILED


ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"


def release_arrow_memory_to_the_system() -> None:
    """Arrow's buffers from an allocator that gives freed memory back, not pyarrow's default
    mimalloc pool, which keeps it for reuse.

    At a million listed jobs the parse, planning and normalize buffers stacked up under
    mimalloc to a 290-305 MB peak of the re-run; 267-268 MB with jemalloc (265-268 MB with
    malloc, which however costs parsing the million-line file 201 MB against jemalloc's 176 MB),
    no slower (``python -m bench scale``, ``python -m bench parsing``). jemalloc where the build
    has it (pyarrow's x86_64 manylinux wheels), else malloc, which every build has: a name the
    build lacks makes Arrow print a warning on every run, and keep mimalloc.
    Arrow reads the variable once, when pyarrow loads (``pyarrow.set_memory_pool`` later does not
    reach its C++ code), so this runs before anything imports it, and only in our own process:
    orchestrators keep their choice. A user's own setting wins.
    """
    if "pyarrow" not in sys.modules:
        os.environ.setdefault(ARROW_POOL_VARIABLE, "jemalloc" if _pyarrow_has_jemalloc() else "system")


def _pyarrow_has_jemalloc() -> bool:
    """From the installed wheel's tags, without loading pyarrow (which would fix the pool)."""
    import importlib.metadata
    import re

    try:
        wheel = importlib.metadata.distribution("pyarrow").read_text("WHEEL") or ""
    except importlib.metadata.PackageNotFoundError:
        return False
    return re.search(r"^Tag: \S*manylinux\S*_x86_64\s*$", wheel, re.MULTILINE) is not None


def entry() -> int:
    """The ``up-jobs`` console script and ``python -m pipeline``: :func:`main`, then a quick exit.

    At exit CPython runs garbage collections over every object still alive and every module the
    run imported (dlt, pyarrow, DuckDB, sqlglot...), pure CPU: after a 5,000-job run 0.15-0.25 s
    on a quiet machine, 0.5-2.5 s while other processes compete for its two cores (measured).
    Frozen first, they are left to the operating system, which frees a finished process's memory
    anyway; the run closed its files and connections itself.
    Only at this edge: :func:`main` is also called in-process (tests, orchestrators), which must
    keep their collector.
    """
    release_arrow_memory_to_the_system()
    code = main()
    gc.freeze()
    return code
