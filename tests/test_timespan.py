"""The .NET TimeSpan grammar (TimeSpan.Parse, invariant culture), table-driven and property-based."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.emulator.generator import format_elapsed
from pipeline.timespan import (
    MAX_TICKS,
    TICKS_PER_SECOND,
    TimeSpanError,
    format_timespan,
    parse_timespan_seconds,
    parse_timespan_ticks,
)

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
    ("23:0:0", 82800.0),
    ("10:0", 36000.0),  # two parts are hours:minutes
    ("0:10", 600.0),
    ("0.12:00", 43200.0),
    ("10.12:00", 10 * 86400 + 43200.0),
    ("6:12:14:45", 6 * 86400 + 12 * 3600 + 14 * 60 + 45.0),  # general long form d:hh:mm:ss
    ("6:12:14:45.3448", 6 * 86400 + 12 * 3600 + 14 * 60 + 45.3448),
    ("24:00:00", 24 * 86400.0),  # .NET reads an out-of-range hour in a 3-part string as days
    ("25:12:30", 25 * 86400 + 12 * 3600 + 30 * 60.0),
    ("  1:23:45\t", 5025.0),  # surrounding white space
    ("-1:00:00", -3600.0),
    ("-3.04:05:06.7", -(3 * 86400 + 4 * 3600 + 5 * 60 + 6.7)),
    ("00:00:00.1234567", 0.1234567),  # seven fraction digits = ticks
    ("10675199.02:48:05.4775807", MAX_TICKS / TICKS_PER_SECOND),  # TimeSpan.MaxValue
]

REJECTED = [
    "1:2:3.12345678",  # eight fraction digits
    "0:60:0",  # minutes 60
    "0:0:60",  # seconds 60
    "24:30:00",  # as days:hours:minutes the hours are out of range
    "6:34:14:45",  # hours 34 in the 4-part form
    "10:",
    ":10",
    "10:20:",
    ".123",
    "10.",
    "10.12",  # days.hours without minutes
    "abc",
    "",
    "   ",
    "1:23:45 extra",
    "1:2:3:4:5",
    "10675200",  # more days than TimeSpan holds
    "1," "5",
    "1:23:4５",  # a full-width digit is not an ASCII digit
    "9" * 10_000,  # hostile length
]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED)
def test_accepted_forms(text: str, seconds: float) -> None:
    assert parse_timespan_seconds(text) == pytest.approx(seconds, abs=1e-7)


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_forms(text: str) -> None:
    with pytest.raises(TimeSpanError):
        parse_timespan_ticks(text)


@pytest.mark.parametrize("value", [None, 12, 1.5, ["1:00"]])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(TimeSpanError):
        parse_timespan_ticks(value)  # type: ignore[arg-type]


@given(st.integers(min_value=-(MAX_TICKS), max_value=MAX_TICKS))
def test_constant_format_round_trips(ticks: int) -> None:
    assert parse_timespan_ticks(format_timespan(ticks)) == ticks


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


@given(st.text(max_size=40))
def test_never_crashes_on_arbitrary_text(text: str) -> None:
    try:
        parse_timespan_ticks(text)
    except TimeSpanError:
        pass


@given(
    st.integers(0, 23), st.integers(60, 99), st.integers(0, 59)
)
def test_out_of_range_minutes_always_rejected(hours: int, minutes: int, seconds: int) -> None:
    with pytest.raises(TimeSpanError):
        parse_timespan_ticks(f"{hours}:{minutes}:{seconds}")
