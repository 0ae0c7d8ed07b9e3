"""Regenerate tests/data/timespan_dotnet_corpus.jsonl: .NET's own answers for thousands of strings.

Every row is one input string and what ``TimeSpan.Parse(s, CultureInfo.InvariantCulture)``
returned on a real .NET runtime: ``{"input": s, "ticks": n}`` or ``{"input": s, "error":
"FormatException" | "OverflowException"}``, plus ``source`` (which family generated it).
tests/test_timespan.py checks pipeline/timespan.py against every row.

The oracle is .NET Core 3.1 from the ``dotnetcore2`` wheel: it passes every invariant-culture
``TimeSpan.Parse`` case of today's dotnet/runtime TimeSpanTests.cs (checked below, on each run),
so it stands for modern .NET. Mono (Debian's ``mono-mcs``, which also compiles the probe) is run
beside it; where it answers differently the row keeps Mono's answer in ``mono`` (it predates the
.NET Core fraction rounding). A TimeSpanTests.cs case on which the oracle disagrees with the test
file would be recorded with the test file's answer and an ``override`` note; so far there are none.

    apt-get install -y mono-mcs          # mcs + mono
    python3 -m venv /tmp/dn && /tmp/dn/bin/pip install dotnetcore2
    python scripts/timespan_corpus.py --dotnet /tmp/dn/lib/python3.*/site-packages/dotnetcore2/bin/dotnet

The strings are generated from a fixed seed, so a rerun rewrites the same file.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE_SOURCE = Path(__file__).resolve().parent / "TimeSpanProbe.cs"
CORPUS = ROOT / "tests" / "data" / "timespan_dotnet_corpus.jsonl"
META = ROOT / "tests" / "data" / "timespan_dotnet_corpus.meta.json"
SEED = 20261130

TICKS_PER_MS = 10_000
MAX_TICKS = 2**63 - 1


def span(days: int = 0, hours: int = 0, minutes: int = 0, seconds: int = 0, ms: int = 0) -> int:
    """Ticks of ``new TimeSpan(days, hours, minutes, seconds, milliseconds)``."""
    return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000 * TICKS_PER_MS + ms * TICKS_PER_MS


FORMAT = "FormatException"
OVERFLOW = "OverflowException"

# dotnet/runtime src/libraries/System.Runtime/tests/System.Runtime.Tests/System/TimeSpanTests.cs:
# the inputs that reach TimeSpan.Parse with the invariant culture (or with null, which is the
# invariant culture's grammar too), with the answer the test file asserts.
_PARSE_VALID: list[tuple[str, int]] = [
    ("       12:24:02", span(0, 12, 24, 2)),
    ("12:24:02      ", span(0, 12, 24, 2)),
    ("     12:24:02      ", span(0, 12, 24, 2)),
    ("0", 0),
    ("12:24", span(0, 12, 24)),
    ("12:24:02", span(0, 12, 24, 2)),
    ("12.03:04", span(12, 3, 4)),
    ("12:24:02.01", span(0, 12, 24, 2, 10)),
    ("1:1:1.0", span(0, 1, 1, 1)),
    ("1:1:1.0000000", span(0, 1, 1, 1)),
    ("1:1:1.1", span(0, 1, 1, 1, 100)),
    ("1:1:1.01", span(0, 1, 1, 1, 10)),
    ("1:1:1.001", span(0, 1, 1, 1, 1)),
    ("1:1:1.0001", 36610001000),
    ("1:1:1.00001", 36610000100),
    ("1:1:1.000001", 36610000010),
    ("1:1:1.0000001", 36610000001),
    ("1.12:24:02", span(1, 12, 24, 2)),
    ("1:12:24:02", span(1, 12, 24, 2)),
    ("01.23:45:.67", span(1, 23, 45, 0, 670)),
    ("1.12:24:02.999", span(1, 12, 24, 2, 999)),
    ("1:1:.1", 36601000000),
    ("1:1:.01", 36600100000),
    ("1:1:.001", 36600010000),
    ("1:1:.0001", 36600001000),
    ("1:1:.00001", 36600000100),
    ("1:1:.000001", 36600000010),
    ("1:1:.0000001", 36600000001),
    ("10675199", 9223371936000000000),
    ("10675199:00:00", 9223371936000000000),
    ("10675199:02:00:00", 9223372008000000000),
    ("10675199:02:48:00", 9223372036800000000),
    ("10675199:02:48:05", 9223372036850000000),
    ("10675199:02:48:05.4775", 9223372036854775000),
    ("00:00:59", span(0, 0, 0, 59)),
    ("00:59:00", span(0, 0, 59)),
    ("23:00:00", span(0, 23)),
    ("24:00:00", span(24)),
]
# Parse_ValidWithOffsetCount_TestData: the spans it slices out of longer strings.
_PARSE_SLICES: list[tuple[str, int]] = [
    ("2:24:02", span(0, 2, 24, 2)),
    ("2:24:0", span(0, 2, 24)),
    ("1:1:.0", 36600000000),
    ("4:00:00", span(0, 4)),
]
_PARSE_INVALID: list[tuple[str, str]] = [
    ("", FORMAT),
    ("-", FORMAT),
    ("garbage", FORMAT),
    ("12/12/12", FORMAT),
    ("00:", FORMAT),
    ("00:00:-01", FORMAT),
    ("\x0012:34:56", FORMAT),
    ("1\x002:34:56", FORMAT),
    ("12\x00:34:56", FORMAT),
    ("00:00::00", FORMAT),
    ("00:00:00:", FORMAT),
    ("00:00:00:00:00:00:00:00", FORMAT),
    ("1:1:1.99999999", OVERFLOW),
    ("2147483647", OVERFLOW),
    ("2147483648", OVERFLOW),
    ("10675200", OVERFLOW),
    ("10675200:00:00", OVERFLOW),
    ("10675199:03:00:00", OVERFLOW),
    ("10675199:02:49:00", OVERFLOW),
    ("10675199:02:48:06", OVERFLOW),
    ("-10675199:02:48:06", OVERFLOW),
    ("10675199:02:48:05.4776", OVERFLOW),
    ("-10675199:02:48:05.4776", OVERFLOW),
    ("00:00:60", OVERFLOW),
    ("00:60:00", OVERFLOW),
    ("24:00", OVERFLOW),
]
# ParseExact_Valid_TestData with the standard formats c/t/T/g/G: the test also asserts that
# TimeSpan.Parse(input, InvariantCulture) gives the same value.
_PARSE_EXACT_STANDARD: list[tuple[str, int]] = [
    ("12:24:02", span(0, 12, 24, 2)),
    ("1.12:24:02", span(1, 12, 24, 2)),
    ("-01.07:45:16.999", -span(1, 7, 45, 16, 999)),
    ("12", span(12)),
    ("-12", -span(12)),
    ("12:34", span(0, 12, 34)),
    ("-12:34", -span(0, 12, 34)),
    ("1:2:.3", span(0, 1, 2, 0, 300)),
    ("-1:2:.3", -span(0, 1, 2, 0, 300)),
    ("12:24:02.123", span(0, 12, 24, 2, 123)),
    ("-12:24:02.123", -span(0, 12, 24, 2, 123)),
    ("1:2:3:.4", span(1, 2, 3, 0, 400)),
    ("-1:2:3:.4", -span(1, 2, 3, 0, 400)),
    ("1:12:24:02", span(1, 12, 24, 2)),
    ("-01:07:45:16.999", -span(1, 7, 45, 16, 999)),
    ("1:12:24:02.243", span(1, 12, 24, 2, 243)),
]
# ParseDifferentLengthFractionWithLeadingZerosData: .NET Core's fraction rounding.
_FRACTION_ROUNDING: list[tuple[str, int]] = [
    ("00:00:00.00000001", 0),
    ("00:00:00.00000005", 1),
    ("00:00:00.09999999", 1_000_000),
    ("00:00:00.0268435455", 268435),
    ("00:00:00.01", 100_000),
    ("0:00:00.01000000", 100_000),
    ("0:00:00.010000000", 100_000),
    ("0:00:00.0123456", 123456),
    ("0:00:00.00123456", 12346),
    ("0:00:00.00000098", 10),
    ("0:00:00.00000099", 10),
]


def dotnet_test_cases() -> dict[str, int | str]:
    """TimeSpanTests.cs's invariant-culture Parse cases: input -> ticks or exception name."""
    cases: dict[str, int | str] = {}
    for text, ticks in _PARSE_VALID + _PARSE_SLICES:
        cases.setdefault(text, ticks)
        if text and not text[0].isspace():  # the test also parses "-" + input
            cases.setdefault("-" + text, -ticks)
    for text, error in _PARSE_INVALID:
        cases.setdefault(text, error)
    for text, ticks in _PARSE_EXACT_STANDARD + _FRACTION_ROUNDING:
        cases.setdefault(text, ticks)
    return cases


