"""Parse and validate a generated jobs file of N lines, in a fresh process (peak RSS is its own).

    python -m bench parsing --jobs 1000000

Prints wall seconds, peak RSS and the counts, for the issue's target (1,000,000 lines: < 5 s,
< 200 MB); 1 line in 10,000 is made bad so problem reporting is part of the cost.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import resource, sys, time
from pipeline.cli import release_arrow_memory_to_the_system
release_arrow_memory_to_the_system()  # as the up-jobs process does, before pyarrow loads
from bench.peak import vm_hwm_mb
from pipeline.job_ids import build_job_list
started = time.monotonic()
jobs = build_job_list(None, sys.argv[1], "space-1")
seconds = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
peak = vm_hwm_mb()  # not ru_maxrss: that includes the parent's (bench/peak.py)
print(f"{len(jobs)} jobs, {jobs.problem_count} problem lines ({len(jobs.problems)} kept with their text), {seconds:.2f} s wall ({usage.ru_utime + usage.ru_stime:.2f} s CPU, imports included), peak RSS {peak:.0f} MB")
"""


def write_jobs_file(path: Path, lines: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    workflows = [f"{rng.getrandbits(128):032x}" for _ in range(12)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("workflow_id,job_id,space_id\n")
        for index in range(lines):
            job_id = f"{rng.getrandbits(128):032x}" if index % 10_000 else "../not-a-job"
            handle.write(f"{workflows[index % 12]},{job_id},space-1\n")


def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "jobs.csv"
        write_jobs_file(path, args.jobs)
        size = path.stat().st_size / 1e6
        print(f"jobs file: {args.jobs:,} lines, {size:.0f} MB")
        result = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, check=True)
        print(result.stdout.strip())
