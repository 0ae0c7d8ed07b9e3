"""The files behind one analysis database: a private working copy, dlt's state, a run lock.

DuckDB lets one process write a file only while nobody else has it open, and our users keep
notebooks and CLI sessions open on it all day. So a run never writes the file users open:
it loads into ``<db>.work/work.duckdb`` under an exclusive lock, then publishes a copy with an
atomic rename. A reader that has the old file open keeps seeing the old data; the next
connection sees the new data; nobody ever sees a mix.

The published copy is written in an older DuckDB storage format (``duckdb_storage_version``)
so that the DuckDB CLI, Python packages and JDBC drivers users already have can open it, and
without dlt's staging schema, which only the working copy needs.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import shutil
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator, Mapping, Sequence

import duckdb

from pipeline.names import DATASET_NAME
from pipeline.publish_changes import FULL_COPY_EVERY, PublishedRecord, read_record, update_copy, write_record
from pipeline.settings import DUCKDB_STORAGE_VERSION, ConfigError
from pipeline.sql_quote import identifier, literal

STAGING_SCHEMA = f"{DATASET_NAME}_staging"
"""dlt's merge staging dataset: the working copy needs it, the published file leaves it out."""


def _opens(path: Path) -> bool:
    """False only when DuckDB says the file is not a database it can read (not when it is locked),
    or when the file is shorter than the blocks its header counts: DuckDB opens a file cut short
    (a full disk, a crash before the data reached the disk) and fails only when a query reads a
    block past the end, at every run's load."""
    try:
        with duckdb.connect(str(path), read_only=True) as connection:
            row = connection.execute("select block_size, total_blocks from pragma_database_size()").fetchone()
        return row is None or path.stat().st_size >= DUCKDB_HEADER_BYTES + row[0] * row[1]
    except duckdb.IOException as error:
        return "lock" in str(error).lower()
    except duckdb.Error:
        return False


DUCKDB_HEADER_BYTES = 3 * 4096
"""A DuckDB file's main header and its two database headers, before the first block."""


def _unused(prefix: Path) -> Path:
    """``<prefix>-<UTC time>``, numbered when a path of that name exists (two in one second)."""
    stamped = prefix.with_name(f"{prefix.name}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    candidates = (stamped.with_name(f"{stamped.name}-{number}") for number in itertools.count(2))
    return stamped if not stamped.exists() else next(path for path in candidates if not path.exists())


def _readable_json_object(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_bytes()), dict)
    except (OSError, ValueError):
        return False


class LockHeld(RuntimeError):
    """Another run holds this database's lock."""


class PublishError(RuntimeError):
    """The analysis file could not be replaced; the previous one is unchanged, no temporary is left."""