# ---------------------------------------------------------------------------------------------
# Generated families. Each yields strings; the union is deduplicated in order.

NET_WHITESPACE = (
    [chr(c) for c in range(0x09, 0x0E)] + [" ", "\x85", "\xa0", "\u1680"]
    + [chr(c) for c in range(0x2000, 0x200B)] + ["\u2028", "\u2029", "\u202f", "\u205f", "\u3000"]
)
# Look like white space or are treated as such elsewhere (Python's str.strip, regex \s, C1):
NOT_NET_WHITESPACE = (
    [chr(c) for c in range(0x00, 0x09)] + [chr(c) for c in range(0x0E, 0x20)] + ["\x7f", "\x80", "\x84", "\x86", "\x9f"]
    + ["\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\ufffe", "\ud800", "\udc00"]
)
UNICODE_ZEROS = [0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0E50, 0x1040, 0xFF10, 0x1D7CE, 0x1D7D8]
DIGIT_LOOKALIKES = ["\u00b9", "\u00b2", "\u00b3", "\u2070", "\u2460", "\u2081", "\u216b"]

CANONICAL_FORMS = [
    "{d}",
    "{h}:{m}",
    "{h}:{m}:{s}",
    "{d}.{h}:{m}",
    "{h}:{m}:.{f}",
    "{h}:{m}:{s}.{f}",
    "{d}.{h}:{m}:{s}",
    "{d}:{h}:{m}:{s}",
    "{d}.{h}:{m}:.{f}",
    "{d}:{h}:{m}:.{f}",
    "{d}.{h}:{m}:{s}.{f}",
    "{d}:{h}:{m}:{s}.{f}",
]
SEPARATORS = [".", ":", ":.", "..", "::", ".:", ",", " ", "/", "-", ": ", " :", ":-", "e", "\u0660", "\u00a0", "\x1c"]
SIGNS = ["", "", "", "-", "-", "+", "--", "- ", "-\u00a0", "\u2212", " -"]


