"""Which UP jobs to fetch: parse the configured ID list and jobs CSV, rejecting unsafe IDs.

IDs are interpolated into URL paths, so only ``[A-Za-z0-9_-]{1,128}`` is accepted, untrimmed:
``" a"``, ``"../x"``, ``"a/b"`` or ``"%2F"`` are reported with their file and line and are
never requested. Pure functions; the caller decides how to show the problems.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TextIO


class JobsFileError(ValueError):
    """The jobs file as a whole cannot be read; the message says what and where (file:line)."""


SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
CSV_COLUMNS = ("workflow_id", "job_id")
OPTIONAL_CSV_COLUMNS = ("space_id",)


@dataclass(frozen=True, order=True, slots=True)
class JobRef:
    """One job to fetch: the three path IDs of the UP job endpoint."""

    space_id: str
    workflow_id: str
    job_id: str

    def path(self) -> str:
        return f"{self.space_id}/workflows/{self.workflow_id}/jobs/{self.job_id}"


@dataclass(frozen=True)
class ConfigProblem:
    """A configured job line that was not used, and where it came from."""

    location: str
    message: str
    is_error: bool = True

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class JobList:
    """The deduplicated jobs to fetch plus every line that could not be used."""

    jobs: list[JobRef]
    problems: list[ConfigProblem]

    @property
    def has_errors(self) -> bool:
        return any(problem.is_error for problem in self.problems)


def unsafe_reason(name: str, value: object) -> str | None:
    """Why ``value`` may not go into a URL path, or None when it is safe."""
    if not isinstance(value, str) or value == "":
        return f"{name} is missing"
    if len(value) > 128:
        return f"{name} is {len(value)} characters long (at most 128 allowed)"
    if not SAFE_ID.fullmatch(value):
        return f"{name} {_preview(value)} has characters outside [A-Za-z0-9_-]"
    return None


def _preview(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


Parsed = tuple[str | int, JobRef] | ConfigProblem
"""A usable line (its location: a config entry's name, or a line number of the jobs file) and
its job, or the problem with it. Line numbers stay ints until a problem needs the text: a
million-line file must not hold a million location strings."""


def _make_ref(space_id: object, workflow_id: object, job_id: object, location: str | int, source_name: str = "") -> Parsed:
    reasons = [
        reason
        for reason in (
            unsafe_reason("space_id", space_id),
            unsafe_reason("workflow_id", workflow_id),
            unsafe_reason("job_id", job_id),
        )
        if reason
    ]
    if reasons:
        where = f"{source_name}:{location}" if isinstance(location, int) else location
        return ConfigProblem(where, "; ".join(reasons) + " (line not requested)")
    # workflow and space ids repeat on every line: one string object each, not one per line
    return location, JobRef(sys.intern(str(space_id)), sys.intern(str(workflow_id)), str(job_id))


def parse_config_jobs(entries: Sequence[object], default_space_id: str | None) -> Iterable[Parsed]:
    """Parse the ``jobs`` config list of ``"workflow_id/job_id"`` strings."""
    for index, entry in enumerate(entries):
        location = f"config sources.up_jobs.jobs[{index}]"
        if not isinstance(entry, str) or entry.count("/") != 1:
            yield ConfigProblem(location, f"expected 'workflow_id/job_id', got {_preview(str(entry))}")
            continue
        workflow_id, job_id = entry.split("/")
        yield _make_ref(default_space_id, workflow_id, job_id, location)


def parse_jobs_csv(text: str | TextIO, source_name: str, default_space_id: str | None) -> Iterable[Parsed]:
    """Parse a jobs CSV (header ``workflow_id,job_id[,space_id]``); line 1 is the header.

    ``text`` may be the whole text or an open file, read line by line (a 1,000,000-line file
    is never held in memory as one string)."""
    lines = io.StringIO(text.removeprefix("\ufeff"), newline="") if isinstance(text, str) else text
    reader = csv.reader(lines)
    header = next(_rows(reader, source_name), None)
    if header is None:
        yield ConfigProblem(f"{source_name}:1", "file is empty; expected header 'workflow_id,job_id'")
        return
    columns = [name.strip().removeprefix("\ufeff") for name in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    if missing:
        yield ConfigProblem(f"{source_name}:1", f"header lacks column(s) {', '.join(missing)}")
        return
    unknown = [name for name in columns if name not in CSV_COLUMNS + OPTIONAL_CSV_COLUMNS]
    if unknown:
        yield ConfigProblem(f"{source_name}:1", f"unknown column(s) ignored: {', '.join(unknown)}", is_error=False)
    width = len(columns)
    workflow_at, job_at = columns.index("workflow_id"), columns.index("job_id")
    space_at = columns.index("space_id") if "space_id" in columns else None
    for row in _rows(reader, source_name):
        line = reader.line_num
        if not row or all(cell == "" for cell in row):
            continue
        if len(row) > width:
            yield ConfigProblem(f"{source_name}:{line}", f"expected at most {width} fields, got {len(row)}")
            continue
        if len(row) < width:
            row = row + [""] * (width - len(row))
        space_id = (row[space_at] if space_at is not None else "") or default_space_id
        yield _make_ref(space_id, row[workflow_at], row[job_at], line, source_name)


def _rows(reader: Any, source_name: str) -> Iterator[list[str]]:
    """The CSV reader's rows; a line it cannot parse (a field over csv's 131,072-char limit, a NUL)
    stops the file with its line number rather than a bare csv.Error."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise JobsFileError(f"{source_name}:{reader.line_num}: {error}") from None
        yield row


