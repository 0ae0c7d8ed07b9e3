"""Failpoints: let crash tests SIGKILL a real run at a named step (off unless the env var is set).

``UP_JOBS_KILL_AT=<point>[+<seconds>]`` kills the process when the run reaches ``point``
(``fetched:<n>`` after n results; ``extracted``, ``normalized``, ``loaded``, ``load`` — the
last with a delay lands inside dlt's load). The same idea as FoundationDB's simulation
failpoints or TiKV's ``fail-rs``: the crash happens for real, at a known place.
"""

from __future__ import annotations

import os
import signal
import threading

ENV_VAR = "UP_JOBS_KILL_AT"


def _target() -> tuple[str, float] | None:
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return None
    point, _, delay = spec.partition("+")
    return point, float(delay or 0)


def _kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def reached(point: str) -> None:
    """Call at a named step; kills the process (now, or after the delay) if that step is targeted."""
    target = _target()
    if target is None or target[0] != point:
        return
    if target[1] > 0:
        threading.Timer(target[1], _kill_now).start()
    else:
        _kill_now()
