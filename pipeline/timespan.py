"""Parse .NET ``TimeSpan`` strings the way ``TimeSpan.Parse`` does with the invariant culture.

UP reports ``elapsed_time`` as a .NET TimeSpan string (``"136.08:01:23.5"``, ``"1:23:45"``).
The grammar follows Microsoft's documentation:

* TimeSpan.Parse remarks, ``[ws][-]{ d | [d.]hh:mm[:ss[.ff]] }[ws]`` with days 0-10675199,
  hours 0-23, minutes and seconds 0-59 and one to seven fraction digits:
  https://learn.microsoft.com/dotnet/fundamentals/runtime-libraries/system-timespan-parse
* Standard TimeSpan format strings, the general forms ``g``/``G``
  (``[-][d:]h:mm:ss[.FFFFFFF]``), which Parse also accepts:
  https://learn.microsoft.com/dotnet/standard/base-types/standard-timespan-format-strings

One documented-by-behaviour quirk is kept on purpose: in a three-part ``a:b:c`` string whose
first part is over 23, .NET falls back to reading it as ``d:hh:mm`` (``"24:00:00"`` is
24 days). Everything .NET rejects raises :class:`TimeSpanError`.
"""

from __future__ import annotations

import re
from decimal import Decimal

TICKS_PER_SECOND = 10_000_000
MAX_DAYS = 10_675_199
# TimeSpan.MaxValue = 10675199.02:48:05.4775807, i.e. Int64.MaxValue ticks.
MAX_TICKS = 2**63 - 1
MIN_TICKS = -(2**63)

# Bounded so a hostile 10 kB digit run cannot reach int()'s digit limit; leading zeros stay legal.
_DIGITS = r"[0-9]{1,32}"
_FRACTION = r"[0-9]{1,7}"
# d.hh:mm[:ss[.ff]]  or  hh:mm[:ss[.ff]]  (the documented Parse grammar)
_DOTTED = re.compile(
    rf"(?:(?P<days>{_DIGITS})\.)?(?P<h>{_DIGITS}):(?P<m>{_DIGITS})"
    rf"(?::(?P<s>{_DIGITS})(?:\.(?P<f>{_FRACTION}))?)?"
)
# d:hh:mm:ss[.ff]  (the general long format G / g with days)
_FOUR_PART = re.compile(
    rf"(?P<days>{_DIGITS}):(?P<h>{_DIGITS}):(?P<m>{_DIGITS}):(?P<s>{_DIGITS})"
    rf"(?:\.(?P<f>{_FRACTION}))?"
)
_DAYS_ONLY = re.compile(_DIGITS)


class TimeSpanError(ValueError):
    """The string is not a TimeSpan that .NET's TimeSpan.Parse would accept."""


def parse_timespan_ticks(text: str) -> int:
    """Return the TimeSpan as a signed number of 100 ns ticks (exact, no float rounding)."""
    if not isinstance(text, str):
        raise TimeSpanError(f"expected a string, got {type(text).__name__}")
    body = text.strip()
    negative = body.startswith("-")
    if negative:
        body = body[1:]
    ticks = _unsigned_ticks(body, original=text)
    ticks = -ticks if negative else ticks
    if not MIN_TICKS <= ticks <= MAX_TICKS:
        raise TimeSpanError(f"{text!r} is outside TimeSpan's range")
    return ticks


def parse_timespan_seconds(text: str) -> float:
    """Return the TimeSpan in seconds, as UP's ``elapsed_time`` is loaded (``elapsed_seconds``)."""
    return float(Decimal(parse_timespan_ticks(text)) / TICKS_PER_SECOND)


def _unsigned_ticks(body: str, original: str) -> int:
    if _DAYS_ONLY.fullmatch(body):
        return _compose(original, days=body)
    four = _FOUR_PART.fullmatch(body)
    if four:
        return _compose(original, **four.groupdict())
    dotted = _DOTTED.fullmatch(body)
    if not dotted:
        raise TimeSpanError(f"{original!r} is not in TimeSpan format [-][d.]hh:mm[:ss[.fffffff]]")
    parts = dotted.groupdict()
    is_plain_three_part = parts["days"] is None and parts["s"] is not None and parts["f"] is None
    if is_plain_three_part and int(parts["h"]) > 23:
        # .NET's fallback: "24:00:00" is read as d:hh:mm, i.e. 24 days.
        return _compose(original, days=parts["h"], h=parts["m"], m=parts["s"])
    return _compose(original, **parts)


def _compose(
    original: str,
    days: str | None = None,
    h: str | None = None,
    m: str | None = None,
    s: str | None = None,
    f: str | None = None,
) -> int:
    day_count = int(days or 0)
    hours, minutes, seconds = int(h or 0), int(m or 0), int(s or 0)
    if day_count > MAX_DAYS:
        raise TimeSpanError(f"{original!r}: days must be at most {MAX_DAYS}")
    if hours > 23:
        raise TimeSpanError(f"{original!r}: hours must be 0-23")
    if minutes > 59:
        raise TimeSpanError(f"{original!r}: minutes must be 0-59")
    if seconds > 59:
        raise TimeSpanError(f"{original!r}: seconds must be 0-59")
    fraction_ticks = int((f or "0").ljust(7, "0"))
    whole_seconds = ((day_count * 24 + hours) * 60 + minutes) * 60 + seconds
    return whole_seconds * TICKS_PER_SECOND + fraction_ticks


def format_timespan(ticks: int) -> str:
    """Format ticks in .NET's constant ``c`` format, ``[-][d.]hh:mm:ss[.fffffff]`` (emulator use)."""
    sign = "-" if ticks < 0 else ""
    ticks = abs(ticks)
    total_seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    total_minutes, seconds = divmod(total_seconds, 60)
    total_hours, minutes = divmod(total_minutes, 60)
    days, hours = divmod(total_hours, 24)
    text = f"{sign}{days}." if days else sign
    text += f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if fraction:
        text += f".{fraction:07d}"
    return text
