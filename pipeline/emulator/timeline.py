"""Jobs with a full, known history: what UP answers for a job at any moment of its life.

A timeline is the list of changes a job goes through (created → in-process with progress
reports → retry → in-process → terminal); the record at a moment is the last change at or
before it, with ``updated_at`` = that change's time, as UP's ``updated_at`` moves on every
change. Tests script timelines and poll at chosen moments, so the true transition times are
known; the demo generates realistic ones and polls like a cron.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterator

from pipeline.emulator.generator import WORKFLOWS, WorkflowProfile, format_elapsed, format_timestamp
from pipeline.states import TERMINAL_STATES


@dataclass(frozen=True)
class Change:
    """The job became ``state`` (with ``progress``) at ``at``."""

    at: datetime
    state: str
    progress: float = 0.0


def body_at(base: dict[str, Any], changes: list[Change], moment: datetime) -> dict[str, Any] | None:
    """The job record UP returns at ``moment``; None before the job exists."""
    current = [change for change in changes if change.at <= moment]
    if not current:
        return None
    last, created_at = current[-1], changes[0].at
    body = {
        **base,
        "state": last.state,
        "progress": last.progress,
        "created_at": format_timestamp(created_at),
        "updated_at": format_timestamp(last.at),
        "elapsed_time": None,
    }
    if last.state in TERMINAL_STATES:
        body["elapsed_time"] = format_elapsed(last.at - created_at, 6, general=False)
    return body


def transitions(changes: list[Change]) -> list[tuple[str, str, datetime]]:
    """The true state changes (from, to, when): what a test holds the reported bounds to."""
    return [
        (before.state, after.state, after.at)
        for before, after in zip(changes, changes[1:])
        if before.state != after.state
    ]


# Per workflow: typical queue wait (median seconds) and chance that an attempt fails into retry.
QUEUE_MEDIAN_SECONDS = {"Proxy generation": 60, "Ingest and QC": 240, "Transcode HLS ladder": 900,
                        "Subtitle burn-in": 300, "Archive to deep storage": 1800, "Restore from archive": 3600}
RETRY_CHANCE = 0.15
FINISH_WEIGHTS = {"succeeded": 85, "failed": 12, "stopped": 3}  # how a timeline ends (keys: every terminal state, tested)
PROGRESS_EVERY_SECONDS = 60.0


def _lognormal(rng: random.Random, median: float, spread: float) -> timedelta:
    return timedelta(seconds=max(1.0, median * rng.lognormvariate(0, spread)))


def realistic_changes(rng: random.Random, profile: WorkflowProfile, created_at: datetime) -> list[Change]:
    """Queue, then one or more attempts (a failed attempt waits in retry), then a terminal state;
    progress reported every minute while processing."""
    created_at = created_at.replace(microsecond=0)
    changes = [Change(created_at, "created")]
    # the whole job (queue + work) follows the workflow's duration profile, as the generated history
    # does: elapsed_time spans created to finished, so a separate queue would make every live job
    # look slower than the workflow's past (the demo flagged a 3x regression that was not there)
    total = _lognormal(rng, min(profile.median_seconds, 4 * 3600), profile.spread).total_seconds()
    queue = min(_lognormal(rng, QUEUE_MEDIAN_SECONDS.get(profile.name, 300), 0.8).total_seconds(), total / 2)
    moment = created_at + timedelta(seconds=queue)
    work = max(1.0, total - queue)
    done = 0.0
    while True:
        changes.append(Change(moment, "in-process", round(100 * done / work, 1)))
        attempt = work - done
        fails = rng.random() < RETRY_CHANCE and len(changes) < 8
        span = attempt * rng.uniform(0.2, 0.8) if fails else attempt
        tick = PROGRESS_EVERY_SECONDS
        while tick < span:
            changes.append(Change(moment + timedelta(seconds=tick), "in-process", round(100 * (done + tick) / work, 1)))
            tick += PROGRESS_EVERY_SECONDS
        moment += timedelta(seconds=span)
        done += span
        if not fails:
            break
        changes.append(Change(moment, "retry", round(100 * done / work, 1)))
        moment += _lognormal(rng, 180, 0.7)
    state = rng.choices(list(FINISH_WEIGHTS), list(FINISH_WEIGHTS.values()))[0]
    changes.append(Change(moment, state, 100.0 if state == "succeeded" else round(100 * done / work, 1)))
    return changes


def realistic_timelines(
    count: int, seed: int, start: datetime, end: datetime, workflow_ids: list[str]
) -> list[tuple[str, WorkflowProfile, str, list[Change]]]:
    """``count`` jobs created between ``start`` and ``end``: (job id, profile, workflow id, changes)."""
    rng = random.Random(seed)
    jobs = []
    for _ in range(count):
        slot = rng.randrange(len(WORKFLOWS))
        created_at = start + (end - start) * rng.random()
        job_id = f"{rng.getrandbits(128):032x}"
        jobs.append((job_id, WORKFLOWS[slot], workflow_ids[slot], realistic_changes(rng, WORKFLOWS[slot], created_at)))
    return jobs


@contextmanager
def runs_read(moment: datetime) -> Iterator[None]:
    """Runs inside read ``moment`` as the time of their requests: the demo simulates a cron
    against played timelines, and the host's clock must agree with the emulator's, as it does
    with UP's in production (job_state_intervals relies on it)."""
    from pipeline import http

    real = http._now
    http._now = lambda: moment
    try:
        yield
    finally:
        http._now = real
