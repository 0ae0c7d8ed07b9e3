"""Deterministic fault injection for the emulator: off by default, rates per fault, seeded.

Transient faults (5xx, 429, timeouts, connection resets) are decided per request from
``(seed, job path, attempt number)``, so a retry can succeed and the same run replays
identically. Permanent faults (404, malformed body) are decided per job from ``(seed, path)``,
so a re-run meets them again, as it would with a real broken record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

TRANSIENT_FAULTS = ("server_error", "rate_limited", "timeout", "reset")
PERMANENT_FAULTS = ("not_found", "malformed")
MALFORMED_KINDS = (
    "html",
    "truncated_json",
    "missing_id",
    "wrong_id",
    "progress_not_number",
    "multi_element_list",
    "oversized",
)


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts, stable across processes and Python versions."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class FaultPlan:
    """Rates (0-1) per fault kind; ``hang_seconds`` is how long a 'timeout' request stalls."""

    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    hang_seconds: float = 5.0
    retry_after_seconds: int = 1

    @classmethod
    def fault_matrix(cls, seed: int = 0, hang_seconds: float = 3.0) -> "FaultPlan":
        """The mix named in the reliability issue: 10% 5xx, 5% 429, 2% timeouts, 1% malformed, 1% 404."""
        rates = {"server_error": 0.10, "rate_limited": 0.05, "timeout": 0.02, "malformed": 0.01, "not_found": 0.01}
        return cls(seed=seed, rates=rates, hang_seconds=hang_seconds)

    @property
    def enabled(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())

    def permanent_fault(self, path: str) -> str | None:
        """'not_found', 'malformed' or None: the same answer for a job every time."""
        draw, threshold = _unit(self.seed, "permanent", path), 0.0
        for kind in PERMANENT_FAULTS:
            threshold += self.rates.get(kind, 0.0)
            if draw < threshold:
                return kind
        return None

    def malformed_kind(self, path: str) -> str:
        index = int(_unit(self.seed, "malformed-kind", path) * len(MALFORMED_KINDS))
        return MALFORMED_KINDS[index]

    def transient_fault(self, path: str, attempt: int) -> str | None:
        """A fault for this attempt at the path, or None to answer normally."""
        draw, threshold = _unit(self.seed, "transient", path, attempt), 0.0
        for kind in TRANSIENT_FAULTS:
            threshold += self.rates.get(kind, 0.0)
            if draw < threshold:
                return kind
        return None

    def server_error_status(self, path: str, attempt: int) -> int:
        return (500, 502, 503, 504)[int(_unit(self.seed, "status", path, attempt) * 4)]

    def retry_after_as_date(self, path: str, attempt: int) -> bool:
        """Alternate Retry-After between delta-seconds and HTTP-date, as servers do both."""
        return _unit(self.seed, "retry-after", path, attempt) < 0.5
