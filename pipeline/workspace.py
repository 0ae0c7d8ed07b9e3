"""The files behind one analysis database: a private working copy, dlt's state, a run lock.

DuckDB lets one process write a file only while nobody else has it open, and our users keep
notebooks and CLI sessions open on it all day. So a run never writes the file users open:
it loads into ``<db>.work/work.duckdb`` under an exclusive lock, then publishes a checkpointed
copy with an atomic rename. A reader that has the old file open keeps seeing the old data;
the next connection sees the new data; nobody ever sees a mix.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb


def _opens(path: Path) -> bool:
    """False only when DuckDB says the file is not a database it can read (not when it is locked)."""
    try:
        duckdb.connect(str(path), read_only=True).close()
        return True
    except duckdb.IOException as error:
        return "lock" in str(error).lower()
    except duckdb.Error:
        return False


class LockHeld(RuntimeError):
    """Another run holds this database's lock."""


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

    def prepare(self) -> None:
        """Create the state folder; seed the working copy from a published file if it is missing.

        A working copy DuckDB cannot open (a crash or a full disk mid-write) is moved aside and
        reseeded from the published file, the last good state: otherwise every later run would
        fail on it. Jobs newer than that state are simply fetched again.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.db_path and self.work_db.exists() and not _opens(self.work_db):
            stamp = time.strftime("%Y%m%dT%H%M%S")
            self.work_db.rename(self.work_db.with_name(f"work.duckdb.unreadable-{stamp}"))
            self.work_db.with_name("work.duckdb.wal").unlink(missing_ok=True)
        if self.db_path and not self.work_db.exists() and self.db_path.exists():
            shutil.copyfile(self.db_path, self.work_db)

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

    def publish(self) -> None:
        """Atomically replace the analysis database with a checkpointed copy of the working one."""
        if self.db_path is None:
            return
        with duckdb.connect(str(self.work_db)) as connection:
            connection.execute("CHECKPOINT")
        for leftover in self.db_path.parent.glob(f".{self.db_path.name}.*.tmp"):
            leftover.unlink(missing_ok=True)  # from a run killed while publishing
        temporary = self.db_path.with_name(f".{self.db_path.name}.{os.getpid()}.tmp")
        shutil.copyfile(self.work_db, temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        stale_wal = self.db_path.with_name(self.db_path.name + ".wal")
        if stale_wal.exists():
            stale_wal.unlink()  # a WAL left by someone writing the old file must not replay onto the new one
        os.replace(temporary, self.db_path)