def _digits(rng: random.Random, low: int, high: int) -> str:
    return str(rng.randint(low, high))


def _with_zeros(rng: random.Random, text: str) -> str:
    """Sometimes pad with leading zeros, sometimes very many (the tokenizer skips them)."""
    roll = rng.random()
    if roll < 0.6:
        return text
    if roll < 0.9:
        return "0" * rng.randint(1, 3) + text
    return "0" * rng.choice([29, 30, 31, 32, 33, 40, 64]) + text


def _fraction(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 7)))
    if roll < 0.8:  # leading zeros, then up to 9 significant digits: rounding territory
        zeros = rng.randint(1, 9)
        return "0" * zeros + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 9)))
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 11)))


def _field(rng: random.Random, name: str) -> str:
    if name == "d":
        value = rng.choice(
            [_digits(rng, 0, 9), _digits(rng, 0, 999), _digits(rng, 0, 10675200), "10675199", "10675200", _digits(rng, 0, 300000000)]
        )
    elif name == "h":
        value = rng.choice([_digits(rng, 0, 23), _digits(rng, 0, 23), _digits(rng, 20, 30), _digits(rng, 0, 99)])
    elif name in ("m", "s"):
        value = rng.choice([_digits(rng, 0, 59), _digits(rng, 0, 59), _digits(rng, 55, 65), _digits(rng, 0, 999)])
    else:
        return _fraction(rng)
    return _with_zeros(rng, value)


