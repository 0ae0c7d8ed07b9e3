"""Keep the API key out of everything stored or printed, whatever a server sends back.

A server (or a proxy in front of it) may echo the request's ``Authorization`` header in an
error page or even inside a 200 body. Bodies are redacted as bytes before anything else sees
them (raw, and JSON-escaped forms such as ``\\/`` or ``\\uXXXX``), and any ``Bearer …`` value
is redacted too, since it is somebody's credential whoever's it is.
"""

from __future__ import annotations

import json
import re
from typing import Any

REDACTED = "[REDACTED]"
_BEARER = re.compile(r"(?i)(bearer)(\s+|%20|\+)[^\s\"'<>,;]+")
_BEARER_BYTES = re.compile(rb"(?i)(bearer)(\s+|%20|\+)[^\s\"'<>,;\\]+")


class Redactor:
    """Removes one secret (and any Bearer token) from text, bytes and parsed JSON."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret or ""

    def text(self, value: str) -> str:
        if self._secret:
            value = value.replace(self._secret, REDACTED)
        return _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", value)

    def body(self, raw: bytes) -> bytes:
        """The body with the secret removed in every form a JSON or HTML page can carry it."""
        if self._secret:
            for form in {self._secret, self._secret.replace("/", "\\/")}:
                raw = raw.replace(form.encode("utf-8", "surrogatepass"), REDACTED.encode())
        raw = _BEARER_BYTES.sub(lambda match: match.group(1) + b" " + REDACTED.encode(), raw)
        if b"\\u" in raw:  # the secret may hide behind \uXXXX escapes: look at the decoded strings
            raw = self._redact_json_strings(raw)
        return raw

    def _redact_json_strings(self, raw: bytes) -> bytes:
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            return raw
        cleaned = self.value(parsed)
        return raw if cleaned == parsed else json.dumps(cleaned).encode()

    def value(self, value: Any) -> Any:
        """Parsed JSON with every string (keys included) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        return value
