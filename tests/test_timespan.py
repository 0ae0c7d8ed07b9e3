"""The .NET TimeSpan grammar (TimeSpan.Parse, invariant culture): against a real runtime's answers,
table-driven and property-based."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.emulator.generator import format_elapsed
from pipeline.timespan import (
    MAX_TICKS,
    MIN_TICKS,
    TICKS_PER_SECOND,
    TimeSpanError,
    TimeSpanFormatError,
    TimeSpanOverflowError,
    format_timespan,
    parse_timespan_seconds,
    parse_timespan_ticks,
)

CORPUS = Path(__file__).resolve().parent / "data" / "timespan_dotnet_corpus.jsonl"
CONSTANT = re.compile(r"(-?)(?:([0-9]+)\.)?([0-9]+):([0-9]+):([0-9]+)(\.[0-9]+)?")
DOTNET_NAMES = {TimeSpanFormatError: "FormatException", TimeSpanOverflowError: "OverflowException"}


@lru_cache(maxsize=1)
def corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def dotnet_answer(text: str) -> int | str:
    """Ticks, or the name of the exception .NET would throw (the corpus's vocabulary)."""
    try:
        return parse_timespan_ticks(text)
    except TimeSpanError as error:
        return DOTNET_NAMES.get(type(error), type(error).__name__)


def disagreements(rows: list[dict[str, Any]]) -> list[str]:
    found = []
    for row in rows:
        expected = row["ticks"] if "ticks" in row else row["error"]
        got = dotnet_answer(row["input"])
        if got != expected:
            found.append(f"{row['input'][:80]!r} ({row['source']}): .NET {expected}, parser {got}")
    return found


def test_corpus_is_the_generated_one() -> None:
    """Guards the differential tests below against a truncated or hand-edited corpus."""
    rows = corpus()
    sources = Counter(row["source"] for row in rows)
    assert len(rows) > 9000
    assert sources["TimeSpanTests.cs"] == 132
    assert all(sources[family] > 50 for family in ("fraction", "bounds", "whitespace", "canonical", "structure", "emulator"))
    assert len({row["input"] for row in rows}) == len(rows)
    answers = Counter("ticks" if "ticks" in row else row["error"] for row in rows)
    assert answers["ticks"] > 2000 and answers["FormatException"] > 2000 and answers["OverflowException"] > 2000


def test_agrees_with_dotnet_on_every_corpus_row() -> None:
    """Each row is .NET Core's TimeSpan.Parse answer (scripts/timespan_corpus.py): value and exception type."""
    rows = corpus()
    wrong = disagreements(rows)
    assert not wrong, f"{len(wrong)} of {len(rows)} corpus rows disagree with .NET:\n" + "\n".join(wrong[:25])


def test_agrees_with_dotnet_runtime_tests() -> None:
    """The invariant-culture Parse cases of dotnet/runtime's TimeSpanTests.cs (132 rows of the corpus)."""
    rows = [row for row in corpus() if row["source"] == "TimeSpanTests.cs"]
    wrong = disagreements(rows)
    assert not wrong, f"{len(wrong)} of {len(rows)} TimeSpanTests.cs cases disagree:\n" + "\n".join(wrong)


def test_mono_differences_are_fraction_rounding_only() -> None:
    """Mono (the other runtime run) differs only where a fraction has 8+ digits: the .NET Core fix we follow."""
    differing = [row for row in corpus() if "mono" in row]
    assert differing  # the corpus records them; else the generator did not run Mono
    for row in differing:
        fraction = row["input"].strip().rsplit(".", 1)[-1]
        assert fraction.isdigit() and len(fraction) > 7, row


ACCEPTED = [
    ("136.08:01:23.5", 11779283.5),  # the API's example
    ("1:23:45", 5025.0),  # the API's example
    ("0", 0.0),
    ("14", 14 * 86400.0),  # a bare integer is days
    ("1:2:3", 3723.0),
    ("0:0:0.250", 0.25),
    ("10.20:30:40.50", 10 * 86400 + 20 * 3600 + 30 * 60 + 40.5),
    ("99.23:59:59.9999999", 99 * 86400 + 86399.9999999),
    ("0023:0059:0059.0099", 86399.0099),  # leading zeros are fine
    ("0" * 40 + "23:" + "0" * 40 + "1", 23 * 3600 + 60.0),  # any number of them
    ("23:0:0", 82800.0),
    ("10:0", 36000.0),  # two parts are hours:minutes
    ("0.12:00", 43200.0),
    ("6:12:14:45", 6 * 86400 + 12 * 3600 + 14 * 60 + 45.0),  # general long form d:hh:mm:ss
    ("6:12:14:45.3448", 6 * 86400 + 12 * 3600 + 14 * 60 + 45.3448),
    ("1:1:.1", 3660.1),  # h:m:.f
    ("2.1:1:.5", 2 * 86400 + 3660.5),  # d.h:m:.f
    ("2:1:1:.5", 2 * 86400 + 3660.5),  # d:h:m:.f
    ("00:00:00.00000005", 1e-7),  # 8+ digits after a leading 0 round half away from zero
    ("00:00:00.099999949", 0.0999999),  # .0999999|49 rounds down, .0999999|5 up
    ("24:00:00", 24 * 86400.0),  # .NET reads an out-of-range hour in a 3-part string as days
    ("  1:23:45\t\u3000", 5025.0),  # surrounding white space
    ("-1:00:00", -3600.0),
    ("-3.04:05:06.7", -(3 * 86400 + 4 * 3600 + 5 * 60 + 6.7)),
    ("10675199.02:48:05.4775807", MAX_TICKS / TICKS_PER_SECOND),  # TimeSpan.MaxValue
]

REJECTED: list[tuple[str, type[TimeSpanError]]] = [
    ("1:2:3.12345678", TimeSpanOverflowError),  # eight fraction digits, no leading zero
    ("0:60:0", TimeSpanOverflowError),
    ("24:30:00", TimeSpanOverflowError),  # as days:hours:minutes the hours are out of range
    ("10675200", TimeSpanOverflowError),  # more days than TimeSpan holds
    ("10675199.02:48:05.4775808", TimeSpanOverflowError),  # MaxValue + 1 tick
    ("268435456", TimeSpanOverflowError),  # 2**28: .NET's tokenizer stops there
    ("10:", TimeSpanFormatError),
    (":10", TimeSpanFormatError),
    ("1::2", TimeSpanFormatError),
    ("10.12", TimeSpanFormatError),  # days.hours without minutes
    ("", TimeSpanFormatError),
    ("\x1c1:2:3", TimeSpanFormatError),  # U+001C-U+001F are not .NET white space
    ("1:2:3\u200b", TimeSpanFormatError),
    ("+1:00", TimeSpanFormatError),
    ("1:2:3:4:5", TimeSpanFormatError),
    ("1," "5", TimeSpanFormatError),
    ("1:23:4５", TimeSpanFormatError),  # a full-width digit is not an ASCII digit
    ("00:00:00:00:00:00:00:00", TimeSpanFormatError),  # too many parts
]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED)
def test_accepted_forms(text: str, seconds: float) -> None:
    assert parse_timespan_seconds(text) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize(("text", "error"), REJECTED)
