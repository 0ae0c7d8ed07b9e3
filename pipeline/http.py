"""Fetch one UP job over HTTP with bounded, jittered retries shared fairly across threads.

dlt's ``dlt.sources.helpers.requests.Client`` retries 429/5xx with Retry-After but without
jitter, without a cap on the total wait, without telling the caller how many attempts a
request took, and each thread backs off alone, so many workers hitting 429 keep hammering.
This module adds exactly that: a :class:`RateGate` every worker waits on after any 429, full
jitter, a total-wait budget and an attempt count, on keep-alive connections from one urllib3
pool sized to the concurrency. Non-retryable answers come back as a :class:`FetchResult` for
the caller to classify; 401/403 raise :class:`AuthRejected`.

The requests go through urllib3 (what ``requests`` is built on) directly, not through a
``requests.Session``: one GET costs 170 µs of CPU that way against 450-550 µs through
``Session.send`` (request preparation, hooks, cookie jars, adapters; measured), and at 0 ms
latency the run is CPU-bound on this client. Proxy and CA-bundle settings are still read from
the environment the way ``requests`` reads them, once per client.

Whatever one response does (stall, trickle, lie about its length, fail to decompress, echo
the key) ends as a FetchResult for that job, never as an exception that aborts the run: every
request has a total deadline (:mod:`pipeline.deadlines`) and every body is redacted
(:mod:`pipeline.redact`) before anyone else sees it.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable

import urllib3
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_auth_from_url, get_environ_proxies, select_proxy
from urllib3.exceptions import DecodeError, NewConnectionError, ProtocolError, ProxyError, SSLError
from urllib3.exceptions import TimeoutError as UrllibTimeout

from pipeline.deadlines import Deadlines, Slot, track
from pipeline.job_ids import JobRef
from pipeline.redact import Redactor

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "up-jobs (dlt pipeline)"
ACCEPT_ENCODING = urllib3.util.make_headers(accept_encoding=True)["accept-encoding"]  # as requests sends it
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII only: "²".isdigit() is True, float("²") fails


class AuthRejected(Exception):
    """The API refused the key (401/403): every further request would fail the same way."""

    def __init__(self, status: int) -> None:
        cause = "the API key was rejected" if status == 401 else "the API key lacks access to this space"
        super().__init__(f"HTTP {status} from the UP API: {cause} (check sources.up_jobs.api_key)")
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_total_wait_seconds: float = 120.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 30.0
    request_deadline_seconds: float = 60.0
    """Connect + headers + body of one attempt; a trickling server is cut off here."""

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff (AWS architecture blog), so retries spread out."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)


@dataclass
class FetchResult:
    """What one job's request ended with, after retries."""

    ref: JobRef
    status: int | None
    body: bytes | None
    attempts: int
    fetched_at: datetime
    error_kind: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.error_kind is None and self.status == 200


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, in delta-seconds or HTTP-date form."""
    if not value:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return max(0.0, moment.timestamp() - (time.time() if now is None else now))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class RateGate:
    """A shared 'not before' time: after a 429 every worker pauses, so all slow down together."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._not_before = 0.0
        self._clock = clock

    def hold_for(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def remaining(self) -> float:
        with self._lock:
            return max(0.0, self._not_before - self._clock())

    def wait(self, stop: threading.Event) -> float:
        """Sleep until the gate opens (or ``stop``); returns the seconds waited."""
        started = self._clock()
        while True:
            remaining = self.remaining()
            if remaining <= 0 or stop.wait(remaining):
                return self._clock() - started


class UpClient:
    """Thread-safe client for ``GET {base_url}/{space}/workflows/{wf}/jobs/{job}``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        policy: RetryPolicy,
        pool_size: int = 16,
        max_body_bytes: int = 1_048_576,
        stop: threading.Event | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self.redactor = Redactor(api_key)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,
            "User-Agent": USER_AGENT,
            "Connection": "keep-alive",
        }
        self._policy = policy
        self._max_body_bytes = max_body_bytes
        self._timeout = urllib3.Timeout(connect=policy.connect_timeout_seconds, read=policy.read_timeout_seconds)
        self._http = track(_pool_manager(self._base_url, pool_size))
        # Without a proxy every request goes to one pool: ask it directly, with the path alone
        # (the manager would parse the URL and look the pool up again on every request).
        self._urlopen: Callable[..., urllib3.BaseHTTPResponse] = self._http.urlopen
        self._prefix = self._base_url
        if not isinstance(self._http, urllib3.ProxyManager):
            self._urlopen = self._http.connection_from_url(self._base_url).urlopen
            self._prefix = urllib3.util.parse_url(self._base_url).path or ""
        self._rng = random.Random()
        self.gate = RateGate()
        self.stop = stop or threading.Event()
        self._deadlines = Deadlines()

    def __repr__(self) -> str:  # never show the headers, they hold the key
        return f"UpClient(base_url={self._base_url!r})"

    def abort(self) -> None:
        """Stop now: no new attempts, and every request blocked on a socket returns at once."""
        self.stop.set()
        self._deadlines.abort_all()

    def close(self) -> None:
        self._http.clear()

    def fetch(self, ref: JobRef) -> FetchResult:
        """GET one job, retrying transient failures within the policy's attempt and time budget."""
        rng = self._rng
        url = f"{self._prefix}/{ref.path()}"
        waited, attempt, last_status, last_problem = 0.0, 0, None, ""
        while attempt < self._policy.max_attempts and not self.stop.is_set():
            paused = self.gate.remaining()
            if waited + paused > self._policy.max_total_wait_seconds:
                last_problem = last_problem or "HTTP 429"
                last_problem += f"; the API asked all workers to wait {paused:.0f}s more, beyond the budget"
                break
            waited += self.gate.wait(self.stop)
            attempt += 1
            try:
                status, body, retry_after = self._get(url)
            except _Failed as failure:
                last_status, last_problem, retry_after = None, failure.problem, None
            else:
                if status in (401, 403):
                    raise AuthRejected(status)
                if status not in RETRYABLE_STATUS:
                    return self._finished(ref, status, body, attempt)
                last_status, last_problem = status, f"HTTP {status}"
                if status == 429:
                    self.gate.hold_for(retry_after if retry_after is not None else self._policy.backoff(attempt, rng))
            if attempt >= self._policy.max_attempts:
                break
            delay = max(retry_after or 0.0, self._policy.backoff(attempt, rng))
            if waited + delay > self._policy.max_total_wait_seconds:
                last_problem += f"; next wait {delay:.1f}s would exceed the {self._policy.max_total_wait_seconds:.0f}s budget"
                break
            waited += delay
            if self.stop.wait(delay):
                break
        kind = "interrupted" if self.stop.is_set() else "retries_exhausted"
        message = f"gave up after {attempt} attempt(s): {last_problem}"
        return FetchResult(ref, last_status, None, attempt, _now(), kind, message)

    def _get(self, url: str) -> tuple[int, bytes, float | None]:
        """One attempt within the total deadline; any failure of the exchange raises _Failed."""
        with self._deadlines.request(self._policy.request_deadline_seconds) as slot:
            response: urllib3.BaseHTTPResponse | None = None
            try:
                response = self._urlopen(
                    "GET", url, headers=self._headers, timeout=self._timeout,
                    retries=False, redirect=False, preload_content=False, decode_content=True,
                )
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                return response.status, self.redactor.body(self._read_capped(response)), retry_after
            except Exception as error:  # one response must never abort the run
                raise _Failed(self._describe(error, slot, answered=response is not None)) from None
            finally:
                if response is not None:
                    response.close()  # a body read to its end has already given the connection back
                    response.release_conn()  # otherwise it is closed: the next request opens a new one

    def _read_capped(self, response: urllib3.BaseHTTPResponse) -> bytes:
        """The body, read no further than one byte past the cap (so oversize is detectable)."""
        chunks, size = [], 0
        for chunk in response.stream(65536, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size > self._max_body_bytes:
                break
        return b"".join(chunks)[: self._max_body_bytes + 1]

    def _finished(self, ref: JobRef, status: int, body: bytes, attempts: int) -> FetchResult:
        if status == 200:
            if len(body) > self._max_body_bytes:
                message = f"body larger than the {self._max_body_bytes}-byte cap"
                return FetchResult(ref, 200, body, attempts, _now(), "body_too_large", message)
            return FetchResult(ref, 200, body, attempts, _now())
        kind = "not_found" if status == 404 else "http_error"
        message = f"HTTP {status}: {_snippet(body[:200])}"
        return FetchResult(ref, status, body, attempts, _now(), kind, message)

    def _describe(self, error: Exception, slot: Slot, answered: bool) -> str:
        """A short cause without the request object (which would carry headers).

        ``answered``: the status line and headers had arrived (the failure was in the body).
        """
        if slot.aborted:
            return "the run was stopped"
        if slot.expired:
            return f"no complete answer within the {self._policy.request_deadline_seconds:g}s request deadline"
        if isinstance(error, (NewConnectionError, ProxyError, SSLError)):  # NewConnectionError is a timeout subclass
            return "connection failed or was reset"
        if isinstance(error, UrllibTimeout):
            return "request timed out"
        if isinstance(error, DecodeError):
            return "the body could not be decompressed (Content-Encoding)"
        if isinstance(error, (ProtocolError, OSError)):
            return "connection dropped mid-body" if answered else "connection failed or was reset"
        cause = self.redactor.text(str(error).splitlines()[0] if str(error) else "")[:200]
        return f"malformed HTTP response ({type(error).__name__}: {cause})"


def _pool_manager(base_url: str, pool_size: int) -> urllib3.PoolManager:
    """Keep-alive connections to the API, through the proxy and with the CA bundle that
    ``requests`` would take from the environment (``HTTPS_PROXY``/``NO_PROXY``,
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``), resolved once for the whole run."""
    options: dict[str, object] = {"num_pools": 1, "maxsize": pool_size, "block": False}
    if base_url.startswith("https:"):
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or DEFAULT_CA_BUNDLE_PATH
        options["cert_reqs"] = "CERT_REQUIRED"
        options["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    proxy = select_proxy(base_url, get_environ_proxies(base_url))
    if not proxy:
        return urllib3.PoolManager(**options)  # type: ignore[arg-type]  # urllib3 types each keyword; options mixes them
    if proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as with requests

        username, password = get_auth_from_url(proxy)
        return SOCKSProxyManager(proxy, username=username or None, password=password or None, **options)  # type: ignore[arg-type]  # as above
    username, password = get_auth_from_url(proxy)
    proxy_headers = urllib3.util.make_headers(proxy_basic_auth=f"{username}:{password}") if username else None
    return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, **options)  # type: ignore[arg-type]  # as above


class _Failed(Exception):
    """One attempt failed in a way worth retrying; ``problem`` is safe to store."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _snippet(body: bytes | None) -> str:
    return (body or b"").decode("utf-8", errors="replace")[:200]


def _now() -> datetime:
    return datetime.now(timezone.utc)
