"""The HTTP client and its worker threads on their own, over real loopback HTTP.

What the end-to-end runs cannot show: that a proxy from the environment really carries the
requests (the client resolves it itself, once), and that the worker threads end whichever way
the consumer stops (early close, a rejected key), having requested no more than allowed ahead.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import threading
from typing import Any, Iterator

import pytest

from pipeline.emulator import EmulatorServer, JobStore, generate_jobs
from pipeline.emulator.server import DEFAULT_API_KEY
from pipeline.fetch import fetch_concurrently
from pipeline.http import AuthRejected, RetryPolicy, UpClient
from pipeline.job_ids import JobRef


class _RecordingProxy(socketserver.ThreadingTCPServer):
    """Answers every request with one JSON job and records the request line and headers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, dict[str, str]]] = []


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: _RecordingProxy

    def handle(self) -> None:
        while request_line := self.rfile.readline().decode("latin-1").strip():
            headers = {}
            while (line := self.rfile.readline().decode("latin-1").strip()):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.server.seen.append((request_line, headers))
            body = json.dumps({"id": "j1", "via": "proxy"}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RecordingProxy]:
    server = _RecordingProxy()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://user:pa55@127.0.0.1:{server.server_address[1]}")
    yield server
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_proxy_from_the_environment_carries_the_request_with_its_credentials(proxy):
    # nothing listens at the API's address: only the proxy can answer
    client = UpClient(f"http://127.0.0.1:{_closed_port()}/v1", "sk-key", RetryPolicy(max_attempts=1))
    result = client.fetch(JobRef("s1", "w1", "j1"))
    assert result.ok and json.loads(result.body or b"") == {"id": "j1", "via": "proxy"}
    request_line, headers = proxy.seen[0]
    assert request_line.startswith("GET http://127.0.0.1:") and request_line.endswith("/v1/s1/workflows/w1/jobs/j1 HTTP/1.1")
    assert headers["proxy-authorization"] == "Basic " + base64.b64encode(b"user:pa55").decode()
    assert headers["authorization"] == "Bearer sk-key"


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with EmulatorServer(JobStore(generate_jobs(60, seed=11)), latency_ms=20) as server:
        yield server


def _fetch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("up-fetch")]


def test_a_consumer_that_stops_early_ends_every_worker_and_requests_little_ahead(emulator):
    client = UpClient(emulator.base_url, DEFAULT_API_KEY, RetryPolicy(), pool_size=4)
    results = fetch_concurrently(client, emulator.store.refs(), 4)
    taken = [next(results) for _ in range(5)]
    results.close()
    assert all(result.ok for result in taken)
    assert _fetch_threads() == []
    assert emulator.store.total_requests <= 5 + 2 * 4  # 2 x concurrency handed out ahead of the consumer


def test_a_rejected_key_stops_every_worker_and_reaches_the_consumer(emulator):
    client = UpClient(emulator.base_url, "not-the-key", RetryPolicy(), pool_size=4)
    with pytest.raises(AuthRejected):
        list(fetch_concurrently(client, emulator.store.refs(), 4))
    assert _fetch_threads() == []
    assert emulator.store.total_requests <= 2 * 4
    assert client.stop.is_set()


def test_workers_start_only_as_jobs_arrive(emulator):
    started: list[Any] = []
    client = UpClient(emulator.base_url, DEFAULT_API_KEY, RetryPolicy(), pool_size=8)
    for result in fetch_concurrently(client, emulator.store.refs()[:3], 8):
        started.append(len(_fetch_threads()))
        assert result.ok
    assert max(started) <= 3 and _fetch_threads() == []
