"""A hostile UP API on 127.0.0.1: each job id picks what the server does on a bad day.

Written on raw sockets, not http.server, so it can do what well-behaved servers never do:
stall mid-body, send two Content-Length headers, lie about Content-Encoding, echo the
caller's Authorization header back in bodies and headers. Jobs without a behaviour are
served as the emulator would, with keep-alive.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections import Counter
from typing import Any, Callable

from pipeline.job_ids import JobRef

Response = tuple[int, dict[str, str], bytes]
Behaviour = Callable[["Request"], "Response | None"]
"""Returns the response to send, or None when it has written (or stalled on) the socket itself."""

BASE_PATH = "/v1"


class Request:
    def __init__(self, server: "HostileServer", ref: JobRef, headers: dict[str, str], sock: socket.socket, attempt: int) -> None:
        self.server, self.ref, self.headers, self.sock, self.attempt = server, ref, headers, sock, attempt

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.server.bodies[self.ref.job_id])


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode()


def raw_response(text: str | bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return status, {"Content-Type": "application/json", **(headers or {})}, data


class _Handler(socketserver.BaseRequestHandler):
    server: "_TCPServer"

    def handle(self) -> None:
        hostile = self.server.hostile
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = sock.makefile("rb")
        while not hostile.stopping.is_set():
            request_line = reader.readline()
            if not request_line:
                return
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            path = request_line.split()[1].decode()
            parts = path.split("/")
            if len(parts) != 7 or headers.get("authorization") != f"Bearer {hostile.api_key}":
                self._send(sock, *json_response({"error": "unauthorized"}, 401), close=True)
                return
            ref = JobRef(parts[2], parts[4], parts[6])
            with hostile.lock:
                hostile.requests[ref.job_id] += 1
                attempt = hostile.requests[ref.job_id]
            behaviour = hostile.behaviours.get(ref.job_id)
            if behaviour is None:
                body = hostile.bodies.get(ref.job_id)
                response = json_response(body) if body is not None else json_response({"error": "not_found"}, 404)
            else:
                response = behaviour(Request(hostile, ref, headers, sock, attempt))
                if response is None:
                    return  # the behaviour owned the socket
            if not self._send(sock, *response, close=behaviour is not None):
                return
            if behaviour is not None:
                return

    @staticmethod
    def _send(sock: socket.socket, status: int, headers: dict[str, str], body: bytes, close: bool) -> bool:
        head = [f"HTTP/1.1 {status} X"]
        if not any(name.lower() == "content-length" for name in headers):
            head.append(f"Content-Length: {len(body)}")
        head += [f"{name}: {value}" for name, value in headers.items()]
        if close:
            head.append("Connection: close")
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            return False
        return True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    hostile: "HostileServer"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hang up on purpose here (deadlines); not worth a traceback."""


class HostileServer:
    """Serve ``bodies`` (job id → body) and apply ``behaviours`` (job id → Behaviour)."""

    def __init__(self, bodies: dict[str, dict[str, Any]], behaviours: dict[str, Behaviour], api_key: str) -> None:
        self.bodies, self.behaviours, self.api_key = bodies, behaviours, api_key
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._tcp = _TCPServer(("127.0.0.1", 0), _Handler)
        self._tcp.hostile = self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._tcp.server_address[1]}{BASE_PATH}"

    def __enter__(self) -> "HostileServer":
        threading.Thread(target=self._tcp.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._tcp.shutdown()
        self._tcp.server_close()


def stall(seconds_per_byte: float) -> Behaviour:
    """Headers promising a body, then one byte every ``seconds_per_byte`` for as long as it is read."""

    def behave(request: Request) -> None:
        try:
            request.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
            while not request.server.stopping.is_set():
                request.sock.sendall(b" ")
                time.sleep(seconds_per_byte)
        except OSError:
            pass
        return None

    return behave
