"""Crafted analysis databases for the alert tests.

The real pipeline loads a few emulator jobs once per session (so tables, dlt's ``_dlt_loads`` and
the views are exactly what a run publishes); each test copies that file and replaces its rows
with crafted ones, timed relative to a fixed ``now``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import duckdb
import pytest

from tests.conftest import start_emulator

NOW = datetime.now(timezone.utc).replace(microsecond=0)
HOUR = 3600.0
_TEMPLATE: list[Path] = []


def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real pipeline run against the emulator, shared by the session (built once)."""
    if _TEMPLATE:
        return _TEMPLATE[0]
    root = tmp_path_factory.mktemp("alerts_template")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith(("SOURCES__UP_JOBS__", "ALERTS__"))]:
            patch.delenv(name)
        patch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
        patch.setenv("DLT_DATA_DIR", str(root / "dlt_data"))
        patch.chdir(root)
        for emulated in start_emulator(root, jobs=5, seed=3):
            emulated.run()
            _TEMPLATE.append(emulated.db)
    return _TEMPLATE[0]


class Crafted:
    """A copy of the template with no job rows; add crafted ones, then ``write()``."""

    def __init__(self, template: Path, folder: Path) -> None:
        self.db = folder / "up_jobs.duckdb"
        shutil.copyfile(template, self.db)
        self.jobs: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.load_ago: Optional[float] = 60.0
        self.published_ago: float = 60.0

    def job(self, workflow: str, state: str, age: float, idle: float = 0.0, elapsed: Optional[float] = None,
            job_id: Optional[str] = None) -> str:
        """A job created ``age`` seconds before NOW and last updated ``idle`` seconds before NOW."""
        job_id = job_id or uuid.uuid4().hex
        self.jobs.append(dict(
            id=job_id, space_id="space", workflow_id=workflow, workflow_name=f"{workflow} name", name=job_id,
            state=state, progress=100.0 if state == "succeeded" else 50.0,
            created_at=NOW - timedelta(seconds=age), updated_at=NOW - timedelta(seconds=idle),
            elapsed_seconds=elapsed if elapsed is not None else (age - idle if state in ("succeeded", "failed", "stopped") else None),
            _dlt_load_id="1", _dlt_id=uuid.uuid4().hex,
        ))
        return job_id

    def completed(self, workflow: str, count: int, state: str = "succeeded", finished_ago: float = HOUR,
                  seconds: float = 600.0) -> None:
        for _ in range(count):
            self.job(workflow, state, age=finished_ago + seconds, idle=finished_ago, elapsed=seconds)

    def fetch_errors(self, count: int) -> None:
        for index in range(len(self.errors), len(self.errors) + count):
            self.errors.append(dict(
                space_id="space", workflow_id="wf-errors", job_id=f"missing{index}", error_kind="not_found",
                http_status=404, message="404", attempts=1, occurred_at=NOW - timedelta(minutes=5),
                _dlt_load_id="1", _dlt_id=uuid.uuid4().hex,
            ))

    def write(self) -> Path:
        with duckdb.connect(str(self.db)) as connection:
            for table in ("workflow_jobs", "fetch_errors", "fetch_recoveries", "quarantined_records"):
                connection.execute(f"delete from telestream_up.{table}")
            for table, rows in (("workflow_jobs", self.jobs), ("fetch_errors", self.errors)):
                if rows:
                    columns, marks = ", ".join(rows[0]), ", ".join("?" for _ in rows[0])
                    connection.executemany(f"insert into telestream_up.{table} ({columns}) values ({marks})",
                                           [list(row.values()) for row in rows])
            connection.execute("delete from telestream_up._dlt_loads where load_id <> (select max(load_id) from telestream_up._dlt_loads)")
            if self.load_ago is None:
                connection.execute("delete from telestream_up._dlt_loads")
            else:
                connection.execute("update telestream_up._dlt_loads set inserted_at = ?, status = 0",
                                   [NOW - timedelta(seconds=self.load_ago)])
        published = (NOW - timedelta(seconds=self.published_ago)).timestamp()
        os.utime(self.db, (published, published))
        return self.db
