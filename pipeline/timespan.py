"""Parse .NET ``TimeSpan`` strings exactly as ``TimeSpan.Parse(s, CultureInfo.InvariantCulture)`` does.

UP reports ``elapsed_time`` as a .NET TimeSpan string (``"136.08:01:23.5"``, ``"1:23:45"``).
Microsoft documents the grammar as ``[ws][-]{ d | [d.]hh:mm[:ss[.ff]] }[ws]``
(https://learn.microsoft.com/dotnet/fundamentals/runtime-libraries/system-timespan-parse), but
modern .NET accepts more, and this module follows what it does, not only what is documented:

* The string is trimmed of ``char.IsWhiteSpace`` characters only (not U+001C-U+001F, which
  Python's ``str.strip`` also removes, nor U+180E, U+200B or U+FEFF), then split into runs of ASCII
  digits (numbers) and runs of anything else (separators); other scripts' digits are separators.
* A number may have any count of leading zeros; from 2**28 on it is an overflow.
* The separators choose the form. With the invariant pattern (day separator ``.``) and the
  invariant culture's general pattern (day separator ``:``), the accepted forms are:
  ``d``, ``h:m``, ``h:m:s`` (else ``d:h:m``: ``"24:00:00"`` is 24 days), ``d.h:m``, ``h:m:.f``,
  ``h:m:s.f``, ``d.h:m:s``, ``d:h:m:s``, ``d.h:m:.f``, ``d:h:m:.f``, ``d.h:m:s.f``,
  ``d:h:m:s.f``, each optionally after a ``-``. The ``d:h:m`` fallback is kept by .NET for
  compatibility (dotnet/runtime issues 90214, 101187).
* Fields are range-checked (days <= 10675199, hours <= 23, minutes and seconds <= 59) and the
  total must fit a signed 64-bit tick count. A fraction of more than seven digits is an overflow
  unless it starts with ``0``; then it is rounded half away from zero to seven digits
  (``.00000005`` is 1 tick), as .NET Core does since 3.0 (dotnet/coreclr pull 21968; Mono and
  .NET Framework do not).
* A string in none of the forms is a :class:`TimeSpanFormatError` (.NET's FormatException); one
  in a form whose numbers do not fit is a :class:`TimeSpanOverflowError` (OverflowException).

tests/data/timespan_dotnet_corpus.jsonl holds a real .NET runtime's answers for about ten
thousand strings (scripts/timespan_corpus.py regenerates it); tests/test_timespan.py checks
every row. Work is linear in the input's length and stops after twelve tokens.
"""

from __future__ import annotations

import re
from decimal import Decimal

TICKS_PER_SECOND = 10_000_000
MAX_DAYS = 10_675_199
# TimeSpan.MaxValue = 10675199.02:48:05.4775807, i.e. Int64.MaxValue ticks.
MAX_TICKS = 2**63 - 1
MIN_TICKS = -(2**63)

_FRACTION_DIGITS = 7
_MAX_FRACTION = 9_999_999
_NUMBER_LIMIT = 2**28  # .NET's tokenizer gives up on a number from 0x10000000 on
_MAX_NUMBERS = 5
_MAX_SEPARATORS = 6
_MAX_TOKENS = 11

# char.IsWhiteSpace: U+0009-U+000D, U+0085 and the Unicode categories Zs, Zl, Zp.
_NET_WHITESPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_TOKEN = re.compile(r"[0-9]+|[^0-9]+")
# Fast path for what UP sends ([-][d.|d:]h:mm:ss[.f], days below the limit, at most 7 fraction
# digits); anything else, or a field out of range, takes the general path below.
_COMMON = re.compile(r"(-?)(?:([0-9]{1,7})[.:])?([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.([0-9]{1,7}))?")

# The middle separators of each accepted form (the first must be "" or "-", the last ""), and
# the fields the numbers fill, in the order .NET tries them: the first one that fits wins.
_FORMS: dict[tuple[str, ...], tuple[str, ...]] = {
    (): ("d",),
    (":",): ("hm",),
    (":", ":"): ("hms", "dhm"),
    (".", ":"): ("dhm",),
    (":", ":."): ("hmf",),
    (":", ":", "."): ("hmsf",),
    (".", ":", ":"): ("dhms",),
    (":", ":", ":"): ("dhms",),
    (".", ":", ":."): ("dhmf",),
    (":", ":", ":."): ("dhmf",),
    (".", ":", ":", "."): ("dhmsf",),
    (":", ":", ":", "."): ("dhmsf",),
}
_FIELD_LIMITS = {"d": MAX_DAYS, "h": 23, "m": 59, "s": 59}
_FIELD_NAMES = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_SECONDS_PER = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


class TimeSpanError(ValueError):
    """The string is not a TimeSpan that .NET's TimeSpan.Parse would accept."""


class TimeSpanFormatError(TimeSpanError):
    """.NET throws FormatException: the string is in none of TimeSpan's forms."""


class TimeSpanOverflowError(TimeSpanError):
    """.NET throws OverflowException: a TimeSpan form whose numbers are out of range."""