@contextmanager
def open_jobs_file(path: Path) -> Iterator[TextIO]:
    """The file as text lines: UTF-8 (BOM optional) or UTF-16 with a BOM; anything else is named."""
    if path.is_dir():
        raise JobsFileError(f"jobs file {path} is a directory, not a CSV file")
    if not path.exists():
        raise JobsFileError(f"jobs file {path} does not exist")
    try:
        with open(path, "rb") as probe:
            start = probe.read(4096)
        encoding = "utf-16" if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
        if encoding != "utf-16" and b"\x00" in start:
            raise JobsFileError(f"jobs file {path} looks like UTF-16 without a BOM; save it as UTF-8")
        handle = open(path, encoding=encoding, errors="strict" if encoding == "utf-16" else "replace", newline="")
    except OSError as error:
        raise JobsFileError(f"jobs file {path} cannot be read: {error.strerror or error}") from None
    with handle:
        try:
            yield handle
        except UnicodeDecodeError as error:
            raise JobsFileError(f"jobs file {path} starts with a UTF-16 BOM but is not valid UTF-16: {error.reason}") from None


def read_jobs_file(path: Path) -> str:
    """The whole text (small files, tests); runs read it line by line through :func:`open_jobs_file`."""
    with open_jobs_file(path) as handle:
        return handle.read()


def build_job_list(
    config_jobs: Sequence[object] | None,
    jobs_file: str | Path | None,
    default_space_id: str | None,
) -> JobList:
    """Combine the config list and the CSV into one deduplicated, validated job list."""
    config_items = parse_config_jobs(config_jobs, default_space_id) if config_jobs else ()
    if not jobs_file:
        return dedupe(config_items)
    path = Path(jobs_file)
    with open_jobs_file(path) as lines:
        return dedupe(itertools.chain(config_items, parse_jobs_csv(lines, str(path), default_space_id)), str(path))


def dedupe(items: Iterable[Parsed], source_name: str = "") -> JobList:
    """Keep the first occurrence of each job; later ones are reported, not requested twice."""
    first_seen: dict[JobRef, str | int] = {}
    problems: list[ConfigProblem] = []

    def where(location: str | int) -> str:
        return f"{source_name}:{location}" if isinstance(location, int) else location

    for item in items:
        if isinstance(item, ConfigProblem):
            problems.append(item)
            continue
        location, ref = item
        if ref in first_seen:
            message = f"duplicate of {where(first_seen[ref])}, ignored"
            problems.append(ConfigProblem(where(location), message, is_error=False))
        else:
            first_seen[ref] = location
    return JobList(list(first_seen), problems)


@dataclass(frozen=True)
class Shard:
    """``index/count``: this worker's deterministic share of the job list (0-based index)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"1/3"`` → Shard(1, 3); indexes run 0..count-1, like Airflow's map_index."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise ValueError(f"--shard takes i/n with 0 <= i < n, e.g. 0/3; got {text!r}") from None
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"--shard takes i/n with 0 <= i < n, e.g. 0/3; got {text!r}")
        return shard

    def owns(self, ref: JobRef) -> bool:
        """Stable across processes, machines and Python versions (not Python's salted hash())."""
        digest = hashlib.blake2b(ref.job_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    @property
    def suffix(self) -> str:
        return f"shard_{self.index}_of_{self.count}"