@dataclass(frozen=True)
class Workspace:
    """Where a run keeps dlt's state and its lock, and for DuckDB the working and published files."""

    state_dir: Path
    db_path: Path | None = None
    """The analysis database users open; None when loading into a shared warehouse."""

    @classmethod
    def for_duckdb(cls, db_path: Path) -> "Workspace":
        return cls(db_path.with_name(db_path.name + ".work"), db_path)

    @classmethod
    def for_warehouse(cls, root: Path, pipeline_name: str) -> "Workspace":
        """Local state for a warehouse run; each shard has its own (own pipeline, own lock)."""
        return cls(root / ".up_jobs" / pipeline_name)

    @property
    def work_db(self) -> Path:
        return self.state_dir / "work.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.state_dir / "pipelines"

    @property
    def lock_path(self) -> Path:
        return self.state_dir / "run.lock"

    def prepare(self) -> list[str]:
        """Create the state folder, clear what a failed or killed publish left, set aside what no
        run could get past, and seed the working copy from a published file if it is missing.
        Returns what it set aside, one line each, for the run's summary.

        A working copy DuckDB cannot open or read whole (a crash or a full disk mid-write) is
        moved aside and reseeded from the published file, the last good state: otherwise every
        later run would fail on it. Jobs newer than that state are simply fetched again. Opening
        it to find out costs a DuckDB instance (20-150 ms here), so a working copy exactly as the
        last publish left it is trusted unopened. dlt's pipeline folders are checked as
        :meth:`set_aside_unreadable_pipelines` says.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.remove_leftovers()
        repairs = self.set_aside_unreadable_pipelines()
        if self.db_path is None:
            return repairs
        if self.work_db.exists() and not self.working_copy_as_published() and not _opens(self.work_db):
            kept = _unused(self.work_db.with_name("work.duckdb.unreadable"))
            self.work_db.rename(kept)
            self.work_db.with_name("work.duckdb.wal").unlink(missing_ok=True)
            repairs.append(f"the working copy could not be read; moved to {kept}")
        if self.work_db.exists():
            return repairs
        # a WAL whose database is gone (deleted by hand after a crash) applies to no other file:
        # DuckDB refuses to open a new working copy beside it ("WAL does not match database")
        self.work_db.with_name("work.duckdb.wal").unlink(missing_ok=True)
        if self.db_path.exists() and _opens(self.db_path):
            seed = self.work_db.with_name(f".{self.work_db.name}.{os.getpid()}.tmp")
            try:
                shutil.copyfile(self.db_path, seed)
                os.replace(seed, self.work_db)
            finally:
                seed.unlink(missing_ok=True)
            return repairs
        if self.db_path.exists():
            repairs.append(f"{self.db_path} could not be read; this run replaces it with every job fetched again")
        if self.pipelines_dir.is_dir() and any(self.pipelines_dir.iterdir()):
            # dlt's state describes tables that went with both files: with it, dlt would create only
            # the tables a load brings rows to, and the views reading the others failed every run
            kept = _unused(self.state_dir / "pipelines.without-data")
            self.pipelines_dir.rename(kept)
            repairs.append(f"no working copy and no published file to rebuild it from: dlt's pipeline folder, "
                           f"whose state described them, moved to {kept}; every job is fetched again")
        return repairs

    def set_aside_unreadable_pipelines(self) -> list[str]:
        """Move aside a dlt pipeline folder whose state or schema file is not a JSON object.

        dlt replaces those files by a rename without fsync, so a crash can leave one empty; dlt then
        fails to read it at every run. Without its folder dlt restores the pipeline's state and
        schema from the destination (the working copy or the warehouse), as on a new machine; the
        folder's pending packages go with it, and their jobs, not held, are fetched again.
        """
        repairs: list[str] = []
        if not self.pipelines_dir.is_dir():
            return repairs
        for folder in sorted(path for path in self.pipelines_dir.iterdir() if path.is_dir()):
            files = [*(folder / "schemas").glob("*.json")]
            if (folder / "state.json").exists():
                files.append(folder / "state.json")
            unreadable = [path for path in files if not _readable_json_object(path)]
            if unreadable:
                kept = _unused(self.state_dir / "pipelines.unreadable") / folder.name
                kept.parent.mkdir()
                folder.rename(kept)
                repairs.append(f"dlt's {unreadable[0].relative_to(folder)} could not be read; its pipeline folder moved to "
                               f"{kept}, the state is restored from the destination")
        return repairs

    @property
    def _record_path(self) -> Path:
        return self.state_dir / "published.json"

    def working_copy_as_published(self) -> bool:
        """The working copy is byte for byte what the last publish read: same size and mtime as
        recorded then, and no WAL (a crash mid-write changes one or leaves the other)."""
        record = read_record(self._record_path)
        wal = self.work_db.with_name(self.work_db.name + ".wal")
        return record is not None and record.describes_working(self.work_db) and not wal.exists()

    def remove_leftovers(self) -> None:
        """Temporary files of a publish that died: on a full disk they hold the space a run needs."""
        if self.db_path is None:
            return
        for pattern in (f".{self.db_path.name}.*.tmp", f".{self.db_path.name}.*.tmp.wal"):
            for leftover in self.db_path.parent.glob(pattern):
                leftover.unlink(missing_ok=True)
        for leftover in self.state_dir.glob(f".{self.work_db.name}.*.tmp"):
            leftover.unlink(missing_ok=True)

    @contextmanager
    def lock(self, timeout_seconds: float = 0.0) -> Iterator[None]:
        """Hold the run lock, waiting at most ``timeout_seconds``; raise LockHeld otherwise."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        with open(self.lock_path, "a+") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as error:
                    if error.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        holder = self.db_path or self.state_dir
                        raise LockHeld(f"another run holds the lock on {holder} ({self.lock_path})") from None
                    time.sleep(0.1)
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_storage_version(self, storage_version: str) -> None:
        """Refuse an unknown ``duckdb_storage_version`` before the run loads anything.

        The default is not probed: every publish writes it, and the probe starts a DuckDB
        instance (50-100 ms here) at every run, the usual run included.
        """
        if self.db_path is not None and storage_version != DUCKDB_STORAGE_VERSION:
            check_storage_version(storage_version)

    def publish(self, storage_version: str = DUCKDB_STORAGE_VERSION, merge_keys: Mapping[str, Sequence[str]] | None = None) -> None:
        """Atomically replace the analysis database with a copy of the working one.

        The copy is the last published file brought up to date by changes when that file is
        still exactly what the last publish wrote (:mod:`pipeline.publish_changes`; ``merge_keys``:
        the merged tables' primary keys), else a full copy. On failure (a full disk, an unwritable
        folder) the temporary copy is removed at once and a PublishError names the file and the
        cause; the previous file stays as it was.
        """
        if self.db_path is None:
            return
        self.remove_leftovers()  # the version was checked before the run loaded anything
        temporary = self.db_path.with_name(f".{self.db_path.name}.{os.getpid()}.tmp")
        record = read_record(self._record_path)
        failure: PublishError | None = None
        try:
            by_changes = self._copy_by_changes(temporary, storage_version, record, merge_keys or {})
            if by_changes is None:
                copy_database(self.work_db, temporary, storage_version, skip_schemas=(STAGING_SCHEMA,))
            since_full_copy = by_changes or 0
            _fsync(temporary)
            self.remove_stray_wal()
            os.replace(temporary, self.db_path)
        except Exception as error:
            _remove_database_file(temporary)
            failure = PublishError(f"could not publish {self.db_path} (the previous file is unchanged): {_reason(error)}")
        except BaseException:
            _remove_database_file(temporary)
            raise
        if failure is not None:
            # Raised outside the except block, so not chained: the CLI reports the innermost error
            # of a chain, and DuckDB's names only the temporary file; this one carries its reason.
            raise failure
        self.remove_stray_wal()  # one that a writer of the old file made between the two steps
        with suppress(OSError):  # unrecorded, the next run makes a full copy and opens the working copy to check it
            write_record(self._record_path, PublishedRecord.of(self.db_path, self.work_db, storage_version, since_full_copy))

    def _copy_by_changes(
        self, temporary: Path, storage_version: str, record: PublishedRecord | None, merge_keys: Mapping[str, Sequence[str]]
    ) -> int | None:
        """Publishes since the last full copy when ``temporary`` was made by changes; None when a
        full copy is needed (first publish, a file someone replaced or wrote, its WAL, a changed
        table or view, or the periodic compaction)."""
        assert self.db_path is not None
        wal = self.db_path.with_name(self.db_path.name + ".wal")
        if record is None or not record.describes(self.db_path, storage_version) or wal.exists():
            return None
        if record.publishes_since_full_copy + 1 >= FULL_COPY_EVERY:
            return None
        shutil.copyfile(self.db_path, temporary)
        try:
            with duckdb.connect(config={"memory_limit": CHANGES_MEMORY_LIMIT, "threads": 1}) as connection:
                connection.execute(f"attach {literal(str(self.work_db))} as working (read_only)")
                connection.execute(f"attach {literal(str(temporary))} as published")
                updated = update_copy(connection, merge_keys, skip_schemas=(STAGING_SCHEMA,))
                connection.execute("detach published")
        except duckdb.Error:
            updated = False  # e.g. a column type the old format stores differently: the full copy decides
        if not updated:
            _remove_database_file(temporary)
            return None
        return record.publishes_since_full_copy + 1

    def remove_stray_wal(self) -> None:
        """Remove the analysis file's WAL: only a connection writing to the file (unsupported:
        the next run replaces it) makes one, and beside a newly published file DuckDB refuses
        to open it ("WAL checkpoint iteration does not match")."""
        if self.db_path is not None:
            self.db_path.with_name(self.db_path.name + ".wal").unlink(missing_ok=True)


