"""What was announced to the webhook, so an unchanged alert is not re-sent every run.

The state lives in the run's private folder (``<db>.work/alerts_state.json``), never in the
published analysis file. ``plan`` is pure; ``read_state``/``write_state`` do the file I/O. A
missing or unreadable state file means "nothing announced yet": the next run re-announces
and goes on (never stuck).
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from pipeline.alerts.rules import Alert

STATE_FILE = "alerts_state.json"
LOCK_FILE = "alerts.lock"
VERSION = 1

State = dict[str, dict[str, str]]
"""alert key → {"fingerprint", "message", "sent_at" (ISO)} of the last announcement."""


@dataclass
class Announcement:
    """What to post now, and the state to keep once the post is delivered."""

    firing: list[Alert] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    """Messages of alerts announced before that no longer fire."""
    next_state: State = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.firing and not self.resolved


def plan(alerts: list[Alert], state: State, now: datetime, resend_after: timedelta | None, evaluated_rules: set[str]) -> Announcement:
    """New or changed alerts, still-firing ones due for a reminder, and resolved ones (once).

    An alert of a rule that was not evaluated this time (switched off, or its query failed) is
    kept as it was rather than announced as resolved.
    """
    announcement = Announcement()
    for alert in alerts:
        previous = state.get(alert.key)
        due = previous is None or previous.get("fingerprint") != alert.fingerprint or _due(previous, now, resend_after)
        if due:
            announcement.firing.append(alert)
            announcement.next_state[alert.key] = _entry(alert, now)
        elif previous is not None:  # always, when not due
            announcement.next_state[alert.key] = previous
    firing_keys = {alert.key for alert in alerts}
    for key, previous in sorted(state.items()):
        if key in firing_keys:
            continue
        if key.split(":", 1)[0] in evaluated_rules:
            announcement.resolved.append(previous.get("message", key))
        else:  # its rule did not run this time: neither resolved nor forgotten
            announcement.next_state[key] = previous
    return announcement


def _due(previous: dict[str, str], now: datetime, resend_after: timedelta | None) -> bool:
    if not resend_after:
        return False
    try:
        return now - datetime.fromisoformat(previous["sent_at"]) >= resend_after
    except (KeyError, ValueError, TypeError):
        return True


def _entry(alert: Alert, now: datetime) -> dict[str, str]:
    return {"fingerprint": alert.fingerprint, "message": alert.message, "sent_at": now.isoformat()}


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(path: Path) -> tuple[State, str | None]:
    """The state, and a warning if the file was unreadable (then the state is empty)."""
    if not path.exists():
        return {}, None
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        alerts = data["alerts"]
        if data.get("version") != VERSION or not isinstance(alerts, dict):
            raise ValueError("unexpected layout")
        return {str(key): dict(value) for key, value in alerts.items()}, None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        return {}, f"alert state {path} unreadable ({type(error).__name__}); alerts will be announced again"


def write_state(path: Path, state: State) -> None:
    """Atomically replace the state file (two checks at once leave one whole file, not a mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"version": VERSION, "alerts": state}, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


@contextmanager
def locked(state_dir: Path) -> Iterator[bool]:
    """One announcer at a time (``run --check`` and a separate ``check`` may overlap), so an
    alert is not posted twice. Yields False when the folder is unusable (read-only mount): the
    caller still announces. The lock dies with its process: nothing is ever left stuck."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        handle = open(state_dir / LOCK_FILE, "a+")
    except OSError:
        yield False
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