def canonical_forms(rng: random.Random, per_form: int) -> Iterator[str]:
    """Every documented and general form with in- and out-of-range fields, both signs."""
    for form in CANONICAL_FORMS:
        for _ in range(per_form):
            text = form.format(**{name: _field(rng, name) for name in "dhmsf"})
            yield rng.choice(["", "", "-"]) + text


def structures(rng: random.Random, count: int) -> Iterator[str]:
    """Random token sequences: 0-7 numbers joined by mostly-valid, sometimes odd separators."""
    for _ in range(count):
        parts = [rng.choice(SIGNS)]
        numbers = rng.randint(0, 7)
        for index in range(numbers):
            parts.append(_field(rng, rng.choice("dhmsf")))
            if index < numbers - 1:
                parts.append(rng.choice([":", ":", ":", ".", ".", ":."] + SEPARATORS))
        if rng.random() < 0.1:
            parts.append(rng.choice(SEPARATORS))
        yield "".join(parts)


def small_alphabet(rng: random.Random, count: int) -> Iterator[str]:
    """Short strings over the characters that matter: finds the grammar's corners by brute force."""
    alphabet = "0011223455699::::....-  "
    for _ in range(count):
        yield "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))


def fractions() -> Iterator[str]:
    """8+ digit fractions, leading zeros, midpoints, the 9999999 and 2**28 limits."""
    significant = ["1", "4", "5", "6", "9", "45", "49", "5", "50", "51", "95", "99", "4999", "5000", "9995", "123456", "9999999",
                   "10000000", "12345678", "99999999", "999999999", "268435455", "268435456", "2684354550", "49999999", "50000001"]
    for zeros in range(0, 12):
        for digits in significant:
            fraction = "0" * zeros + digits
            yield f"0:00:00.{fraction}"
            yield f"-1:1:.{fraction}"
            yield f"1.23:59:59.{fraction}"
    for length in range(1, 15):
        yield "0:0:0." + "9" * length
        yield "0:0:0." + "0" * length
        yield "0:0:0." + "0" * (length - 1) + "5"
        yield "0:0:0." + "0" * (length - 1) + "45"
    for zeros in (20, 31, 32, 33, 100, 1000):
        yield "0:0:0." + "0" * zeros + "5"
        yield "0:0:0." + "0" * zeros
        yield "0:0:." + "0" * zeros + "1"


def bounds() -> Iterator[str]:
    """Around TimeSpan.MaxValue / MinValue in every form that can reach them."""
    for sign in ("", "-"):
        for day_sep in (".", ":"):
            for rest in ("02:48:05.4775807", "02:48:05.4775808", "02:48:05.4775809", "02:48:05.47758", "02:48:05.477581",
                         "02:48:05.47758075", "02:48:05.47758085", "02:48:05.04775807", "02:48:05", "02:48:06", "02:48",
                         "02:49", "03:00", "02:48:.4775807", "02:48:.4775808", "02:48:.9999999", "02:48:05.9999999",
                         "23:59:59.9999999", "00:00:00.0000001", "02:48:05.47758070"):
                yield f"{sign}10675199{day_sep}{rest}"
                yield f"{sign}10675200{day_sep}{rest}"
                yield f"{sign}010675199{day_sep}{rest}"
        for days in ("10675198", "10675199", "10675200", "0000000010675199", "268435455", "268435456", "2147483647"):
            yield sign + days
            yield f"{sign}{days}:00:00"
            yield f"{sign}{days}.00:00"
            yield f"{sign}{days}:23:59:59.9999999"


