"""``up-jobs run`` (the cron job) imports only what a run needs: every module more is start-up time
on every run (pandas alone: 0.5-1 s here), paid by runs that have nothing to do."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

from tests.conftest import REPO

# ``up-jobs run`` in a fresh interpreter, as cron starts it; with no configuration it gets as far as
# reading the job list ("no jobs configured", exit 2), past everything the command imports up front
RUN = """
import json, sys
from pipeline.cli import main
code = main(["run", "--db", "probe.duckdb"])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

NOT_FOR_RUN = {
    "pandas": "report, notebooks (pyarrow imports it by itself once a run builds Arrow rows)",
    "matplotlib": "report --html",
    "psycopg2": "the postgres destination",
    "IPython": "notebooks",
    "pipeline.report": "up-jobs report",
    "pipeline.charts": "up-jobs report --html",
    "pipeline.analytics": "notebooks",
    "pipeline.demo": "up-jobs demo / emulator",
    "pipeline.emulator": "up-jobs demo / emulator, tests",
    "pipeline.alerts": "up-jobs check (run --check imports it then)",
    "pipeline.dagster_defs": "Dagster",
}


def test_run_does_not_import_what_only_other_commands_need(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOURCES__UP_JOBS__")}
    result = subprocess.run([sys.executable, "-c", RUN], cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["code"] == 2, result.stderr  # the configuration error, after the command's imports
    modules = set(probe["modules"])
    assert {"pipeline.runner", "dlt"} <= modules
    imported = {name: why for name, why in NOT_FOR_RUN.items() if name in modules or any(
        module.startswith(name + ".") for module in modules)}
    assert not imported, f"up-jobs run imports modules it does not need: {imported}"


# the console script's entry as cron starts it; which pool Arrow used, read once the run is over
ENTRY = """
import atexit, sys
sys.argv = ["up-jobs", "run", "--db", "probe.duckdb"]
atexit.register(lambda: print("pool:", __import__("pyarrow").default_memory_pool().backend_name))
from pipeline.cli import entry
raise SystemExit(entry())
"""


def _arrow_pool_of_a_run(tmp_path, **variables: str) -> str:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SOURCES__UP_JOBS__") and name != "ARROW_DEFAULT_MEMORY_POOL"}
    result = subprocess.run([sys.executable, "-c", ENTRY], cwd=tmp_path, env={**env, **variables, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr  # got as far as reading the job list: pyarrow was loaded
    assert "Unsupported backend" not in result.stderr  # what Arrow prints, every run, for a pool its build lacks
    return result.stdout.strip().splitlines()[-1]


def test_the_up_jobs_process_gives_arrow_memory_back_to_the_system(tmp_path):
    """pyarrow's default mimalloc pool keeps what a million-job run frees (290-305 MB peak against
    267-268 MB with jemalloc, bench scale); the variable must be set before pyarrow loads."""
    on_a_jemalloc_wheel = sys.platform == "linux" and platform.machine() == "x86_64"  # pyarrow's manylinux x86_64 wheels
    assert _arrow_pool_of_a_run(tmp_path) == ("pool: jemalloc" if on_a_jemalloc_wheel else "pool: system")


def test_a_users_own_arrow_pool_setting_wins(tmp_path):
    assert _arrow_pool_of_a_run(tmp_path, ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "pool: mimalloc"


RELEASE = """
import json, sys
from pipeline.job_ids import build_job_list
jobs = build_job_list(["wf-1/job-1", "wf-1/job-2"], None, "space-1")
jobs.release_listing()
print(json.dumps({"rows": jobs.listing.num_rows, "listed": len(jobs), "pandas": "pandas" in sys.modules}))
"""


def test_releasing_the_job_list_imports_nothing():
    """Planning releases the listing before the fetch; ``Schema.empty_table()`` would import
    pandas (~41 MB) right then, at the run's fullest moment."""
    result = subprocess.run([sys.executable, "-c", RELEASE], env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"rows": 0, "listed": 2, "pandas": False}, result.stderr