def parse_timespan_ticks(text: str) -> int:
    """Return the TimeSpan as a signed number of 100 ns ticks (exact, no float rounding)."""
    if not isinstance(text, str):
        raise TimeSpanFormatError(f"expected a string, got {type(text).__name__}")
    common = _COMMON.fullmatch(text)
    if common:
        sign, days, hours, minutes, seconds, fraction = common.groups()
        if int(hours) <= 23 and int(minutes) <= 59 and int(seconds) <= 59:
            total = (int(days or 0) * 86_400 + int(hours) * 3_600 + int(minutes) * 60 + int(seconds)) * TICKS_PER_SECOND
            total += int(fraction.ljust(_FRACTION_DIGITS, "0")) if fraction else 0
            return -total if sign else total
    separators, numbers = _tokenize(text)
    forms = _FORMS.get(tuple(separators[1:-1])) if numbers else None
    if forms is None or separators[0] not in ("", "-") or separators[-1] != "":
        raise TimeSpanFormatError(
            f"{_shown(text)} is not a .NET TimeSpan ([-][d.]hh:mm[:ss[.fffffff]] or [-][d:]h:mm:ss[.FFFFFFF])"
        )
    negative = separators[0] == "-"
    problems = []
    for fields in forms:
        ticks = _ticks(dict(zip(fields, numbers)), negative)
        if isinstance(ticks, int):
            return -ticks if negative else ticks
        problems.append(f"as {':'.join(fields)}, {ticks}" if len(forms) > 1 else ticks)
    raise TimeSpanOverflowError(f"{_shown(text)}: {'; '.join(problems)}")


def parse_timespan_seconds(text: str) -> float:
    """Return the TimeSpan in seconds, as UP's ``elapsed_time`` is loaded (``elapsed_seconds``)."""
    return float(Decimal(parse_timespan_ticks(text)) / TICKS_PER_SECOND)


def _tokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Separators (first and last may be "") and numbers as (value, leading zeros), as .NET's tokenizer."""
    body = text.strip(_NET_WHITESPACE)
    if not body:
        raise TimeSpanFormatError(f"{_shown(text)} is empty or only white space")
    separators: list[str] = []
    numbers: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(body):
        piece = match.group()
        if "0" <= piece[0] <= "9":
            number = _number(piece, text)
            if not separators:
                separators.append("")
            if len(numbers) >= _MAX_NUMBERS or len(separators) + len(numbers) >= _MAX_TOKENS:
                raise TimeSpanFormatError(f"{_shown(text)} has too many numbers for a TimeSpan")
            numbers.append(number)
        else:
            if len(separators) >= _MAX_SEPARATORS or len(separators) + len(numbers) >= _MAX_TOKENS:
                raise TimeSpanFormatError(f"{_shown(text)} has too many parts for a TimeSpan")
            separators.append(piece)
    if len(separators) == len(numbers):  # ended on a number: an empty closing separator
        separators.append("")
    return separators, numbers


def _number(digits: str, text: str) -> tuple[int, int]:
    significant = digits.lstrip("0")
    # Nine digits hold every value below 2**28; the length test keeps int() off huge runs.
    if len(significant) > 9 or (significant and int(significant) >= _NUMBER_LIMIT):
        raise TimeSpanOverflowError(f"{_shown(text)}: a number is too large for a TimeSpan")
    return (int(significant) if significant else 0), len(digits) - len(significant)


def _ticks(fields: dict[str, tuple[int, int]], negative: bool) -> int | str:
    """Unsigned ticks, or why a field or the total is out of range."""
    seconds = 0
    for name, (value, _zeros) in fields.items():
        if name == "f":
            continue
        if value > _FIELD_LIMITS[name]:
            return f"{_FIELD_NAMES[name]} must be 0-{_FIELD_LIMITS[name]}, not {value}"
        seconds += value * _SECONDS_PER[name]
    fraction = _fraction_ticks(*fields["f"]) if "f" in fields else 0
    if fraction is None:
        return "a fraction of more than 7 digits must start with 0"
    ticks = seconds * TICKS_PER_SECOND + fraction
    if ticks > (-MIN_TICKS if negative else MAX_TICKS):
        return "the total is beyond TimeSpan's range (10675199.02:48:05.4775807)"
    return ticks


def _fraction_ticks(value: int, zeros: int) -> int | None:
    """Seven-digit ticks of ``.{zeros}{value}``, rounded half away from zero past seven digits."""
    if value == 0:
        return 0
    if zeros == 0 and value > _MAX_FRACTION:
        return None
    digits = len(str(value)) + zeros
    if digits <= _FRACTION_DIGITS:
        scale: int = 10 ** (_FRACTION_DIGITS - digits)
        return value * scale
    excess = digits - _FRACTION_DIGITS
    if excess > 10:  # value < 2**28 < 10**9: what is left rounds to 0
        return 0
    divisor: int = 10**excess
    quotient, remainder = divmod(value, divisor)
    return quotient + (1 if 2 * remainder >= divisor else 0)


def _shown(text: str) -> str:
    """The input for an error message, cut short: a hostile megabyte must not become the message."""
    return repr(text) if len(text) <= 60 else repr(text[:60]) + f"... ({len(text)} characters)"


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
