"""The emulator's HTTP server: ``GET /v1/{space_id}/workflows/{workflow_id}/jobs/{job_id}``.

Standard-library ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive; each connection
has its own thread, so per-request latency (a sleep) never blocks other clients. Bearer auth
answers 401 JSON on a missing or wrong key, unknown jobs 404 JSON, as the real API does.
"""

from __future__ import annotations

import json
import random
import re
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

from pipeline.emulator.faults import FaultPlan
from pipeline.emulator.generator import advance_body
from pipeline.emulator.timeline import Change, body_at
from pipeline.job_ids import JobRef
from pipeline.states import TERMINAL_STATES

BASE_PATH = "/v1"
DEFAULT_API_KEY = "emulator-key-not-secret"
_ROUTE = re.compile(rf"^{BASE_PATH}/([^/]+)/workflows/([^/]+)/jobs/([^/]+)$")


class JobStore:
    """Thread-safe job bodies plus a log of what was requested (tests assert on it)."""

    def __init__(self, jobs: Iterable[tuple[JobRef, dict[str, Any]]] = ()) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[str, dict[str, Any]] = {}
        self._raw: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: Counter[str] = Counter()
        self.request_times: list[tuple[float, str]] = []
        """(time.monotonic(), path) of every request, in arrival order (tests check pacing)."""
        self._timelines: dict[str, tuple[JobRef, dict[str, Any], list[Change]]] = {}
        for ref, body in jobs:
            self.put(ref, body)

    def put(self, ref: JobRef, body: dict[str, Any]) -> None:
        with self._lock:
            self._bodies[ref.path()] = body

    def put_raw(self, ref: JobRef, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        """Serve these exact bytes (and headers) for a job (bad bodies in tests)."""
        with self._lock:
            self._raw[ref.path()] = (status, payload, headers or {})

    def clear_raw(self, ref: JobRef) -> None:
        with self._lock:
            self._raw.pop(ref.path(), None)

    def get(self, ref: JobRef) -> dict[str, Any] | None:
        with self._lock:
            return self._bodies.get(ref.path())

    def lookup(self, path: str) -> tuple[dict[str, Any] | None, tuple[int, bytes, dict[str, str]] | None]:
        with self._lock:
            self.requests[path] += 1
            self.request_times.append((time.monotonic(), path))
            return self._bodies.get(path), self._raw.get(path)

    def attempts(self, path: str) -> int:
        with self._lock:
            return self.requests[path]

    @property
    def total_requests(self) -> int:
        with self._lock:
            return sum(self.requests.values())

    def refs(self) -> list[JobRef]:
        with self._lock:
            return [JobRef(*_ROUTE.match(f"{BASE_PATH}/{p}").groups()) for p in self._bodies]  # type: ignore[union-attr]  # stored paths all match

    def put_timeline(self, ref: JobRef, base: dict[str, Any], changes: list[Change]) -> None:
        """A job with a known history; :meth:`play` sets which moment of it is served."""
        with self._lock:
            self._timelines[ref.path()] = (ref, base, changes)

    def play(self, moment: datetime) -> list[JobRef]:
        """Serve every timeline job as UP would at ``moment``; returns the jobs that exist by then."""
        existing = []
        for path, (ref, base, changes) in list(self._timelines.items()):
            body = body_at(base, changes, moment)
            with self._lock:
                if body is None:
                    self._bodies.pop(path, None)
                    continue
                self._bodies[path] = body
            existing.append(ref)
        return existing

    def advance(self, fraction: float, seed: int = 0, now: datetime | None = None) -> list[JobRef]:
        """Finish ``fraction`` of the non-terminal jobs and move the others along; return changed refs."""
        rng = random.Random(seed)
        now = now or datetime.now(timezone.utc)
        changed = []
        with self._lock:
            for path, body in sorted(self._bodies.items()):
                if body.get("state") in TERMINAL_STATES or path in self._timelines:
                    continue  # timeline jobs follow their own history (play)
                finish = rng.random() < fraction
                if not finish and rng.random() < 0.5:
                    continue  # some running jobs report no progress between two runs
                self._bodies[path] = advance_body(body, rng, now, finish=finish)
                changed.append(JobRef(*_ROUTE.match(f"{BASE_PATH}/{path}").groups()))  # type: ignore[union-attr]  # stored paths all match
        return changed


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes; without NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response (measured: 95 ms per request at 50 ms latency)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.emulator.count_connection()

    def log_message(self, format: str, *args: Any) -> None:  # stdlib signature
        """Silent: the emulator must not fill test or demo output with access logs."""

    def do_GET(self) -> None:  # stdlib naming
        emulator = self.server.emulator
        emulator.request_started()
        try:
            self._answer(emulator)
        finally:
            emulator.request_ended()

    def _answer(self, emulator: "EmulatorServer") -> None:
        if emulator.latency_seconds:
            time.sleep(emulator.latency_seconds)
        if self.headers.get("Authorization") != f"Bearer {emulator.api_key}":
            self._send_json(401, {"error": "unauthorized", "message": "missing or invalid API key"})
            return
        match = _ROUTE.match(self.path)
        if not match:
            self._send_json(404, {"error": "not_found", "message": "no such route"})
            return
        path = self.path[len(BASE_PATH) + 1 :]
        body, raw = emulator.store.lookup(path)
        if emulator.faults.enabled and self._inject_fault(path, match.group(3), body):
            return
        if raw is not None:
            self._send_bytes(raw[0], raw[1], "application/json", raw[2])
        elif body is None:
            self._send_json(404, {"error": "not_found", "message": "workflow job not found"})
        else:
            self._send_json(200, body)

    def _inject_fault(self, path: str, job_id: str, body: dict[str, Any] | None) -> bool:
        """Answer with a fault if the plan says so; True when the request has been answered."""
        plan = self.server.emulator.faults
        attempt = self.server.emulator.store.attempts(path)
        transient = plan.transient_fault(path, attempt)
        if transient == "server_error":
            self._send_json(plan.server_error_status(path, attempt), {"error": "server_error"})
        elif transient == "rate_limited":
            self._send_rate_limited(plan, path, attempt)
        elif transient == "timeout":
            time.sleep(plan.hang_seconds)
            self.close_connection = True
            self._send_json(503, {"error": "too slow"})
        elif transient == "reset":
            self._reset_connection()
        else:
            permanent = plan.permanent_fault(path)
            if permanent == "not_found":
                self._send_json(404, {"error": "not_found", "message": "workflow job not found"})
            elif permanent == "malformed" and body is not None:
                status, payload, content_type = malformed_payload(plan.malformed_kind(path), body, job_id)
                self._send_bytes(status, payload, content_type)
            else:
                return False
        return True

    def _send_rate_limited(self, plan: FaultPlan, path: str, attempt: int) -> None:
        if plan.retry_after_as_date(path, attempt):
            retry_after = format_datetime(
                datetime.fromtimestamp(time.time() + plan.retry_after_seconds + 1, timezone.utc), usegmt=True
            )
        else:
            retry_after = str(plan.retry_after_seconds)
        self._send_json(429, {"error": "rate_limited"}, headers={"Retry-After": retry_after})

    def _reset_connection(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_bytes(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def malformed_payload(kind: str, body: dict[str, Any], job_id: str) -> tuple[int, bytes, str]:
    """A 200 that is not the documented job object, one kind per malformed-record case."""
    if kind == "html":
        return 200, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"
    text = json.dumps(body)
    if kind == "truncated_json":
        return 200, text[: len(text) // 2].encode(), "application/json"
    broken = dict(body)
    if kind == "missing_id":
        broken.pop("id", None)
    elif kind == "wrong_id":
        broken["id"] = "f" * 32 if job_id != "f" * 32 else "e" * 32
    elif kind == "progress_not_number":
        broken["progress"] = "fifty"
    elif kind == "multi_element_list":
        broken["state"] = [body.get("state"), "failed"]
    elif kind == "oversized":
        broken["padding"] = "x" * (3 * 1024 * 1024)
    return 200, json.dumps(broken).encode(), "application/json"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    emulator: "EmulatorServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, resets) are normal here, not worth a traceback."""


class EmulatorServer:
    """Run the emulator on a free 127.0.0.1 port in a background thread (context manager)."""

    def __init__(
        self,
        store: JobStore,
        api_key: str = DEFAULT_API_KEY,
        latency_ms: float = 0,
        faults: FaultPlan | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.store = store
        self.api_key = api_key
        self.latency_seconds = latency_ms / 1000
        self.faults = faults or FaultPlan()
        self._httpd = _Server((host, port), _Handler)
        self._httpd.emulator = self
        self._thread: threading.Thread | None = None
        self._connections_lock = threading.Lock()
        self.connections_opened = 0
        self._in_flight = 0
        self.most_in_flight = 0
        """The most requests the emulator was answering at once (tests check the client's bound)."""

    def request_started(self) -> None:
        with self._connections_lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)

    def request_ended(self) -> None:
        with self._connections_lock:
            self._in_flight -= 1

    def count_connection(self) -> None:
        """Counted per TCP connection, so tests and the benchmark can see keep-alive reuse."""
        with self._connections_lock:
            self.connections_opened += 1

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{BASE_PATH}"

    def start(self) -> "EmulatorServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="up-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "EmulatorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
