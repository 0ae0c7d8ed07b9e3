"""Seeded, realistic UP job bodies: several workflows, all six states, seconds-to-days durations.

Timestamps are microsecond-exact and ``elapsed_time`` equals ``updated_at - created_at``
exactly, printed with 0-7 fraction digits in .NET's ``c`` or ``g`` style, so every branch of
the TimeSpan parser is exercised by ordinary demo data.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from pipeline.job_ids import JobRef
from pipeline.states import TERMINAL_STATES

DEMO_SPACE_ID = "demo-space"
STATE_WEIGHTS = {
    "succeeded": 55,
    "failed": 10,
    "stopped": 5,
    "in-process": 15,
    "created": 8,
    "retry": 7,
}
# how a job finishes when the emulator moves it on (keys: every terminal state, tested)
FINISH_WEIGHTS = {"succeeded": 80, "failed": 15, "stopped": 5}


@dataclass(frozen=True)
class WorkflowProfile:
    """A workflow and its typical duration (median seconds, log-normal spread)."""

    name: str
    median_seconds: float
    spread: float
    version: str


WORKFLOWS = (
    WorkflowProfile("Proxy generation", 45, 0.6, "3"),
    WorkflowProfile("Ingest and QC", 600, 0.8, "7"),
    WorkflowProfile("Transcode HLS ladder", 2_400, 0.7, "12"),
    WorkflowProfile("Subtitle burn-in", 900, 1.0, "2"),
    WorkflowProfile("Archive to deep storage", 6 * 3600, 1.2, "5"),
    WorkflowProfile("Restore from archive", 3 * 86400, 1.1, "1"),
)


@dataclass(frozen=True)
class Slowdown:
    """Jobs of one workflow that finish at or after ``since`` take ``factor`` times as long.

    For testing the regression view: the rest of the data is drawn exactly as without it.
    """

    workflow_name: str
    since: datetime
    factor: float


def format_timestamp(moment: datetime) -> str:
    """UP's ISO-8601 UTC form; trailing zeros trimmed so fraction lengths vary like the real API."""
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def format_elapsed(duration: timedelta, fraction_digits: int, general: bool) -> str:
    """``c`` style ``[d.]hh:mm:ss[.fffffff]`` or ``g`` style ``[d:]h:mm:ss[.FFFFFFF]``."""
    micros = duration // timedelta(microseconds=1)
    seconds_total, micro = divmod(micros, 1_000_000)
    minutes_total, seconds = divmod(seconds_total, 60)
    hours_total, minutes = divmod(minutes_total, 60)
    days, hours = divmod(hours_total, 24)
    if general:
        text = (f"{days}:" if days else "") + f"{hours}:{minutes:02d}:{seconds:02d}"
    else:
        text = (f"{days}." if days else "") + f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if fraction_digits:
        text += "." + f"{micro * 10:07d}"[:fraction_digits]
    return text


def _round_to_digits(duration: timedelta, fraction_digits: int) -> timedelta:
    """Round so that ``fraction_digits`` digits print the duration exactly."""
    step = 10 ** max(0, 6 - fraction_digits)
    micros = duration // timedelta(microseconds=1)
    return timedelta(microseconds=max(step, micros - micros % step))


def generate_jobs(
    count: int,
    seed: int = 7,
    now: datetime | None = None,
    space_id: str = DEMO_SPACE_ID,
    days: int = 30,
    slowdown: Slowdown | None = None,
    workflows: Sequence[WorkflowProfile] = WORKFLOWS,
) -> list[tuple[JobRef, dict[str, Any]]]:
    """``count`` job bodies as the API returns them, deterministic for a seed and ``now``.

    Terminal jobs finish uniformly over the last ``days`` days; each workflow's durations come
    from one fixed log-normal distribution, except where ``slowdown`` says otherwise.
    """
    rng = random.Random(seed)
    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    workflow_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in workflows]
    states, weights = zip(*STATE_WEIGHTS.items())
    jobs = []
    for index in range(count):
        slot = rng.randrange(len(workflows))
        profile, workflow_id = workflows[slot], workflow_ids[slot]
        state = rng.choices(states, weights)[0]
        job_id = f"{rng.getrandbits(128):032x}"
        body = _job_body(rng, now, profile, workflow_id, job_id, state, index, days, slowdown)
        jobs.append((JobRef(space_id, workflow_id, job_id), body))
    return jobs


