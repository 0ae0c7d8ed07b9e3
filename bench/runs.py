"""Run the pipeline as cron runs it, as a subprocess against the emulator, and measure it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.peak import ENV as PEAK_ENV
from bench.peak import RUN_AS_MODULE
from pipeline.emulator.generator import DEMO_SPACE_ID
from pipeline.emulator.server import DEFAULT_API_KEY

REPO = Path(__file__).resolve().parent.parent


def _env(base_url: str, concurrency: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "SOURCES__UP_JOBS__BASE_URL": base_url,
        "SOURCES__UP_JOBS__API_KEY": DEFAULT_API_KEY,
        "SOURCES__UP_JOBS__SPACE_ID": DEMO_SPACE_ID,
        "SOURCES__UP_JOBS__MAX_CONCURRENCY": str(concurrency),
        "PYTHONPATH": str(REPO),
        **(extra or {}),
    }


def run_pipeline(base_url: str, jobs_file: Path, db: Path, concurrency: int, *extra: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> dict[str, Any]:
    """One ``python -m pipeline run`` subprocess: wall seconds, exit code, its own peak RSS in MB.
    (``cwd``: where a warehouse run keeps its local pipeline folder.)"""
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak_file:
        process = subprocess.Popen(
            [sys.executable, "-c", RUN_AS_MODULE, "pipeline", "run", "--db", str(db), "--jobs-file", str(jobs_file), *extra],
            env={**_env(base_url, concurrency, env), PEAK_ENV: peak_file.name},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=cwd,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak_kb = peak_file.read().strip()
    return {
        "wall": time.monotonic() - started,
        "code": process.returncode,
        "rss_mb": int(peak_kb) / 1024 if peak_kb else float("nan"),
        "cpu": usage.ru_utime + usage.ru_stime,  # CPU time is the child's own (unlike ru_maxrss)
        "output": output,
    }
