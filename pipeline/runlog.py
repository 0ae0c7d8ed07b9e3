"""Lines a run writes to its log, so a cron log appended every 15 minutes reads by time.

Each run starts with a timestamped header (what runs, where it loads); on a terminal a live
progress line; elsewhere (cron) a timestamped line per 10 % or per minute, whichever comes
first, with a rate and time left only once enough jobs and seconds have passed to estimate
them. The formatting is pure (clock and stream injected) so it is tested without waiting.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, TextIO

if TYPE_CHECKING:
    from pipeline.run_options import RunSettings

MIN_SECONDS_TO_ESTIMATE = 5.0
MIN_JOBS_TO_ESTIMATE = 20
LOG_EVERY_SECONDS = 60.0
_CREDENTIALS_IN_URL = re.compile(r"(://)[^/@\s]+@")


def timestamp(now: datetime | None = None) -> str:
    """ISO-8601 UTC to the second, e.g. ``2026-11-30T02:15:00Z``."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def header(args: argparse.Namespace, target: str, now: datetime | None = None, pid: int | None = None) -> str:
    """``<time> up-jobs run --db … (pid N): <target>``: the options in effect; URL credentials masked."""
    words = ["up-jobs", args.command]
    for name, value in vars(args).items():
        if name == "command" or value is None or value is False:
            continue
        words += [f"--{name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    command = _CREDENTIALS_IN_URL.sub(r"\1***@", shlex.join(words))
    return f"{timestamp(now)} {command} (pid {pid or os.getpid()}): {target}"


def dlt_pipeline_location(settings: "RunSettings") -> tuple[str, str]:
    """(pipelines folder, pipeline name) of the run ``settings`` describe, for ``dlt pipeline``."""
    from pipeline.factories import make_workspace, pipeline_name

    return str(make_workspace(settings).pipelines_dir), pipeline_name(settings.shard)


def dlt_cli_command(pipelines_dir: str, pipeline_name: str, command: str = "info") -> str:
    """The ``dlt pipeline`` command that finds this run's pipeline (its folder is not dlt's default)."""
    return f"dlt pipeline --pipelines-dir {shlex.quote(pipelines_dir)} {pipeline_name} {command}"


def estimate(done: int, total: int, elapsed: float) -> str:
    """``, 45 jobs/s, about 10 s left`` once the numbers mean something; else empty."""
    if done < MIN_JOBS_TO_ESTIMATE or elapsed < MIN_SECONDS_TO_ESTIMATE:
        return ""
    rate = done / elapsed
    return f", {rate:.0f} jobs/s, about {(total - done) / rate:.0f} s left"


def progress_text(done: int, total: int, elapsed: float) -> str:
    percent = f" ({100 * done // total}%)" if total else ""
    return f"fetched {done}/{total} jobs{percent}" + estimate(done, total, elapsed)


class ProgressLog:
    """The ``on_progress(done, total)`` callback; ``(0, total)`` announces the jobs to fetch.

    The announcement goes to ``announce`` (the CLI: stdout, after the header), so stderr keeps
    progress and errors only (a run stopped by a rejected key shows one line there).
    """

    def __init__(self, stream: TextIO, clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] | None = None, interactive: bool | None = None,
                 announce: TextIO | None = None) -> None:
        self.stream, self.clock, self.now = stream, clock, now or (lambda: datetime.now(timezone.utc))
        self.announce = announce or stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.started = clock()
        self.last_tenth, self.last_line_at = 0, self.started

    def __call__(self, done: int, total: int) -> None:
        if done == 0:
            self.started = self.last_line_at = self.clock()
            self._line(f"to fetch: {total} jobs" if total else "to fetch: no jobs (all loaded in a terminal state)",
                       self.announce)
            return
        elapsed = self.clock() - self.started
        if self.interactive:
            self.stream.write("\r" + progress_text(done, total, elapsed) + ("\n" if done == total else ""))
            self.stream.flush()
            return
        tenth = done * 10 // total if total else 10
        if tenth > self.last_tenth or self.clock() - self.last_line_at >= LOG_EVERY_SECONDS:
            self.last_tenth = max(self.last_tenth, tenth)
            self._line(progress_text(done, total, elapsed))

    def _line(self, text: str, stream: TextIO | None = None) -> None:
        self.last_line_at = self.clock()
        prefix = "" if self.interactive else f"{timestamp(self.now())} "
        (stream or self.stream).write(prefix + text + "\n")
        (stream or self.stream).flush()