def test_rejected_forms(text: str, error: type[TimeSpanError]) -> None:
    with pytest.raises(error):
        parse_timespan_ticks(text)


def test_min_value_is_reachable_and_exact() -> None:
    assert parse_timespan_ticks("-10675199.02:48:05.4775808") == MIN_TICKS
    assert parse_timespan_ticks("-10675199:02:48:05.4775808") == MIN_TICKS


@pytest.mark.parametrize("value", [None, 12, 1.5, ["1:00"]])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(TimeSpanError):
        parse_timespan_ticks(value)


HOSTILE = [
    ("0" * 1_000_000 + "1", 864_000_000_000),
    ("1" * 1_000_000, TimeSpanOverflowError),
    ("1:" * 500_000, TimeSpanFormatError),
    (" " * 1_000_000 + "1:2" + "\u3000" * 1_000_000, 37_200_000_000),
    ("x" * 1_000_000, TimeSpanFormatError),
    ("0:0:0." + "0" * 1_000_000 + "5", 0),
    ("\u0660" * 1_000_000, TimeSpanFormatError),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE, ids=[f"hostile{i}" for i in range(len(HOSTILE))])
def test_megabyte_inputs_are_fast_and_give_short_errors(text: str, expected: int | type[TimeSpanError]) -> None:
    started = time.perf_counter()
    if isinstance(expected, int):
        assert parse_timespan_ticks(text) == expected
    else:
        with pytest.raises(expected) as raised:
            parse_timespan_ticks(text)
        assert len(str(raised.value)) < 300  # the error lands in elapsed_time_error: not a megabyte
    assert time.perf_counter() - started < 1.0  # typically a few milliseconds


