"""``up-jobs run`` (the cron job) imports only what a run needs: every module more is start-up time
on every run (pandas alone: 0.5-1 s here), paid by runs that have nothing to do."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

# what pipeline.cli's command_run imports, in a fresh interpreter as cron starts one
RUN_IMPORTS = """
import json, sys
import dlt
import pipeline.cli
from pipeline import runlog
from pipeline.config_hints import hinted
from pipeline.planning import parse_shard
from pipeline.runner import RunOptions, run
from pipeline.settings import ConfigError, load_settings, unknown_keys
from pipeline.summary import format_summary
print(json.dumps(sorted(sys.modules)))
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


def _modules_imported(code: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout))


def test_run_does_not_import_what_only_other_commands_need():
    modules = _modules_imported(RUN_IMPORTS)
    assert "pipeline.runner" in modules and "dlt" in modules  # the probe imported what run needs
    imported = {name: why for name, why in NOT_FOR_RUN.items() if name in modules or any(
        module.startswith(name + ".") for module in modules)}
    assert not imported, f"up-jobs run imports modules it does not need: {imported}"

