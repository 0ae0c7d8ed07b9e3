"""Which UP jobs to fetch: parse the configured ID list and jobs CSV, rejecting unsafe IDs.

IDs are interpolated into URL paths, so only ``[A-Za-z0-9_-]{1,128}`` is accepted, untrimmed:
``" a"``, ``"../x"``, ``"a/b"`` or ``"%2F"`` are reported with their file and line and are
never requested. Pure functions; the caller decides how to show the problems.
"""

from __future__ import annotations

import array
import codecs
import csv
import hashlib
import io
import itertools
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


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


MAX_PROBLEMS_KEPT = 1000
"""Problem lines kept with their text; the rest are counted (a broken million-line file must not
hold a million messages)."""

LISTING_SCHEMA = pa.schema([
    ("space_id", pa.dictionary(pa.int32(), pa.string())),
    ("workflow_id", pa.dictionary(pa.int32(), pa.string())),
    ("job_id", pa.string()),
    ("position", pa.int64()),
])
"""The job list as the planner joins it: space and workflow IDs repeat on nearly every line, so
they are dictionary-encoded; ``position`` is the line number in the jobs file, or a negative
number for the config list's entries (which come first)."""

_BATCH_ROWS = 100_000
_SAFE_ID_LIST = re.compile(f"(?:{SAFE_ID.pattern},)*")


@dataclass
class JobList:
    """The deduplicated jobs to fetch (an Arrow table, see LISTING_SCHEMA) plus the lines that
    could not be used: the first MAX_PROBLEMS_KEPT of them, and how many there were."""

    listing: pa.Table
    problems: list[ConfigProblem]
    problem_count: int = 0
    error_count: int = 0
    listed: int = field(init=False)
    """How many jobs were listed (kept when the listing is released)."""

    @property
    def has_errors(self) -> bool:
        return self.error_count > 0

    def __post_init__(self) -> None:
        self.listed = self.listing.num_rows

    def __len__(self) -> int:
        return self.listed

    def release_listing(self) -> None:
        """Drop the Arrow listing once planning has read it (tens of MB at a million jobs); the
        counts and problems stay."""
        self.listing = pa.Table.from_batches([], schema=self.listing.schema)  # schema.empty_table() imports pandas

    @property
    def jobs(self) -> list[JobRef]:
        """The jobs as objects, in listing order: for small lists (tests, the demo); a run joins
        the Arrow listing in DuckDB instead."""
        columns = [self.listing.column(name).to_pylist() for name in ("space_id", "workflow_id", "job_id")]
        return [JobRef(*ids) for ids in zip(*columns)]


