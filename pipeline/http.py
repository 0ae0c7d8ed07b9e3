"""Fetch one UP job over HTTP with bounded, jittered retries shared fairly across threads.

dlt's ``dlt.sources.helpers.requests.Client`` retries 429/5xx with Retry-After but without
jitter, without a cap on the total wait, without telling the caller how many attempts a
request took, and each thread backs off alone, so many workers hitting 429 keep hammering.
This module adds exactly that: a :class:`RateGate` every worker waits on after any 429, full
jitter, a total-wait budget and an attempt count, on top of keep-alive ``requests`` sessions
(one per worker thread, pool sized to the concurrency). Non-retryable answers come back as a
:class:`FetchResult` for the caller to classify; 401/403 raise :class:`AuthRejected`.

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

import requests

from pipeline.deadlines import Deadlines, Slot, TrackedAdapter
from pipeline.job_ids import JobRef
from pipeline.redact import Redactor

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "up-jobs (dlt pipeline)"
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
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json", "User-Agent": USER_AGENT}
        self._policy = policy
        self._pool_size = pool_size
        self._max_body_bytes = max_body_bytes
        # Proxy and CA settings from the environment, resolved once: requests re-reads os.environ
        # on every call otherwise (1 ms of CPU per request, measured; the run is CPU-bound at L=0).
        self._send_options = {
            "proxies": requests.utils.get_environ_proxies(self._base_url),
            "verify": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True,
            "allow_redirects": False,
            "stream": True,
            "timeout": (policy.connect_timeout_seconds, policy.read_timeout_seconds),
        }
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self.gate = RateGate()
        self.stop = stop or threading.Event()
        self._deadlines = Deadlines()

    def __repr__(self) -> str:  # never show the headers, they hold the key
        return f"UpClient(base_url={self._base_url!r})"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = TrackedAdapter(pool_connections=1, pool_maxsize=self._pool_size, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.trust_env = False  # already resolved in _send_options
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def abort(self) -> None:
        """Stop now: no new attempts, and every request blocked on a socket returns at once."""
        self.stop.set()
        self._deadlines.abort_all()

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def fetch(self, ref: JobRef) -> FetchResult:
        """GET one job, retrying transient failures within the policy's attempt and time budget."""
        rng = random.Random()
        url = f"{self._base_url}/{ref.path()}"
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
        prepared = requests.Request("GET", url, headers=self._headers).prepare()
        with self._deadlines.request(self._policy.request_deadline_seconds) as slot:
            try:
                with self._session().send(prepared, **self._send_options) as response:
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
                    return response.status_code, self.redactor.body(self._read_capped(response)), retry_after
            except Exception as error:  # one response must never abort the run
                raise _Failed(self._describe(error, slot)) from None

    def _read_capped(self, response: requests.Response) -> bytes:
        """The body, read no further than one byte past the cap (so oversize is detectable)."""
        chunks, size = [], 0
        for chunk in response.iter_content(chunk_size=65536):
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

    def _describe(self, error: Exception, slot: Slot) -> str:
        """A short cause without the request object (which would carry headers)."""
        if slot.aborted:
            return "the run was stopped"
        if slot.expired:
            return f"no complete answer within the {self._policy.request_deadline_seconds:g}s request deadline"
        if isinstance(error, requests.Timeout):
            return "request timed out"
        if isinstance(error, requests.exceptions.ChunkedEncodingError):
            return "connection dropped mid-body"
        if isinstance(error, requests.exceptions.ContentDecodingError):
            return "the body could not be decompressed (Content-Encoding)"
        if isinstance(error, requests.ConnectionError):
            return "connection failed or was reset"
        cause = self.redactor.text(str(error).splitlines()[0] if str(error) else "")[:200]
        return f"malformed HTTP response ({type(error).__name__}: {cause})"


class _Failed(Exception):
    """One attempt failed in a way worth retrying; ``problem`` is safe to store."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _snippet(body: bytes | None) -> str:
    return (body or b"").decode("utf-8", errors="replace")[:200]


def _now() -> datetime:
    return datetime.now(timezone.utc)
