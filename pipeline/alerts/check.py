"""``up-jobs check``: read the analysis database, evaluate the rules, announce to a webhook.

Reads only (the DuckDB file is opened read-only; nothing is fetched). The webhook's memory of
what it announced lives in the run's private folder ``<db>.work/``, not in the published file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import duckdb

from pipeline.alerts import queries, rules, state
from pipeline.alerts.config import AlertsConfiguration
from pipeline.alerts.rules import Alert
from pipeline.alerts.webhook import WebhookFailed, WebhookTarget, post_text, validate_webhook_url
from pipeline.settings import ConfigError
from pipeline.workspace import Workspace

Connection = duckdb.DuckDBPyConnection


class CheckError(RuntimeError):
    """The database could not be opened for the check."""


@dataclass
class WebhookOutcome:
    configured: bool = False
    delivered: Optional[bool] = None
    """None: nothing new to announce, so nothing was posted."""
    announced: int = 0
    resolved: int = 0
    error: Optional[str] = None


@dataclass
class CheckResult:
    database: Path
    checked_at: datetime
    alerts: list[Alert] = field(default_factory=list)
    webhook: WebhookOutcome = field(default_factory=WebhookOutcome)
    warnings: list[str] = field(default_factory=list)


def _rules(
    config: AlertsConfiguration, now: datetime, published_at: Optional[datetime]
) -> dict[str, tuple[bool, Callable[[Connection], list[Alert]]]]:
    """Rule name (= the prefix of its config keys) → (switched on, evaluate over a connection)."""
    today = now.astimezone(timezone.utc).date()  # the regressions view's days are UTC dates
    return {
        "failure_rate": (config.failure_rate_enabled, lambda c: rules.failure_rate(
            queries.workflow_outcomes(c, now, config.failure_rate_hours), config)),
        "stuck_jobs": (config.stuck_jobs_enabled, lambda c: rules.stuck_jobs(queries.running_jobs(c, now), config)),
        "duration_regression": (config.duration_regression_enabled, lambda c: rules.duration_regressions(
            queries.flagged_regressions(c, today), today)),
        "open_fetch_errors": (config.open_fetch_errors_enabled, lambda c: rules.open_fetch_errors(
            queries.open_fetch_error_count(c), config)),
        "stale_load": (config.stale_load_enabled, lambda c: rules.stale_load(
            rules.last_success(queries.newest_load(c), published_at), now, config)),
    }


def evaluate(
    connection: Connection, config: AlertsConfiguration, now: datetime, published_at: Optional[datetime] = None
) -> tuple[list[Alert], set[str]]:
    """Every switched-on rule; a rule that cannot run (a view missing) becomes an alert itself."""
    alerts: list[Alert] = []
    evaluated = {"check_error"}
    for name, (enabled, evaluate_rule) in _rules(config, now, published_at).items():
        if not enabled:
            continue
        try:
            alerts += evaluate_rule(connection)
            evaluated.add(name)
        except duckdb.Error as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            alerts.append(Alert(rule="check_error", subject=name, view=rules.SCHEMA,
                                message=f"check error: rule {name} could not run: {reason}"))
    return alerts, evaluated


def open_read_only(db: Path) -> Connection:
    if not db.is_file():
        raise ConfigError(f"{db} does not exist; run 'up-jobs run' first")
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.Error as error:
        raise CheckError(f"cannot open {db} read-only: {(str(error).splitlines() or ['?'])[0]}") from None


def published_at(db: Path) -> datetime:
    """When the last successful run published the file (runs replace it atomically at the end)."""
    return datetime.fromtimestamp(db.stat().st_mtime, tz=timezone.utc)


def run_check(
    db: Path, config: AlertsConfiguration, webhook_url: Optional[str] = None, now: Optional[datetime] = None
) -> CheckResult:
    """Evaluate the rules on ``db``; announce what is new or resolved if a webhook is configured."""
    now = now or datetime.now(timezone.utc)
    url = webhook_url or (str(config.webhook_url) if config.webhook_url else None)
    if url:
        validate_webhook_url(url)  # before anything is read: a bad URL is a configuration error
    with open_read_only(db) as connection:
        alerts, evaluated = evaluate(connection, config, now, published_at(db))
    result = CheckResult(db, now, alerts)
    if url:
        target = WebhookTarget(
            url, config.webhook_timeout_seconds, config.webhook_max_attempts, config.webhook_backoff_seconds
        )
        result.webhook = announce(target, alerts, evaluated, Workspace.for_duckdb(db).state_dir, now, config, result.warnings)
    return result


def announce(
    target: WebhookTarget,
    alerts: list[Alert],
    evaluated: set[str],
    state_dir: Path,
    now: datetime,
    config: AlertsConfiguration,
    warnings: list[str],
) -> WebhookOutcome:
    """Post new, changed, due and resolved alerts once; remember them only when delivered."""
    with state.locked(state_dir) as is_locked:
        if not is_locked:
            warnings.append(f"alert state folder {state_dir} unusable; alerts may be announced again")
        path = state.state_path(state_dir)
        previous, warning = state.read_state(path)
        if warning:
            warnings.append(warning)
        resend = timedelta(hours=config.resend_after_hours) if config.resend_after_hours else None
        plan = state.plan(alerts, previous, now, resend, evaluated)
        outcome = WebhookOutcome(configured=True, announced=len(plan.firing), resolved=len(plan.resolved))
        if not plan.is_empty:
            try:
                post_text(target, webhook_text(plan, len(alerts)))
                outcome.delivered = True
            except WebhookFailed as error:
                outcome.delivered, outcome.error = False, str(error)
                return outcome  # state unchanged: the next run announces it all again
        if plan.next_state != previous:
            try:
                state.write_state(path, plan.next_state)
            except OSError as error:  # never hide the alerts over a bookkeeping file
                warnings.append(f"alert state {path} not saved ({error.strerror}); alerts may be announced again")
        return outcome


def webhook_text(plan: state.Announcement, firing: int) -> str:
    lines = [f"up-jobs: {firing} alert{'s' if firing != 1 else ''} firing"]
    lines += [f"• {alert.message} (see {alert.view})" for alert in plan.firing]
    lines += [f"• resolved: {message}" for message in plan.resolved]
    return "\n".join(lines)


def alert_line(alert: Alert) -> str:
    return f"ALERT {alert.message} (see {alert.view})"


def format_text(result: CheckResult) -> str:
    """One line per alert; webhook trouble and warnings after them. Empty when all is well."""
    lines = [alert_line(alert) for alert in result.alerts]
    webhook = result.webhook
    if webhook.delivered:
        lines.append(f"webhook: announced {webhook.announced} alert(s), {webhook.resolved} resolved")
    elif webhook.delivered is False:
        lines.append(f"webhook: NOT delivered: {webhook.error}; the next check tries again")
    lines += [f"warning: {warning}" for warning in result.warnings]
    return "\n".join(lines)


def format_json(result: CheckResult) -> str:
    payload: dict[str, Any] = {
        "database": str(result.database),
        "checked_at": result.checked_at.isoformat(),
        "alerts": [
            {**{k: v for k, v in asdict(alert).items() if k != "change"}, "key": alert.key}
            for alert in result.alerts
        ],
        "webhook": asdict(result.webhook),
        "warnings": result.warnings,
    }
    return json.dumps(payload, indent=2, default=str)