class _Collector:
    """Collects rows in batches of columns, checks their IDs batch by batch (one regex pass over a
    batch's job IDs; each distinct space and workflow ID once), and keeps the first problems."""

    def __init__(self, source_name: str, shard: "Shard | None") -> None:
        self.source_name, self.shard = source_name, shard
        self.config_names: dict[int, str] = {}
        self.batches: list[pa.RecordBatch] = []
        self.problems: list[tuple[int, ConfigProblem]] = []
        self.problem_count = 0
        self.error_count = 0
        self.hashes: list[np.ndarray] = []
        """Python's hash of each kept row's job ID, batch by batch: finds duplicate candidates."""
        self._start_batch()

    def _start_batch(self) -> None:
        self.positions = array.array("q")
        self.job_ids: list[str] = []
        self.spaces: dict[str | None, int] = {}
        """Each distinct space ID of the batch → its dictionary index; likewise workflows."""
        self.workflows: dict[str, int] = {}
        self.space_at = array.array("i")
        self.workflow_at = array.array("i")

    def where(self, position: int) -> str:
        return self.config_names[position] if position < 0 else f"{self.source_name}:{position}"

    def problem(self, position: int, message: str, is_error: bool = True) -> None:
        self.problem_count += 1
        self.error_count += is_error
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append((position, ConfigProblem(self.where(position), message, is_error)))

    def add(self, position: int, space_id: str | None, workflow_id: str, job_id: str) -> None:
        """One row: its line (or config entry), and its IDs, checked when the batch is full."""
        self.positions.append(position)
        self.job_ids.append(job_id)
        self.space_at.append(self.spaces.setdefault(space_id, len(self.spaces)))
        self.workflow_at.append(self.workflows.setdefault(workflow_id, len(self.workflows)))
        if len(self.positions) >= _BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.positions:
            return
        spaces, workflows = list(self.spaces), list(self.workflows)
        space_at, workflow_at = _int_array(self.space_at, pa.int32()), _int_array(self.workflow_at, pa.int32())
        job_ids = _strings(self.job_ids)
        good_space = [unsafe_reason("space_id", value) is None for value in spaces]
        good_workflow = [unsafe_reason("workflow_id", value) is None for value in workflows]
        good: list[bool] | None = None  # None: every row is good (the usual case)
        if not (all(good_space) and all(good_workflow) and _all_safe(self.job_ids)):
            good = [
                good_space[space] and good_workflow[workflow] and SAFE_ID.fullmatch(job_id) is not None
                for space, workflow, job_id in zip(self.space_at, self.workflow_at, self.job_ids)
            ]
            for index, is_good in enumerate(good):
                if not is_good:  # rare: name each bad line
                    self._report_unsafe(
                        self.positions[index], spaces[self.space_at[index]], workflows[self.workflow_at[index]], self.job_ids[index]
                    )
        batch = pa.RecordBatch.from_arrays(
            [pa.DictionaryArray.from_arrays(space_at, _strings(spaces)),
             pa.DictionaryArray.from_arrays(workflow_at, _strings(workflows)),
             job_ids, _int_array(self.positions, pa.int64())],
            schema=LISTING_SCHEMA,
        )
        if good is not None:
            batch = batch.filter(_bool_array(good))
        kept = self.job_ids if good is None else list(itertools.compress(self.job_ids, good))
        if self.shard is not None:
            owned = [self.shard.owns_id(job_id) for job_id in kept]
            batch = batch.filter(_bool_array(owned))
            kept = list(itertools.compress(kept, owned))
        self.batches.append(batch)
        self.hashes.append(np.fromiter(map(hash, kept), np.int64, len(kept)))
        self._start_batch()

    def _report_unsafe(self, position: int, space_id: object, workflow_id: object, job_id: object) -> None:
        reasons = [reason for reason in (
            unsafe_reason("space_id", space_id),
            unsafe_reason("workflow_id", workflow_id),
            unsafe_reason("job_id", job_id),
        ) if reason]
        self.problem(position, "; ".join(reasons) + " (line not requested)")

    def finish(self) -> JobList:
        self.flush()
        listing = pa.Table.from_batches(self.batches, schema=LISTING_SCHEMA)
        self.batches = []
        listing = self._without_duplicates(listing)
        problems = [problem for _, problem in sorted(self.problems, key=lambda item: item[0])]
        return JobList(listing, problems, self.problem_count, self.error_count)

    def _without_duplicates(self, listing: pa.Table) -> pa.Table:
        """Keep each job's first line; later ones are reported, not requested twice.

        Rows whose job IDs hash alike are the only candidates, found by sorting 8-byte hashes
        (a Python set, or DuckDB's aggregate, of a million IDs costs ~70 MB more); candidates are
        then compared by their full key."""
        hashes = np.concatenate(self.hashes) if self.hashes else np.empty(0, np.int64)
        self.hashes = []
        order = np.argsort(hashes, kind="stable")
        same = hashes[order][1:] == hashes[order][:-1]
        if not same.any():
            return listing
        candidates = np.unique(np.concatenate([order[1:][same], order[:-1][same]]))
        first_seen: dict[tuple[str, str, str], int] = {}
        later: list[int] = []
        for row in listing.take(_int_array(candidates, pa.int64())).to_pylist():  # in listing (= position) order
            key, position = (row["space_id"], row["workflow_id"], row["job_id"]), row["position"]
            if key in first_seen:
                later.append(position)
                self.problem(position, f"duplicate of {self.where(first_seen[key])}, ignored", is_error=False)
            else:
                first_seen[key] = position
        if not later:
            return listing
        return listing.filter(pc.invert(pc.is_in(listing.column("position"), _int_array(array.array("q", later), pa.int64()))))


def _strings(values: Sequence[str | None]) -> pa.Array:
    """An Arrow string array. The usual case (every value an ASCII string) is built from one
    joined buffer: ``pa.array`` on a list of str keeps ~3x the data's size in RSS (measured)."""
    texts = [value for value in values if value is not None]
    if len(texts) == len(values):
        text = "".join(texts)
        data = text.encode("utf-8", "surrogatepass")
        if len(data) == len(text):  # ASCII: character offsets are byte offsets
            offsets = array.array("i", [0])
            offsets.extend(itertools.accumulate(map(len, texts)))
            return pa.StringArray.from_buffers(len(texts), pa.py_buffer(offsets), pa.py_buffer(data))
    return pa.array(values, pa.string())  # rare: not all ASCII


