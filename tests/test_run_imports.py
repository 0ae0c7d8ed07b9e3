"""``up-jobs run`` (the cron job) imports only what a run needs: every module more is start-up time
on every run (pandas alone: 0.5-1 s here), paid by runs that have nothing to do."""

from __future__ import annotations

import json
import os
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