def _duration(rng: random.Random, profile: WorkflowProfile) -> timedelta:
    seconds = math.exp(rng.gauss(math.log(profile.median_seconds), profile.spread))
    return timedelta(seconds=min(max(seconds, 1.0), 200 * 86400))


def _job_body(
    rng: random.Random,
    now: datetime,
    profile: WorkflowProfile,
    workflow_id: str,
    job_id: str,
    state: str,
    index: int,
    days: int = 30,
    slowdown: Slowdown | None = None,
) -> dict[str, Any]:
    digits = rng.randint(0, 7)
    duration = _round_to_digits(_duration(rng, profile), digits)
    if state in TERMINAL_STATES:  # finished some time in the last ``days`` days
        finished_ago = timedelta(seconds=rng.uniform(0, days * 86400))
        if slowdown and slowdown.workflow_name == profile.name and now - finished_ago >= slowdown.since:
            duration = _round_to_digits(duration * slowdown.factor, digits)
        age = duration + finished_ago
    else:  # still running: started recently, part-way through its typical duration
        age = duration * rng.uniform(0.05, 0.9)
    created_at = now - age + timedelta(microseconds=rng.randrange(1_000_000))
    body: dict[str, Any] = {
        "id": job_id,
        "name": f"{profile.name.lower().replace(' ', '-')}-{index:06d}",
        "workflow_id": workflow_id,
        "workflow_name": profile.name,
        "workflow_version": profile.version,
        "state": state,
        "created_at": format_timestamp(created_at),
    }
    if state in TERMINAL_STATES:
        finished = created_at + duration
        body.update(
            progress=100 if state == "succeeded" else round(rng.uniform(0, 99), 1),
            updated_at=format_timestamp(finished),
            elapsed_time=format_elapsed(duration, digits, general=rng.random() < 0.2),
        )
    else:
        progress = 0 if state == "created" else round(rng.uniform(1, 99), rng.choice((0, 1, 2)))
        seen = created_at + (duration * rng.random() if state != "created" else timedelta(0))
        body.update(progress=progress, updated_at=format_timestamp(min(seen, now)), elapsed_time=None)
    return body


def advance_body(body: dict[str, Any], rng: random.Random, now: datetime, finish: bool) -> dict[str, Any]:
    """The next version of a non-terminal job: finished (terminal) or just further along."""
    updated = dict(body)
    created_at = datetime.fromisoformat(body["created_at"])
    previous = datetime.fromisoformat(body["updated_at"])
    moment = max(now, previous + timedelta(seconds=2))  # stays newer after rounding
    if finish:
        # work finishes spread over the time since it was last seen running, not all at "now"
        # (the demo's second run would otherwise put a day's worth of completions into one instant)
        earliest = previous + timedelta(seconds=2)
        if earliest < moment:
            moment = earliest + (moment - earliest) * rng.random()
        digits = rng.randint(0, 7)
        duration = _round_to_digits(moment - created_at, digits)
        state = rng.choices(list(FINISH_WEIGHTS), list(FINISH_WEIGHTS.values()))[0]
        updated.update(
            state=state,
            progress=100 if state == "succeeded" else body["progress"],
            updated_at=format_timestamp(created_at + duration),
            elapsed_time=format_elapsed(duration, digits, general=False),
        )
    else:
        progress = float(body.get("progress") or 0)
        updated.update(
            state=_next_running_state(body),
            progress=round(min(99.0, progress + rng.uniform(1, 20)), 1),
            updated_at=format_timestamp(moment),
        )
    return updated


RETRY_SHARE = 0.15


def _next_running_state(body: dict[str, Any]) -> str:
    """created → in-process; in-process → retry now and then; retry → in-process.

    Decided by the job and its current version (not the caller's rng), so every other draw of
    an existing seed, and every test built on one, stays as it was."""
    if body.get("state") != "in-process":
        return "in-process"
    draw = random.Random(f"{body.get('id')}|{body.get('updated_at')}").random()
    return "retry" if draw < RETRY_SHARE else "in-process"
