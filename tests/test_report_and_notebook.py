"""The demo, the report (terminal and HTML with charts) and the notebook, as a user meets them."""

from __future__ import annotations

import os
import re
from pathlib import Path

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from tests.cli_runner import up_jobs
from tests.conftest import REPO

VIEWS = (
    "job_durations", "workflow_duration_stats", "open_fetch_errors", "daily_workflow_stats", "job_state_summary",
    "running_jobs", "duration_outliers", "data_quality_issues", "workflow_duration_regressions",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RUNTIME__DLTHUB_TELEMETRY": "false"}
    result = up_jobs("demo", "--jobs", "300", "--seed", "3", env=env, cwd=folder, timeout=300)
    return folder, result, env


def test_demo_exits_0_reports_and_leaves_one_row_per_job(demo):
    folder, result, _ = demo
    assert result.returncode == 0, result.stderr
    assert "Workflow durations (terminal jobs)" in result.stdout
    assert "== second run" in result.stdout
    db = folder / "up_jobs_demo.duckdb"
    with duckdb.connect(str(db), read_only=True) as connection:
        # 300 generated jobs plus the jobs with full histories that the demo's polls watch
        [(rows, distinct)] = connection.sql("select count(*), count(distinct id) from telestream_up.workflow_jobs").fetchall()
        assert rows == distinct > 300
        def one(sql: str) -> object:
            return connection.sql(sql).fetchall()[0][0]

        counts = {view: one(f"select count(*) from telestream_up.{view}") for view in VIEWS}
        # each view against the table it is built on
        assert counts["job_durations"] == one("select sum(jobs) from telestream_up.job_state_summary") == rows
        assert one("select sum(jobs) from telestream_up.workflow_duration_stats") == rows
        assert counts["workflow_duration_stats"] == one("select count(distinct workflow_id) from telestream_up.workflow_jobs")
        terminal = one("select count(*) from telestream_up.workflow_jobs where state in ('succeeded', 'failed', 'stopped')")
        assert counts["running_jobs"] == rows - terminal > 0
        assert one("select sum(completed_jobs) from telestream_up.daily_workflow_stats") == terminal
    html_path = re.search(r"HTML report with charts: (.+)", result.stdout).group(1).strip()
    assert Path(html_path).is_file()


def test_report_html_has_three_embedded_charts_and_the_tables(demo, tmp_path):
    folder, _, env = demo
    out = tmp_path / "out.html"
    result = up_jobs("report", "--db", str(folder / "up_jobs_demo.duckdb"), "--html", str(out), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = out.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 4 and all(len(image) > 5000 for image in images)  # 4th: where the time goes
    for title in ("Workflow durations", "Slowest jobs", "Data quality", "Duration regressions"):
        assert title in page and title in result.stdout
    assert "http" not in re.sub(r"data:image[^']+", "", page).replace("http-equiv", "")  # self-contained


def test_report_on_a_missing_database_is_a_clear_error(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = up_jobs("report", "--db", str(tmp_path / "nope.duckdb"), env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_notebook_started_the_readme_way_finds_the_demo_database(demo, tmp_path, monkeypatch):
    """`up-jobs demo` in the project root, then `jupyter lab notebooks/`: the kernel runs in notebooks/
    and UP_JOBS_DB is not set. Laid out in a tmp copy of the project."""
    import shutil

    folder, _, _ = demo
    project = tmp_path / "up-jobs"
    (project / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "notebooks" / "job_durations.ipynb", project / "notebooks")
    shutil.copy(folder / "up_jobs_demo.duckdb", project / "up_jobs_demo.duckdb")
    monkeypatch.delenv("UP_JOBS_DB", raising=False)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the package as `pip install .` provides it
    notebook = nbformat.read(project / "notebooks" / "job_durations.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "outputs must be stripped"
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(project / "notebooks")}}).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = [output for cell in code for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    first = "".join(output.get("text", "") for output in code[0].outputs)
    assert first.strip() == f"Database: {(project / 'up_jobs_demo.duckdb').resolve()}"
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 4  # boxes, histograms, trend, throughput
    tables = [output["data"]["text/plain"] for output in outputs if "text/html" in output.get("data", {})]
    assert tables and not [table for table in tables if re.search(r"\de[+-]\d\d", table)]  # no 8.950300e+01