def whitespace() -> Iterator[str]:
    """.NET trims char.IsWhiteSpace only: not U+001C-U+001F, U+180E, U+200B or U+FEFF."""
    for char in NET_WHITESPACE + NOT_NET_WHITESPACE:
        yield char + "1:2:3"
        yield "1:2:3" + char
        yield char + "-1.02:03" + char
        yield "1" + char + ":2"
        yield "-" + char + "1"
        yield char * 3
        yield char + "0" + char
    yield " \t\r\n\v\f1:2:3\u3000\u2028\u2029"
    yield "\x1c\x1d\x1e\x1f"
    yield " \x1f 1:2:3"


def unicode_digits() -> Iterator[str]:
    """Only ASCII 0-9 are digits to the tokenizer; other scripts' digits are separators."""
    for zero in UNICODE_ZEROS:
        def to_script(text: str, zero: int = zero) -> str:
            return "".join(chr(zero + int(c)) if c.isdigit() else c for c in text)

        for text in ("12:34:56", "1", "1.02:03:04.5"):
            yield to_script(text)
            yield text[:-1] + to_script(text[-1])
            yield to_script(text[0]) + text[1:]
        yield "1" + chr(zero) + ":2"
    for char in DIGIT_LOOKALIKES:
        yield char
        yield "1:2:" + char
        yield char + ":2"


def long_runs() -> Iterator[str]:
    """Digit runs of any length: leading zeros never overflow, 2**28 and up does."""
    for zeros in (0, 1, 9, 31, 32, 33, 34, 63, 64, 65, 200, 5000):
        pad = "0" * zeros
        yield pad
        yield pad + "1"
        yield "-" + pad + "7"
        yield f"{pad}23:{pad}59:{pad}59.{pad}1"
        yield f"{pad}1.{pad}2:{pad}3"
        yield pad + "268435455"
        yield pad + "268435456"
    for length in (9, 10, 11, 20, 32, 33, 34, 100, 1000):
        yield "1" * length
        yield "1:" + "1" * length
        yield "0:0:0." + "1" * length
        yield "1" * length + ":00:00"


def empty_pieces() -> Iterator[str]:
    """Missing numbers, doubled, leading and trailing separators."""
    yield from [
        ":", ".", "::", "..", ":.", ".:", "-:", "-.", "1:", ":1", "1.", ".1", "-.1", "1:.", "1:2:", "1:2:.", ":2:3",
        "1::3", "1..2", "1.:2", "1:.2", "1:2.", "1:2:3.", "1:2:3:", "1.2:3:", "1.2:3:.", ".1:2", "1.2.3", "1:2:3:4:5",
        "1:2:3:4.5", "1.2:3:4:5", "1.2.3:4", "1:2:3.4.5", "1:2:3:4:5:6", "1.2:3:4.5.6", "0:0:0:0:0:0", "-0", "-00:00",
        "--1", "-+1", "+-1", "1-", "1:2-", "1 2", "1:2 3", "1:2:3 .4", "1:2:3. 4", "1.2: 3", "  -  1", "-  1", "- 1",
        "1:2:3.4:5", "1:2:.3.4", "1:2::.3", "1:2:..3", "1.2:3::.4", "1:2:3:.", ".:.", ":::::", ".....", "-" * 12,
    ]