@given(st.integers(min_value=MIN_TICKS, max_value=MAX_TICKS))
def test_constant_format_round_trips(ticks: int) -> None:
    assert parse_timespan_ticks(format_timespan(ticks)) == ticks


@given(st.integers(min_value=-(MAX_TICKS), max_value=MAX_TICKS), st.booleans())
def test_fast_path_and_general_path_agree(ticks: int, general: bool) -> None:
    """A leading space skips the parser's fast path for common strings: both paths give one answer."""
    text = format_timespan(ticks)
    head, dot, rest = text.partition(".")
    if general and dot and ":" not in head:  # the g style's ':' after the days
        text = f"{head}:{rest}"
    assert parse_timespan_ticks(text) == parse_timespan_ticks(" " + text) == ticks


@given(st.integers(min_value=-(MAX_TICKS), max_value=MAX_TICKS), st.lists(st.integers(0, 40), min_size=4, max_size=4))
def test_leading_zeros_never_change_a_whole_number_field(ticks: int, zeros: list[int]) -> None:
    sign, days, hours, minutes, seconds, fraction = CONSTANT.fullmatch(format_timespan(ticks)).groups()
    pad = ["0" * count for count in zeros]
    day_part = f"{pad[0]}{days}." if days else ""
    text = f"{sign}{day_part}{pad[1]}{hours}:{pad[2]}{minutes}:{pad[3]}{seconds}{fraction or ''}"
    assert parse_timespan_ticks(text) == ticks


@given(
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10_000)),
    st.integers(min_value=0, max_value=7),
    st.booleans(),
)
def test_emulator_formats_parse_to_the_same_duration(duration: timedelta, digits: int, general: bool) -> None:
    """Every string the emulator prints (c and g styles, 0-7 digits) parses back exactly."""
    text = format_elapsed(duration, digits, general)
    micros = duration // timedelta(microseconds=1)
    truncated_ticks = (micros * 10) // 10 ** (7 - digits) * 10 ** (7 - digits)
    assert parse_timespan_ticks(text) == truncated_ticks
    if text[0] != "0" or ":" in text:
        assert parse_timespan_ticks("-" + text) == -truncated_ticks


@given(st.integers(0, 23), st.integers(0, 59), st.integers(1, 12), st.integers(1, 268435455))
def test_long_fractions_with_a_leading_zero_round_half_away_from_zero(h: int, m: int, zeros: int, digits: int) -> None:
    """Independent oracle: Decimal rounding of the written fraction to seven places."""
    fraction = "0" * zeros + str(digits)
    expected = int((Decimal("0." + fraction) * TICKS_PER_SECOND).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert parse_timespan_ticks(f"{h}:{m}:.{fraction}") == (h * 3600 + m * 60) * TICKS_PER_SECOND + expected


@given(st.sampled_from(["\t", "\n", "\v", "\f", "\r", " ", "\x85", "\xa0", "\u2000", "\u2028", "\u3000"]), st.integers(1, 5))
def test_dotnet_white_space_is_trimmed(char: str, count: int) -> None:
    assert parse_timespan_ticks(char * count + "1:2:3" + char * count) == 3723 * TICKS_PER_SECOND


@given(st.sampled_from(["\x1c", "\x1d", "\x1e", "\x1f", "\u180e", "\u200b", "\ufeff", "\x00"]))
def test_other_space_like_characters_are_not(char: str) -> None:
    for text in (char + "1:2:3", "1:2:3" + char, " " + char + "1:2:3"):
        with pytest.raises(TimeSpanFormatError):
            parse_timespan_ticks(text)


@given(st.text(max_size=40))
def test_arbitrary_text_gives_ticks_or_one_of_two_errors(text: str) -> None:
    try:
        ticks = parse_timespan_ticks(text)
    except (TimeSpanFormatError, TimeSpanOverflowError):
        return
    assert MIN_TICKS <= ticks <= MAX_TICKS


@given(st.integers(0, 23), st.integers(60, 99), st.integers(0, 59))
def test_out_of_range_minutes_always_overflow(hours: int, minutes: int, seconds: int) -> None:
    with pytest.raises(TimeSpanOverflowError):
        parse_timespan_ticks(f"{hours}:{minutes}:{seconds}")
