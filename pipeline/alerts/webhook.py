"""Post a message to a Slack-compatible incoming webhook (``{"text": ...}``).

Retries (429, 5xx, timeouts, refused connections) come from dlt's requests ``Client``. The URL
is a secret (it is the credential), so nothing this module returns or raises contains it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from dlt.sources.helpers.requests import Client

from pipeline.settings import ConfigError, is_loopback

MAX_RETRY_DELAY_SECONDS = 10.0


class WebhookFailed(RuntimeError):
    """The webhook did not accept the message; the reason never contains the URL."""


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    timeout_seconds: float = 10.0
    max_attempts: int = 3
    backoff_seconds: float = 1.0


def validate_webhook_url(url: str) -> str:
    """https only (plain http for loopback, e.g. a local relay); the error never echoes the URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("the webhook URL (alerts.webhook_url, or the one the check was given) is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError("the webhook URL (alerts.webhook_url, or the one the check was given) must use https (plain http only for loopback)")
    return url


def post_text(target: WebhookTarget, text: str) -> None:
    """POST ``{"text": text}``; raise :class:`WebhookFailed` with a URL-free reason if it is not accepted."""
    client = Client(
        request_timeout=target.timeout_seconds,
        request_max_attempts=target.max_attempts,
        request_backoff_factor=target.backoff_seconds,
        request_max_retry_delay=MAX_RETRY_DELAY_SECONDS,
        max_connections=1,
    )
    attempts = f"{target.max_attempts} attempt{'s' if target.max_attempts > 1 else ''}"
    try:
        response = client.post(target.url, json={"text": text}, allow_redirects=False)
        response.close()
    except requests.HTTPError as error:
        status = error.response.status_code if error.response is not None else "error"
        raise WebhookFailed(f"webhook answered HTTP {status} after {attempts}") from None
    except requests.Timeout:
        raise WebhookFailed(f"webhook timed out ({target.timeout_seconds:g} s) after {attempts}") from None
    except requests.ConnectionError:
        raise WebhookFailed(f"webhook unreachable (connection failed) after {attempts}") from None
    except requests.RequestException as error:
        raise WebhookFailed(f"webhook request failed: {type(error).__name__}") from None
    finally:
        client.session.close()
    if not 200 <= response.status_code < 300:  # a redirect is not a delivery
        raise WebhookFailed(f"webhook answered HTTP {response.status_code}")