def check_storage_version(storage_version: str) -> None:
    """A storage version the installed DuckDB can write (``v1.0.0``, ``latest``…), else ConfigError."""
    with duckdb.connect() as connection:
        try:
            connection.execute(f"attach ':memory:' as probe (storage_version {literal(storage_version)})")
        except duckdb.InvalidInputException:
            raise ConfigError(
                f"sources.up_jobs.duckdb_storage_version {storage_version!r} is not a storage version "
                f"DuckDB {duckdb.__version__} can write; use a release name such as {DUCKDB_STORAGE_VERSION!r}, or 'latest'"
            ) from None


DUCKDB_MEMORY_LIMIT = "64MB"
"""DuckDB's buffer pool for the working copy (planning's join, dlt's load). DuckDB spills to disk
beyond it: a bigger load is slower, not failed. Peak RSS of a 100,000-job run at L=0 (VmHWM,
bench [5]): 395 MB at 128 MB, 382 MB at 64 MB, no slower. (Earlier figures for this setting were
read with ru_maxrss, which includes the bench process's own size: see bench/peak.py.)"""

COPY_MEMORY_LIMIT = "64MB"
"""A full copy streams table by table: 128 MB only raised that run's peak (405 -> 395 MB at 64 MB)."""

CHANGES_MEMORY_LIMIT = "32MB"
"""Publishing by changes reads a few thousand rows but scans the big tables to find them; the
buffer pool only caches those blocks, so a small one costs nothing: at a million jobs the
re-run's peak fell from 381 to 291-294 MB with it (bench scale), publish time unchanged (0.3-0.4 s)."""