def _int_array(values: array.array | np.ndarray, kind: pa.DataType) -> pa.Array:
    """Zero-copy view of machine integers (``pa.array`` on Python objects imports pandas: ~45 MB)."""
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _bool_array(values: list[bool]) -> pa.Array:
    bits = np.packbits(np.fromiter(values, np.bool_, len(values)), bitorder="little")
    return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])


def _all_safe(job_ids: list[str]) -> bool:
    """Whether every ID is a safe string, in one regex pass over the batch joined by commas
    (a character no ID may contain); Arrow's regex kernel would cost ~45 MB of RSS to start."""
    return _SAFE_ID_LIST.fullmatch(",".join(job_ids) + ",") is not None


def _config_rows(entries: Sequence[object], default_space_id: str | None, collector: _Collector) -> None:
    """The ``jobs`` config list of ``"workflow_id/job_id"`` strings, before the jobs file."""
    for index, entry in enumerate(entries):
        position = index - len(entries)
        collector.config_names[position] = f"config sources.up_jobs.jobs[{index}]"
        if not isinstance(entry, str) or entry.count("/") != 1:
            collector.problem(position, f"expected 'workflow_id/job_id', got {_preview(str(entry))}")
            continue
        workflow_id, job_id = entry.split("/")
        collector.add(position, default_space_id, workflow_id, job_id)


def _csv_rows(text: str | TextIO, default_space_id: str | None, collector: _Collector) -> None:
    """A jobs CSV (header ``workflow_id,job_id[,space_id]``); line 1 is the header.

    ``text`` may be the whole text or an open file, read line by line (a 1,000,000-line file
    is never held in memory as one string)."""
    lines = io.StringIO(text.removeprefix("\ufeff"), newline="") if isinstance(text, str) else text
    reader = csv.reader(lines)
    source_name = collector.source_name
    header = next(_rows(reader, source_name), None)
    if header is None:
        collector.problem(1, "file is empty; expected header 'workflow_id,job_id'")
        return
    columns = [name.strip().removeprefix("\ufeff") for name in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    if missing:
        collector.problem(1, f"header lacks column(s) {', '.join(missing)}")
        return
    unknown = [name for name in columns if name not in CSV_COLUMNS + OPTIONAL_CSV_COLUMNS]
    if unknown:
        collector.problem(1, f"unknown column(s) ignored: {', '.join(unknown)}", is_error=False)
    width = len(columns)
    workflow_at, job_at = columns.index("workflow_id"), columns.index("job_id")
    space_at = columns.index("space_id") if "space_id" in columns else None
    for row in _rows(reader, source_name):
        if len(row) != width:
            if not row or all(cell == "" for cell in row):
                continue
            if len(row) > width:
                collector.problem(reader.line_num, f"expected at most {width} fields, got {len(row)}")
                continue
            row = row + [""] * (width - len(row))
        space_id = (row[space_at] if space_at is not None else "") or default_space_id
        collector.add(reader.line_num, space_id, row[workflow_at], row[job_at])


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
    shard: "Shard | None" = None,
) -> JobList:
    """Combine the config list and the CSV into one deduplicated, checked job list (only
    ``shard``'s share of it when given; problems are reported for every line)."""
    collector = _Collector(str(jobs_file or ""), shard)
    if config_jobs:
        _config_rows(config_jobs, default_space_id, collector)
    if jobs_file:
        with open_jobs_file(Path(jobs_file)) as lines:
            _csv_rows(lines, default_space_id, collector)
    return collector.finish()


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
            raise ValueError(f"shard takes i/n with 0 <= i < n, e.g. 0/3; got {text!r}") from None
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"shard takes i/n with 0 <= i < n, e.g. 0/3; got {text!r}")
        return shard

    def owns(self, ref: JobRef) -> bool:
        return self.owns_id(ref.job_id)

    def owns_id(self, job_id: str) -> bool:
        """Stable across processes, machines and Python versions (not Python's salted hash())."""
        digest = hashlib.blake2b(job_id.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index

    @property
    def suffix(self) -> str:
        return f"shard_{self.index}_of_{self.count}"
