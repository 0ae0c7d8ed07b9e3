"""``up-jobs ARGS`` for tests: in this process (the default) or as a fresh process (crashes, signals).

A subprocess spends 2-4 s importing dlt, DuckDB and pandas before it does anything; ``cli.main``
in-process skips that, as sqlite-utils' tests do with click's ``CliRunner``. Both helpers take the
same arguments and return the same attributes (``returncode``, ``stdout``, ``stderr``), so a test
switches between them by name only.

In-process, what a fresh process would get for free is set up and undone here: exactly the given
environment, the given working directory (``--project-dir`` changes it), ``sys.argv`` (the error
log names the command), dlt's config providers rebuilt for that folder and environment (dlt reads
``.dlt/*.toml`` once per process), dlt's log handler and stdout/stderr captured, the SIGINT/SIGTERM
handlers ``main`` installs restored. A run that leaves a thread behind fails the test. Kept as
subprocesses: kill -9 failpoints (they would kill pytest), signals, another process holding a lock
or a file, and what only a fresh process shows (dlt's DEBUG logging, configured once per process).
"""

from __future__ import annotations

import io
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

from pipeline.failpoints import ENV_VAR as KILL_AT

THREAD_GRACE_SECONDS = 5.0


@dataclass
class Result:
    """What ``subprocess.run(..., capture_output=True, text=True)`` gives, from an in-process run."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def up_jobs(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120) -> Result:
    """``up-jobs ARGS`` through ``cli.main`` in this process, with ``env`` as the whole environment."""
    from pipeline.cli import main

    assert KILL_AT not in env, f"{KILL_AT} kills the process: use up_jobs_process"
    out, err = io.StringIO(), io.StringIO()
    threads = set(threading.enumerate())
    with _as_a_fresh_process(args, env, cwd, err):
        watchdog = _Watchdog(timeout)
        try:
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    code = main(list(args))
                except SystemExit as exit:  # argparse: usage errors exit 2, --help exits 0
                    code = exit.code if isinstance(exit.code, int) else 1
        finally:
            watchdog.cancel()
    if watchdog.fired:
        raise subprocess.TimeoutExpired(["up-jobs", *args], timeout, out.getvalue(), err.getvalue())
    _assert_no_thread_left(threads, args)
    return Result(["up-jobs", *args], code, out.getvalue(), err.getvalue())


def up_jobs_process(*args: str, env: Mapping[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``up-jobs ARGS`` as cron starts it: a fresh ``python -m pipeline`` process."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args], env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


class _as_a_fresh_process:
    """Environment, cwd, argv, dlt's providers and log stream, signal handlers: set, then restored."""

    def __init__(self, args: tuple[str, ...], env: Mapping[str, str], cwd: Path, err: io.StringIO) -> None:
        self.args, self.env, self.cwd, self.err = args, dict(env), cwd, err

    def __enter__(self) -> None:
        self.saved_env, self.saved_cwd, self.saved_argv = dict(os.environ), os.getcwd(), sys.argv
        self.saved_handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        self.saved_streams = {handler: handler.stream for handler in _dlt_log_handlers()}
        _replace_environ(self.env)
        os.chdir(self.cwd)
        sys.argv = ["up-jobs", *self.args]
        _reload_dlt_providers()
        for handler in self.saved_streams:
            handler.setStream(self.err)

    def __exit__(self, *exc: object) -> None:
        sys.argv = self.saved_argv
        os.chdir(self.saved_cwd)
        _replace_environ(self.saved_env)
        _reload_dlt_providers()
        for handler in _dlt_log_handlers():  # a handler dlt created during the run holds our buffer
            if handler.stream is self.err:
                handler.setStream(self.saved_streams.get(handler, sys.stderr))
        for handler, stream in self.saved_streams.items():
            handler.setStream(stream)
        for number, on_signal in self.saved_handlers.items():
            signal.signal(number, on_signal)


def _replace_environ(env: Mapping[str, str]) -> None:
    for name in set(os.environ) - set(env):
        del os.environ[name]
    os.environ.update(env)


def _reload_dlt_providers() -> None:
    """dlt reads ``.dlt/*.toml`` when it builds its providers; rebuild them for this cwd and env
    (as dlt's own Airflow helper does after changing the environment)."""
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    if PluggableRunContext in Container():
        Container()[PluggableRunContext].reload_providers()


def _dlt_log_handlers() -> Iterator[logging.StreamHandler]:  # type: ignore[type-arg]
    for handler in logging.getLogger("dlt").handlers:
        if type(handler) is logging.StreamHandler:
            yield handler


class _Watchdog:
    """After ``timeout`` seconds, SIGINT to this process: ``main``'s handler stops the run (exit 130)."""

    def __init__(self, timeout: float) -> None:
        self.fired = False
        self.timer = threading.Timer(timeout, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self) -> None:
        self.fired = True
        os.kill(os.getpid(), signal.SIGINT)

    def cancel(self) -> None:
        self.timer.cancel()
        self.timer.join()


def _assert_no_thread_left(before: set[threading.Thread], args: tuple[str, ...]) -> None:
    """A run's workers end with it; one still running would act during the next test."""
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    left = [thread for thread in threading.enumerate() if thread not in before and thread.is_alive()]
    while left and time.monotonic() < deadline:
        left[0].join(deadline - time.monotonic())
        left = [thread for thread in left if thread.is_alive()]
    assert not left, f"up-jobs {' '.join(args)} left threads running: {[thread.name for thread in left]}"