def copy_database(source: Path, target: Path, storage_version: str, skip_schemas: Collection[str] = ()) -> None:
    """Copy the schemas, tables (with their data) and views of ``source`` into a new file
    ``target`` written in ``storage_version``'s format, leaving out ``skip_schemas``."""
    with duckdb.connect(config={"memory_limit": COPY_MEMORY_LIMIT}) as connection:
        connection.execute(f"attach {literal(str(source))} as working (read_only)")
        connection.execute(f"attach {literal(str(target))} as published (storage_version {literal(storage_version)})")
        connection.execute("copy from database working to published (schema)")
        for schema in skip_schemas:
            connection.execute(f"drop schema if exists published.{identifier(schema)} cascade")
        copied = connection.execute(
            "select schema_name, table_name from duckdb_tables() where database_name = 'published'"
        ).fetchall()
        for schema, table in copied:
            name = f"{identifier(schema)}.{identifier(table)}"
            connection.execute(f"insert into published.{name} by name select * from working.{name}")
        connection.execute("detach published")




def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_database_file(path: Path) -> None:
    """Best effort: on a read-only folder even removing a file that was never made fails (EROFS),
    which hid the reason the publish failed; what stays is removed when the next run starts."""
    for file in (path, path.with_name(path.name + ".wal")):
        with suppress(OSError):
            file.unlink(missing_ok=True)


def _reason(error: BaseException) -> str:
    """The first line of the cause (DuckDB's messages run on over several lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
