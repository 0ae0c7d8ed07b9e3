"""Configuration of the UP source, resolved by dlt from ``.dlt/*.toml`` and env vars.

Section ``[sources.up_jobs]``; env vars override (``SOURCES__UP_JOBS__API_KEY``). The key is a
dlt secret, so dlt's trace records ``<secret>`` rather than its value.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import List, Mapping, Optional
from urllib.parse import urlsplit

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

from pipeline.error_state import BackoffPolicy
from pipeline.errors import ConfigError
from pipeline.http import RetryPolicy
from pipeline.job_ids import ConfigProblem
from pipeline.names import DATASET_NAME, PIPELINE_NAME  # noqa: F401 - re-exported for older imports

SECTIONS = ("sources", "up_jobs")

DUCKDB_STORAGE_VERSION = "v1.0.0"
"""Storage format of the published DuckDB file: DuckDB 0.10.3 and every later release read it (README)."""


@configspec
class UpJobsConfiguration(BaseConfiguration):
    base_url: Optional[str] = None
    space_id: Optional[str] = None
    jobs: Optional[List[str]] = None
    jobs_file: Optional[str] = None
    api_key: Optional[TSecretStrValue] = None
    max_concurrency: int = 16
    # retry policy; defaults live in RetryPolicy so there is one place to change them
    max_attempts: int = RetryPolicy.max_attempts
    backoff_seconds: float = RetryPolicy.backoff_seconds
    max_backoff_seconds: float = RetryPolicy.max_backoff_seconds
    max_total_wait_seconds: float = RetryPolicy.max_total_wait_seconds
    connect_timeout_seconds: float = RetryPolicy.connect_timeout_seconds
    read_timeout_seconds: float = RetryPolicy.read_timeout_seconds
    request_deadline_seconds: float = RetryPolicy.request_deadline_seconds
    max_body_bytes: int = 1_048_576
    lock_timeout_seconds: float = 0.0
    # dead jobs: a 404 or malformed body this many runs in a row waits, doubling up to the max
    dead_job_after_failures: int = BackoffPolicy.after_failures
    dead_job_backoff_hours: float = BackoffPolicy.base_hours
    dead_job_max_backoff_hours: float = BackoffPolicy.max_hours
    destination: Optional[str] = None
    duckdb_storage_version: str = DUCKDB_STORAGE_VERSION


def load_settings() -> UpJobsConfiguration:
    """Resolve ``[sources.up_jobs]`` through dlt's providers (env, secrets.toml, config.toml)."""
    return resolve_configuration(UpJobsConfiguration(), sections=SECTIONS, accept_partial=True)


def unknown_keys(settings_dir: str | Path, environ: Mapping[str, str]) -> list[ConfigProblem]:
    """Keys under [sources.up_jobs] that nothing reads (typos such as ``max_concurency``)."""
    known = set(UpJobsConfiguration.__dataclass_fields__)
    problems = []
    for name in ("config.toml", "secrets.toml"):
        path = Path(settings_dir) / name
        if not path.is_file():
            continue
        try:
            section = tomllib.loads(path.read_text(encoding="utf-8")).get("sources", {}).get("up_jobs", {})
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from None
        problems += [_unknown(str(path), key, known) for key in section if key not in known and not isinstance(section[key], dict)]
    prefix = "SOURCES__UP_JOBS__"
    problems += [
        _unknown("environment", name, known, name[len(prefix):].lower())
        for name in environ
        if name.startswith(prefix) and name[len(prefix):].lower() not in known
    ]
    return problems


def _unknown(where: str, key: str, known: set[str], lookup: str | None = None) -> ConfigProblem:
    close = difflib.get_close_matches(lookup or key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return ConfigProblem(where, f"unknown key sources.up_jobs {key!r} ignored{hint}", is_error=False)


def validate_base_url(base_url: str | None) -> str:
    """https only, except loopback hosts (the emulator); returns it without a trailing slash."""
    if not base_url:
        raise ConfigError("sources.up_jobs.base_url is not set (config.toml or SOURCES__UP_JOBS__BASE_URL)")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"sources.up_jobs.base_url {base_url!r} is not an http(s) URL")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError("sources.up_jobs.base_url must not contain credentials, a query or a fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(f"sources.up_jobs.base_url must use https (plain http only for loopback): {base_url!r}")
    return base_url.rstrip("/")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


API_KEY_ENV = "SOURCES__UP_JOBS__API_KEY"


def require_api_key(api_key: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The key, refused (without ever showing it) when a header could not carry it as written.

    A secrets file saved with Windows line endings gives a key ending in CR; sent as is, the
    HTTP library's error quotes the whole header, key included, into dlt's trace.
    """
    if not api_key:
        raise ConfigError(f"sources.up_jobs.api_key is not set: put it in .dlt/secrets.toml or {API_KEY_ENV}")
    key = str(api_key)
    environ = os.environ if environ is None else environ
    where = API_KEY_ENV if environ.get(API_KEY_ENV) else ".dlt/secrets.toml (sources.up_jobs.api_key)"
    if key != key.strip():
        raise ConfigError(f"the API key from {where} has leading or trailing whitespace (a CR from Windows line endings?); remove it")
    if any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or ord(char) > 0xFF for char in key):
        raise ConfigError(f"the API key from {where} contains control or non-Latin-1 characters; an HTTP header cannot carry it")
    return key