def emulator_strings(rng: random.Random, count: int) -> Iterator[str]:
    """What pipeline.emulator prints (c and g styles, 0-7 fraction digits): UP-shaped values."""
    from datetime import timedelta

    sys.path.insert(0, str(ROOT))
    from pipeline.emulator.generator import format_elapsed

    for _ in range(count):
        duration = timedelta(microseconds=rng.choice([rng.randint(0, 10**8), rng.randint(0, 10**12), rng.randint(0, 10**16)]))
        yield format_elapsed(duration, rng.randint(0, 7), rng.random() < 0.5)


def generate() -> tuple[list[str], dict[str, str]]:
    """All inputs in a fixed order, and the family each first came from."""
    rng = random.Random(SEED)
    families: list[tuple[str, Iterator[str]]] = [
        ("TimeSpanTests.cs", iter(dotnet_test_cases())),
        ("fraction", fractions()),
        ("bounds", bounds()),
        ("whitespace", whitespace()),
        ("unicode-digits", unicode_digits()),
        ("long-runs", long_runs()),
        ("empty-pieces", empty_pieces()),
        ("canonical", canonical_forms(rng, 260)),
        ("structure", structures(rng, 2500)),
        ("small-alphabet", small_alphabet(rng, 2500)),
        ("emulator", emulator_strings(rng, 400)),
    ]
    source: dict[str, str] = {}
    for family, strings in families:
        for text in strings:
            source.setdefault(text, family)
    return list(source), source


# ---------------------------------------------------------------------------------------------
# Running the probe on real runtimes.


def compile_probe(workdir: Path) -> Path:
    mcs = shutil.which("mcs")
    if mcs is None:
        sys.exit("mcs not found: apt-get install -y mono-mcs")
    exe = workdir / "TimeSpanProbe.exe"
    subprocess.run([mcs, "-nologo", "-optimize+", f"-out:{exe}", str(PROBE_SOURCE)], check=True)
    # Lets the .NET Core host run the Mono-compiled assembly (mscorlib facades forward the types).
    (workdir / "TimeSpanProbe.runtimeconfig.json").write_text(
        json.dumps({"runtimeOptions": {"tfm": "netcoreapp3.1", "framework": {"name": "Microsoft.NETCore.App", "version": "3.1.0"}}})
    )
    return exe


