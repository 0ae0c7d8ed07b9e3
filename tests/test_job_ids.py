"""Job list parsing: safe IDs only, each bad line reported with its file and line."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.job_ids import JobRef, Shard, build_job_list

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


def _reference(lines: list[list[str]], default_space: str) -> tuple[list[JobRef], list[int], list[int]]:
    """The rules written the plain way (no batches, no Arrow, no hashes): good jobs in order,
    bad line numbers, duplicate line numbers. Line 1 is the header ``workflow_id,job_id,space_id``."""
    import re

    safe = re.compile(r"[A-Za-z0-9_-]{1,128}")
    jobs: list[JobRef] = []
    seen: set[JobRef] = set()
    bad, duplicates = [], []
    for number, (workflow_id, job_id, space_id) in enumerate(lines, start=2):
        ref = JobRef(space_id or default_space, workflow_id, job_id)
        if not all(safe.fullmatch(value) for value in (ref.space_id, ref.workflow_id, ref.job_id)):
            bad.append(number)
        elif ref in seen:
            duplicates.append(number)
        else:
            seen.add(ref)
            jobs.append(ref)
    return jobs, bad, duplicates


ID_TEXT = st.text(alphabet="ab-_Z9/ é.", min_size=0, max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(ID_TEXT, ID_TEXT, st.sampled_from(["", "s1", "s 2"])), max_size=40), st.integers(1, 7))
def test_job_list_matches_the_plain_rules_whatever_the_lines_and_batch_size(tmp_path_factory, lines, batch_rows):
    """Batches of any size (down to 1 row), bad IDs, repeats and spaces: the same jobs, bad lines
    and duplicate lines as the plain rules compute, in the same order."""
    import pipeline.job_ids as job_ids

    path = tmp_path_factory.mktemp("jobs") / "jobs.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["workflow_id", "job_id", "space_id"], *map(list, lines)])
    rows = [list(line) for line in lines]
    expected_jobs, expected_bad, expected_duplicates = _reference(rows, "dflt")
    original = job_ids._BATCH_ROWS
    job_ids._BATCH_ROWS = batch_rows
    try:
        jobs = build_job_list(None, path, "dflt")
    finally:
        job_ids._BATCH_ROWS = original
    assert jobs.jobs == expected_jobs
    located = [(int(problem.location.rsplit(":", 1)[1]), problem.is_error) for problem in jobs.problems]
    assert [line for line, is_error in located if is_error] == expected_bad
    assert [line for line, is_error in located if not is_error] == expected_duplicates


def test_problems_past_the_cap_are_counted_not_kept(tmp_path, monkeypatch):
    import pipeline.job_ids as job_ids

    monkeypatch.setattr(job_ids, "MAX_PROBLEMS_KEPT", 3)
    path = tmp_path / "jobs.csv"
    path.write_text("workflow_id,job_id\n" + "".join(f"wf,bad{i}/x\nwf,good{i}\n" for i in range(10)))
    jobs = build_job_list(None, path, "s")
    assert len(jobs) == 10 and jobs.problem_count == 10 and jobs.error_count == 10
    assert [problem.location for problem in jobs.problems] == [f"{path}:2", f"{path}:4", f"{path}:6"]


def test_a_shard_keeps_its_share_and_every_problem(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("workflow_id,job_id\n" + "".join(f"wf,job{i}\n" for i in range(200)) + "wf,bad/\n")
    whole = build_job_list(None, path, "s").jobs
    shares = [build_job_list(None, path, "s", Shard.parse(f"{index}/3")) for index in range(3)]
    assert sorted(ref for share in shares for ref in share.jobs) == sorted(whole)
    assert all(0 < len(share) < len(whole) for share in shares)
    assert all(share.error_count == 1 for share in shares), "a bad line is reported by every shard"
    assert [ref for ref in whole if Shard(1, 3).owns(ref)] == shares[1].jobs


def test_non_ascii_ids_are_reported_by_line(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("workflow_id,job_id\nwf,é1\nwf,ok\nwf,ok\n", encoding="utf-8")
    jobs = build_job_list(None, path, "s")
    assert jobs.jobs == [JobRef("s", "wf", "ok")]
    assert [(problem.location, problem.is_error) for problem in jobs.problems] == [(f"{path}:2", True), (f"{path}:4", False)]
