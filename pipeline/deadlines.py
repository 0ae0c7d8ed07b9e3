"""A total deadline per HTTP request, and a way to wake every blocked request at once.

urllib3's read timeout applies to each ``recv``: a server that sends one byte every few
seconds (headers or body) keeps a request alive forever, and a worker blocked in ``recv``
ignores SIGTERM. Here each request registers the urllib3 connection it uses; a watchdog
thread shuts down the socket of any request past its deadline (the blocked ``recv`` returns
at once and the request fails like a dropped connection), and :meth:`Deadlines.abort_all`
does the same for every request when the run is stopped.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection

_CURRENT = threading.local()
TICK_SECONDS = 0.1


@dataclass(eq=False)
class Slot:
    """One request in flight: its deadline, its connection once known, and why it was cut."""

    deadline: float
    connection: Any = None
    expired: bool = False
    aborted: bool = False
    is_cut: bool = False

    def cut(self) -> None:
        self.is_cut = True
        sock = getattr(self.connection, "sock", None)
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing is blocked on it


class Deadlines:
    """Watches every request of one client; a daemon thread runs only while requests are in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: set[Slot] = set()
        self._watchdog: threading.Thread | None = None
        self._aborted = False

    @contextmanager
    def request(self, seconds: float) -> Iterator[Slot]:
        slot = Slot(time.monotonic() + seconds)
        with self._lock:
            slot.aborted = self._aborted
            self._slots.add(slot)
            if self._watchdog is None or not self._watchdog.is_alive():
                self._watchdog = threading.Thread(target=self._watch, name="up-deadlines", daemon=True)
                self._watchdog.start()
        _CURRENT.slot = slot
        try:
            yield slot
        finally:
            _CURRENT.slot = None
            with self._lock:
                self._slots.discard(slot)

    def abort_all(self) -> None:
        """Cut every request now and every later one at once (the run is stopping)."""
        with self._lock:
            self._aborted = True
            slots = list(self._slots)
        for slot in slots:
            slot.aborted = True
            slot.cut()

    def _watch(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            with self._lock:
                if not self._slots:
                    self._watchdog = None
                    return
                late = [slot for slot in self._slots if not slot.is_cut and (slot.aborted or now >= slot.deadline)]
            for slot in late:
                slot.expired = not slot.aborted
                slot.cut()


def _attach(connection: Any) -> None:
    slot: Slot | None = getattr(_CURRENT, "slot", None)
    if slot is not None:
        slot.connection = connection
        if slot.aborted:
            raise ConnectionAbortedError("the run is stopping")


class _TrackedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)


class _TrackedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach(self)
        super().request(*args, **kwargs)


class _TrackedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _TrackedHTTPConnection


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection


_TRACKED_POOLS = {"http": _TrackedHTTPPool, "https": _TrackedHTTPSPool}


def track(manager: PoolManager) -> PoolManager:
    """The same pool manager (or proxy manager), its connections reporting to the current request's Slot."""
    manager.pool_classes_by_scheme = _TRACKED_POOLS
    return manager
