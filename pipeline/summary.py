"""What a run did (:class:`RunSummary`) and its human-readable form: one screen, the same lines
in a terminal and in a cron mail."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from pipeline import set_aside
from pipeline.job_ids import ConfigProblem
from pipeline.outcomes import Status
from pipeline.source import FetchStats
from pipeline.views import AppliedViews

MAX_PROBLEM_LINES = 20


@dataclass
class RunSummary:
    listed: int = 0
    skipped_terminal: int = 0
    backing_off: int = 0
    stats: FetchStats = field(default_factory=FetchStats)
    config_problems: list[ConfigProblem] = field(default_factory=list)
    config_problems_not_kept: int = 0
    """Job-list problems counted but not kept with their text (past job_ids.MAX_PROBLEMS_KEPT)."""
    config_errors_not_kept: int = 0
    views_applied: AppliedViews = field(default_factory=AppliedViews)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    destination: str | None = None
    load_id: str | None = None
    set_aside: list[set_aside.SetAside] = field(default_factory=list)

    def count(self, status: str) -> int:
        """Jobs that ended as ``status``; an unknown status raises instead of counting zero."""
        return self.stats.outcomes[Status(status)]

    @property
    def failed(self) -> int:
        return self.count(Status.FAILED) + self.count(Status.QUARANTINED) + self.count(Status.LOAD_FAILED)

    @property
    def has_problems(self) -> bool:
        config_errors = self.config_errors_not_kept > 0 or any(problem.is_error for problem in self.config_problems)
        return self.failed > 0 or bool(self.set_aside) or config_errors


def format_summary(summary: RunSummary, spell: Callable[[str], str] = str) -> str:
    """``spell``: how the reader knows a run option a problem names (the CLI: as its flag)."""
    stats = summary.stats
    lines = [
        f"jobs listed      {summary.listed:>8}",
        f"  skipped        {summary.skipped_terminal:>8}   (already loaded in a terminal state)",
        *([f"  backing off    {summary.backing_off:>8}   (failing permanently; retried later, see open_fetch_errors.next_attempt_at)"]
          if summary.backing_off else []),
        f"  fetched        {stats.fetched:>8}   ({stats.requests} HTTP requests)",
        f"  loaded         {summary.count('loaded'):>8}   (new or newer updated_at)",
        f"  unchanged      {summary.count('unchanged') + summary.count('stale'):>8}",
        f"  failed         {summary.count('failed'):>8}   (see telestream_up.open_fetch_errors)",
        f"  quarantined    {summary.count('quarantined'):>8}   (bad records, see telestream_up.quarantined_records)",
    ]
    if summary.count("load_failed"):
        lines.append(f"  load failed    {summary.count('load_failed'):>8}   (in a package set aside; retried next run, see open_fetch_errors)")
    for failure in stats.failures:
        status = f" HTTP {failure['http_status']}" if failure.get("http_status") else ""
        lines.append(f"    failed: {failure['workflow_id']}/{failure['job_id']}  {failure['error_kind']}{status}")
    if summary.count("failed") + summary.count("quarantined") > len(stats.failures):
        lines.append("    (all of them: select * from telestream_up.open_fetch_errors)")
    if stats.recovered:
        lines.append(f"  recovered      {stats.recovered:>8}   (earlier fetch errors now fine)")
    if summary.count("stale"):
        lines.append(f"  older than held {summary.count('stale'):>7}   (not loaded: we hold a newer record)")
    steps = ", ".join(f"{name} {seconds:.1f}" for name, seconds in summary.timings.items())
    lines.append(f"time taken       {summary.seconds:>8.1f} s" + (f"   ({steps})" if steps else ""))
    applied = summary.views_applied
    if applied.changed:
        lines.append(f"views updated    {len(applied.changed):>8}   ({', '.join(applied.changed)})")
    if applied.restored:
        lines.append(f"  your views kept {len(applied.restored):>7}   (recreated on the new definitions: {', '.join(applied.restored)})")
    for note, count in sorted(stats.notes.items()):
        lines.append(f"note: {count} job(s) with {note}")
    for package in summary.set_aside:
        lines.append(f"error: {package}")
    problems = summary.config_problems
    for problem in problems[:MAX_PROBLEM_LINES]:
        lines.append(f"{'error' if problem.is_error else 'warning'}: {spell(problem.location)}: {problem.message}")
    hidden = max(0, len(problems) - MAX_PROBLEM_LINES) + summary.config_problems_not_kept
    if hidden:
        lines.append(f"... and {hidden} more job-list problem(s)")
    return "\n".join(lines)
