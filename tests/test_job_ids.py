"""Job list parsing: safe IDs only, each bad line reported with its file and line."""

from __future__ import annotations

import pytest

from pipeline.job_ids import JobRef, build_job_list

UNSAFE = ["../x", "a/b", "a?b", "a#b", "%2F", " a", "a ", "a b", "x" * 129, "é", ""]


@pytest.mark.parametrize("value", UNSAFE)
def test_unsafe_job_ids_are_reported_not_used(tmp_path, value):
    path = tmp_path / "jobs.csv"
    path.write_text(f"workflow_id,job_id\nwf1,good1\nwf1,{value}\nwf1,good2\n", encoding="utf-8")
    jobs = build_job_list(None, path, "space")
    assert [ref.job_id for ref in jobs.jobs] == ["good1", "good2"]
    assert jobs.has_errors
    assert [problem.location for problem in jobs.problems] == [f"{path}:3"]


def test_bom_crlf_blank_lines_duplicates_and_space_override(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_bytes(
        "\ufeffworkflow_id,job_id,space_id,comment\r\nwf1,j1,,a\r\n\r\nwf1,j1,,dup\r\nwf2,j2,other,\r\nwf3,j3\r\n".encode()
    )
    jobs = build_job_list(None, path, "default")
    assert jobs.jobs == [JobRef("default", "wf1", "j1"), JobRef("other", "wf2", "j2"), JobRef("default", "wf3", "j3")]
    messages = {problem.location: problem for problem in jobs.problems}
    assert not messages[f"{path}:1"].is_error and "comment" in messages[f"{path}:1"].message
    assert not messages[f"{path}:4"].is_error and "duplicate" in messages[f"{path}:4"].message
    assert not jobs.has_errors


def test_missing_space_is_a_line_error(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("workflow_id,job_id\nwf,j\n")
    jobs = build_job_list(None, path, None)
    assert len(jobs) == 0 and len(jobs.problems) == 1
    assert jobs.problems[0].location == f"{path}:2" and "space_id" in jobs.problems[0].message


def test_header_without_required_columns(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("job,workflow\nx,y\n")
    jobs = build_job_list(None, path, "s")
    assert len(jobs.problems) == 1 and jobs.problems[0].location == f"{path}:1" and jobs.has_errors


def test_config_list_entries():
    jobs = build_job_list(["wf/j", "bad-entry", "wf/../j", 42, "wf/j"], None, "s")
    assert jobs.jobs == [JobRef("s", "wf", "j")]
    locations = [problem.location for problem in jobs.problems]
    assert locations == [
        "config sources.up_jobs.jobs[1]",
        "config sources.up_jobs.jobs[2]",
        "config sources.up_jobs.jobs[3]",
        "config sources.up_jobs.jobs[4]",
    ]


def test_unknown_config_keys_are_reported_with_a_suggestion(tmp_path):
    from pipeline.settings import unknown_keys

    (tmp_path / "config.toml").write_text('[sources.up_jobs]\nbase_url = "https://x"\nmax_concurency = 4\n')
    problems = unknown_keys(tmp_path, {"SOURCES__UP_JOBS__SPACEID": "x", "SOURCES__UP_JOBS__API_KEY": "k"})
    messages = [str(problem) for problem in problems]
    assert len(messages) == 2
    assert "max_concurency" in messages[0] and "did you mean max_concurrency?" in messages[0]
    assert "environment" in messages[1] and "did you mean space_id?" in messages[1]
    assert not any(problem.is_error for problem in problems)