def find_dotnet(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        import dotnetcore2

        return str(Path(dotnetcore2.__file__).parent / "bin" / "dotnet")
    except ImportError:
        pass
    found = shutil.which("dotnet")
    if found is None:
        sys.exit("no .NET runtime: pip install dotnetcore2 (here or in a venv, then --dotnet PATH)")
    return found


def dotnet_env(dotnet: str) -> dict[str, str]:
    """.NET Core 3.1 looks for ICU up to version 6x only; point it at the system's libicu."""
    env = dict(os.environ, DOTNET_ROOT=str(Path(dotnet).parent), DOTNET_CLI_TELEMETRY_OPTOUT="1")
    versions = sorted(
        {Path(p).name.split(".so.")[1] for p in glob.glob("/usr/lib/*/libicuuc.so.*.*") + glob.glob("/usr/lib/libicuuc.so.*.*")}
    )
    if versions:
        env.setdefault("CLR_ICU_VERSION_OVERRIDE", versions[-1])
    else:
        env.setdefault("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
    return env


def run_probe(command: list[str], inputs: list[str], env: dict[str, str] | None = None) -> tuple[str, list[int | str]]:
    """Runtime name and, per input, ticks (int) or the exception's type name (str)."""
    payload = "".join(base64.b64encode(text.encode("utf-16-le", "surrogatepass")).decode() + "\n" for text in inputs)
    done = subprocess.run(command, input=payload, capture_output=True, text=True, env=env, check=True)
    lines = done.stdout.splitlines()
    runtime = lines[0].removeprefix("RUNTIME ")
    answers: list[int | str] = []
    for line in lines[1:]:
        kind, value = line.split(" ", 1)
        answers.append(int(value) if kind == "OK" else value)
    if len(answers) != len(inputs):
        sys.exit(f"{runtime}: {len(answers)} answers for {len(inputs)} inputs\n{done.stderr[-2000:]}")
    return runtime, answers


def fuzz(count: int, seed: int, dotnet: str) -> int:
    """Differential run beyond the committed corpus: new strings, .NET Core's answer vs ours."""
    sys.path.insert(0, str(ROOT))
    from pipeline.timespan import TimeSpanError, parse_timespan_ticks

    rng = random.Random(seed)
    alphabet = list("0123456789:.-+ ,") + NET_WHITESPACE[:3] + ["\x1c", "\u0660", "\u00a0", "\u180e"]
    inputs: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.4:
            inputs.extend(structures(rng, 1))
        elif roll < 0.7:
            inputs.extend(canonical_forms(rng, 1) if rng.random() < 0.2 else small_alphabet(rng, 1))
        else:
            inputs.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))))
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_probe(Path(tmp))
        runtime, answers = run_probe([dotnet, str(exe)], inputs, env=dotnet_env(dotnet))
    names = {"TimeSpanFormatError": FORMAT, "TimeSpanOverflowError": OVERFLOW}
    disagreements = 0
    for text, answer in zip(inputs, answers):
        try:
            ours: int | str = parse_timespan_ticks(text)
        except TimeSpanError as error:
            ours = names.get(type(error).__name__, type(error).__name__)
        if ours != answer:
            disagreements += 1
            if disagreements <= 20:
                print(f"{text!r}: {runtime} {answer}, pipeline.timespan {ours}")
    print(f"{disagreements} of {len(inputs)} strings disagree with {runtime}")
    return 1 if disagreements else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dotnet", help="the dotnet host of .NET Core (default: the dotnetcore2 package's)")
    parser.add_argument("--no-mono", action="store_true", help="do not run Mono beside .NET Core")
    parser.add_argument("--out", type=Path, default=CORPUS)
    parser.add_argument("--fuzz", type=int, metavar="N", help="instead: N fresh random strings, .NET against the parser")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    if args.fuzz:
        return fuzz(args.fuzz, args.seed, find_dotnet(args.dotnet))

    inputs, source = generate()
    expected = dotnet_test_cases()
    with tempfile.TemporaryDirectory() as tmp:
        exe = compile_probe(Path(tmp))
        dotnet = find_dotnet(args.dotnet)
        core_name, core = run_probe([dotnet, str(exe)], inputs, env=dotnet_env(dotnet))
        mono_name, mono = "", list[int | str]()
        if not args.no_mono and shutil.which("mono"):
            mono_name, mono = run_probe(["mono", str(exe)], inputs)

    rows = []
    overrides = 0
    for index, text in enumerate(inputs):
        answer = core[index]
        row: dict[str, object] = {"input": text}
        if text in expected and expected[text] != answer:
            row["override"] = f"TimeSpanTests.cs expects {expected[text]}; {core_name} gave {answer}"
            answer = expected[text]
            overrides += 1
        row["ticks" if isinstance(answer, int) else "error"] = answer
        row["source"] = source[text]
        if mono and mono[index] != answer:
            row["mono"] = mono[index]
        rows.append(row)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=True) + "\n")
    mono_differs = Counter(str(row["source"]) for row in rows if "mono" in row)
    meta = {
        "oracle": core_name,
        "also_run": mono_name or None,
        "rows": len(rows),
        "by_source": dict(Counter(str(row["source"]) for row in rows)),
        "answers": dict(Counter("ticks" if "ticks" in row else str(row["error"]) for row in rows)),
        "timespantests_cases": len(expected),
        "timespantests_disagreements_with_oracle": overrides,
        "mono_disagreements_with_oracle": sum(mono_differs.values()),
        "mono_disagreements_by_source": dict(mono_differs),
        "seed": SEED,
        "regenerate": "python scripts/timespan_corpus.py --dotnet <dotnetcore2>/bin/dotnet (needs mono-mcs)",
    }
    META.write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
