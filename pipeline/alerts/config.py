"""The ``[alerts]`` section of ``.dlt/config.toml``, resolved by dlt like ``[sources.up_jobs]``.

Every key has a default; env vars override as dlt does it (``ALERTS__FAILURE_RATE_MAX=0.1``).
``webhook_url`` is a dlt secret: it belongs in ``.dlt/secrets.toml`` or ``ALERTS__WEBHOOK_URL``
and is never printed or written anywhere else.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Mapping, Optional

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

from pipeline.settings import ConfigError

SECTIONS = ("alerts",)


@configspec
class AlertsConfiguration(BaseConfiguration):
    # failure rate per workflow: failed / (succeeded + failed) over the last N hours
    failure_rate_enabled: bool = True
    failure_rate_max: float = 0.2
    failure_rate_hours: float = 24.0
    failure_rate_min_jobs: int = 10
    # stuck: a non-terminal job older than a fixed limit or than its workflow's p99, or idle too long
    stuck_jobs_enabled: bool = True
    stuck_jobs_max_age_hours: float = 6.0
    stuck_jobs_p99_factor: float = 1.0
    stuck_jobs_min_terminal_jobs: int = 20
    stuck_jobs_max_idle_hours: float = 2.0
    # duration regressions the workflow_duration_regressions view flags for today (UTC)
    duration_regression_enabled: bool = True
    # open fetch errors: jobs whose data is missing until a run fetches them
    open_fetch_errors_enabled: bool = True
    open_fetch_errors_max: int = 0
    # the pipeline itself stopped: the newest successful load is older than this
    stale_load_enabled: bool = True
    stale_load_max_age_hours: float = 6.0
    # chat webhook (Slack-compatible {"text": ...})
    webhook_url: Optional[TSecretStrValue] = None
    webhook_timeout_seconds: float = 10.0
    webhook_max_attempts: int = 3
    webhook_backoff_seconds: float = 1.0
    resend_after_hours: float = 24.0
    """A still-firing alert is announced again after this long (0: only when it changes)."""


_NON_NEGATIVE = (
    "failure_rate_max", "failure_rate_hours", "failure_rate_min_jobs", "stuck_jobs_max_age_hours",
    "stuck_jobs_p99_factor", "stuck_jobs_min_terminal_jobs", "stuck_jobs_max_idle_hours",
    "open_fetch_errors_max", "stale_load_max_age_hours", "resend_after_hours", "webhook_backoff_seconds",
)


def load_alerts_config() -> AlertsConfiguration:
    """Resolve ``[alerts]`` through dlt's providers (env, secrets.toml, config.toml), then validate."""
    return validate(resolve_configuration(AlertsConfiguration(), sections=SECTIONS, accept_partial=True))


def validate(config: AlertsConfiguration) -> AlertsConfiguration:
    """Refuse values that would silently disable or break a rule; the message names the key."""
    for name in _NON_NEGATIVE:
        if getattr(config, name) < 0:
            raise ConfigError(f"alerts.{name} must not be negative (got {getattr(config, name)})")
    if config.failure_rate_max > 1:
        raise ConfigError(f"alerts.failure_rate_max is a fraction between 0 and 1 (got {config.failure_rate_max})")
    if config.webhook_timeout_seconds <= 0 or config.webhook_max_attempts < 1:
        raise ConfigError("alerts.webhook_timeout_seconds must be > 0 and alerts.webhook_max_attempts >= 1")
    return config


def unknown_keys(settings_dir: str | Path, environ: Mapping[str, str]) -> list[str]:
    """Keys under [alerts] that nothing reads (``failure_rate_mx``): warnings, with the closest key."""
    known = set(AlertsConfiguration.__dataclass_fields__)
    found: list[tuple[str, str]] = []
    for name in ("config.toml", "secrets.toml"):
        path = Path(settings_dir) / name
        try:
            section = tomllib.loads(path.read_text(encoding="utf-8")).get("alerts", {}) if path.is_file() else {}
        except (OSError, tomllib.TOMLDecodeError):
            continue  # dlt reports a broken file itself
        found += [(str(path), key) for key in section if key not in known]
    prefix = "ALERTS__"
    found += [("environment", name[len(prefix):].lower()) for name in environ
              if name.startswith(prefix) and name[len(prefix):].lower() not in known]
    warnings = []
    for where, key in found:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        warnings.append(f"{where}: unknown key alerts.{key} ignored{hint}")
    return warnings
