"""Each blind test shown to fail when its feature is disabled (issue 15), reproducibly.

For every row: apply one minimal mutation to the code (never committed), run the test(s) that
guard the feature, expect a failure, restore the file byte for byte. Run from the repository
root in the test venv:

    python notes/blind_tests.py            # every mutant
    python notes/blind_tests.py M03 M09    # some

Results go to notes/blind_tests_results.json; the table in notes/blind_tests.md is written from them.
A mutant whose ``old`` text no longer occurs (the code moved on) is reported as ``stale``.
``tests/old_test_*.py`` entries are the versions before the fix, made for the run with
``git show 7fb51b6:tests/test_cli.py > tests/old_test_cli.py`` (likewise test_pipeline_e2e,
test_crashes_and_concurrency) and deleted afterwards: they PASS under the mutation, which is
what made them blind. ``--restored`` runs every guarding test on the unmutated code; ``--table``
prints the table of notes/blind_tests.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "notes" / "blind_tests_results.json"


@dataclass
class Mutant:
    key: str
    item: str
    tests: list[str]
    path: str
    old: str
    new: str
    what: str


MUTANTS = [
    Mutant("M01", "429 pauses every worker", ["tests/test_faults.py::test_429_makes_every_worker_wait",
                                              "tests/test_faults.py::test_rate_gate_holds_every_caller_for_the_longest_retry_after"],
           "pipeline/http.py", "            self._not_before = max(self._not_before, self._clock() + seconds)",
           "            pass", "RateGate.hold_for does nothing (no shared pause)"),
    Mutant("M02", "lock wait: the second run waited", ["tests/test_crashes_and_concurrency.py::test_overlapping_run_can_wait_for_the_lock"],
           "pipeline/workspace.py", "                    if time.monotonic() >= deadline:\n",
           "                    if timeout_seconds > 0:\n                        break\n                    if time.monotonic() >= deadline:\n",
           "Workspace.lock: with a timeout, go on without the lock instead of waiting"),
    Mutant("M03", "test_cli: every command and option has --help", ["tests/test_cli.py::test_every_command_and_option_is_documented_in_the_readme",
                                                                   "tests/old_test_cli.py::test_every_command_and_option_is_documented_in_the_readme"],
           "pipeline/cli.py", 'emulator.add_argument("--faults", action="store_true", help="inject the fault matrix (5xx, 429, timeouts, ...)")',
           'emulator.add_argument("--faults", action="store_true")', "cli: `emulator --faults` loses its help text"),
    Mutant("M04", "expectation not from the parser under test", ["tests/test_pipeline_e2e.py::test_first_run_loads_every_listed_job_once_with_correct_seconds[duckdb]",
                                                                 "tests/test_faults.py::test_fault_matrix_loses_and_duplicates_nothing[duckdb]",
                                                                 "tests/old_test_pipeline_e2e.py::test_first_run_loads_every_listed_job_once_with_correct_seconds[duckdb]"],
           "pipeline/timespan.py", "    return float(Decimal(parse_timespan_ticks(text)) / TICKS_PER_SECOND)\n",
           "    return float(Decimal(parse_timespan_ticks(text)) / TICKS_PER_SECOND) * 1.5\n",
           "parse_timespan_seconds answers 1.5x the duration"),
    Mutant("M05", "workflow_duration_stats against pandas", ["tests/test_views.py::test_workflow_duration_stats"],
           "sql/workflow_duration_stats.sql", "quantile_cont(elapsed_seconds, 0.90)", "quantile_disc(elapsed_seconds, 0.90)",
           "workflow_duration_stats: p90 by quantile_disc (no interpolation)"),
    Mutant("M06", "queries only: views after kill -9, the demo's views", ["tests/test_crashes_and_concurrency.py::test_kill_9_then_rerun_equals_one_clean_run[loaded]",
                                                                         "tests/test_report_and_notebook.py::test_demo_exits_0_reports_and_leaves_one_row_per_job",
                                                                         "tests/old_test_crashes_and_concurrency.py::test_kill_9_then_rerun_equals_one_clean_run[loaded]"],
           "sql/workflow_duration_stats.sql", "        count(*) as jobs,", "        count(*) filter (where is_terminal) as jobs,",
           "workflow_duration_stats.jobs counts terminal jobs only"),
    Mutant("M07", "queries only: running_jobs after a shard re-applies it", ["tests/test_view_upgrades.py::test_every_shard_makes_sure_the_views_exist"],
           "sql/running_jobs.sql", "    where not is_terminal", "    where not is_terminal and false", "running_jobs returns no rows"),
    Mutant("M08", "SIGINT -> 130", ["tests/test_readme_claims.py::test_sigint_ends_a_run_with_130"],
           "pipeline/cli.py", "    signal.signal(signal.SIGINT, handler)\n", "", "cli: no SIGINT handler (Python's default KeyboardInterrupt)"),
    Mutant("M09", "--project-dir", ["tests/test_cli_tools.py::test_cron_log_and_dlt_cli_after_runs_from_a_project_folder"],
           "pipeline/cli.py", '    os.environ["DLT_PROJECT_DIR"] = str(Path(project_dir).resolve())\n    os.chdir(project_dir)\n',
           "", "cli._use_project_dir ignores --project-dir (no chdir, no DLT_PROJECT_DIR)"),
    Mutant("M10", "403 stops the run (exit 3)", ["tests/test_readme_claims.py::test_a_403_stops_the_run_with_exit_3_and_names_the_cause"],
           "pipeline/http.py", "                if status in (401, 403):", "                if status == 401:", "http: only 401 is an auth rejection"),
    Mutant("M11", "fetch_recoveries rows", ["tests/test_dead_jobs.py::test_a_404_job_backs_off_then_is_retried_then_recovers"],
           "pipeline/source.py", "routed += [(tables.RECOVERIES, _recovery_row(ref, now)), (tables.ERROR_STATE,",
           "routed += [(tables.ERROR_STATE,", "source: no fetch_recoveries row on recovery"),
    Mutant("M12", "keep-alive connection per worker", ["tests/test_readme_claims.py::test_requests_in_flight_never_exceed_the_concurrency_and_connections_are_reused"],
           "pipeline/http.py", '"Connection": "keep-alive",', '"Connection": "close",',
           "http: a new connection for every request (the server closes each)"),
    Mutant("M13", "at most 2 x N requests ahead", ["tests/test_readme_claims.py::test_at_most_twice_the_concurrency_is_requested_ahead_of_the_consumer",
                                                   "tests/test_readme_claims.py::test_requests_in_flight_never_exceed_the_concurrency_and_connections_are_reused"],
           "pipeline/fetch.py", "in_flight = hand_out(2 * workers.limit)", "in_flight = hand_out(10**9)",
           "fetch: every job handed out at once"),
    Mutant("M14", "progress lines per 10 %", ["tests/test_runlog.py"], "pipeline/runlog.py",
           "        tenth = done * 10 // total if total else 10", "        tenth = done * 5 // total if total else 10",
           "runlog: a line per 20 %"),
    Mutant("M15", "progress lines reach the cron log", ["tests/test_cli_tools.py::test_cron_log_and_dlt_cli_after_runs_from_a_project_folder"],
           "pipeline/cli.py", "on_progress=_progress_printer())", "on_progress=None)", "cli: the run gets no progress printer"),
    Mutant("M16", "up-jobs emulator output", ["tests/test_readme_claims.py::test_the_emulator_command_prints_what_a_run_needs"],
           "pipeline/demo.py", "SOURCES__UP_JOBS__API_KEY={DEFAULT_API_KEY} \\\\", "SOURCES__UP_JOBS__API_KEY=emulator-key \\\\",
           "demo.serve_emulator prints a key the emulator refuses"),
    Mutant("M17", "unknown-key warning through the CLI", ["tests/test_cli_tools.py::test_cron_log_and_dlt_cli_after_runs_from_a_project_folder"],
           "pipeline/cli.py", "    summary.config_problems[:0] = unknown\n", "", "cli: unknown keys not added to the run summary"),
    Mutant("M18", "base_url with credentials or a query refused", ["tests/test_readme_claims.py::test_base_urls_with_credentials_a_query_or_plain_http_elsewhere_are_refused"],
           "pipeline/settings.py", "    if parts.username or parts.password or parts.query or parts.fragment:",
           "    if parts.fragment:", "settings.validate_base_url: credentials and query accepted"),
    Mutant("M19", "every shard applies views (was: only shard 0)", ["tests/test_view_upgrades.py::test_every_shard_makes_sure_the_views_exist"],
           "pipeline/runner.py", "        summary.views_applied = apply_views(pipeline)",
           "        if options.shard is None or options.shard.index == 0:\n            summary.views_applied = apply_views(pipeline)",
           "runner: only shard 0 (or no shard) applies views"),
    Mutant("M20", "destination from config", ["tests/test_readme_claims.py::test_destination_from_config_and_a_view_that_cannot_be_applied"],
           "pipeline/run_options.py", "destination = options.destination or config.destination", "destination = options.destination",
           "run_options.resolve_run: sources.up_jobs.destination ignored"),
    Mutant("M21", "a view that cannot be applied: exit 1, data loaded", ["tests/test_readme_claims.py::test_destination_from_config_and_a_view_that_cannot_be_applied"],
           "pipeline/views.py", "    if failures:\n        reasons", "    if False:\n        reasons",
           "views.apply_views: failures not raised"),
    Mutant("M22", "demo refuses a non-demo database", ["tests/test_readme_claims.py::test_the_demo_refuses_to_reset_a_database_holding_real_jobs"],
           "pipeline/demo.py", "        if any(space != DEMO_SPACE_ID for (space,) in spaces):", "        if False:",
           "demo: resets any database"),
    Mutant("M23", "the installed package", ["tests/test_readme_claims.py::test_the_installed_package_runs_outside_the_source_tree"],
           "pyproject.toml", '"pipeline.sql" = ["*.sql"]\n', "", "pyproject: the views (sql/*.sql) not packaged"),
    Mutant("M24", "installed package: console script", ["tests/test_readme_claims.py::test_the_installed_package_runs_outside_the_source_tree"],
           "pyproject.toml", 'up-jobs = "pipeline.cli:entry"', 'up_jobs = "pipeline.cli:entry"', "pyproject: console script misnamed"),
    Mutant("M25", "ignores: an unneeded type: ignore", ["tests/test_static_checks.py::test_mypy_finds_no_type_errors_in_the_package"],
           "pipeline/report.py", "    return base64.b64encode(buffer.getvalue()).decode()\n",
           "    return base64.b64encode(buffer.getvalue()).decode()  # type: ignore[no-any-return]  # x\n",
           "report: a type: ignore mypy does not need"),
    Mutant("M26", "ignores: a noqa for a rule ruff does not run", ["tests/test_static_checks.py::test_ruff_finds_nothing_in_package_tests_and_benchmarks"],
           "pipeline/report.py", "    except Exception:  # a database from before", "    except Exception:  # noqa: BLE001 - a database from before",
           "report: `noqa: BLE001` back on an except"),
    Mutant("M27", "ignores: each says why", ["tests/test_static_checks.py::test_every_ignore_in_the_package_says_why"],
           "pipeline/tables.py", "  # type: ignore[misc]  # dlt: TColumnSchema's name is NotRequired", "  # type: ignore[misc]",
           "tables: an ignore without its reason"),
]


def _first_failure(output: str) -> str:
    """The test's own message if it has one, else pytest's rewritten ``assert ...`` (with its first
    ``where`` line when the assert alone says little), else the first error line."""
    errors = [line[1:].strip() for line in output.splitlines() if line.startswith("E ")]
    custom = [line for line in errors if line.startswith("AssertionError: ") and not line[16:].startswith("assert") and len(line) < 180]
    asserts = [index for index, line in enumerate(errors) if line.startswith("assert ")]
    if custom:
        chosen = custom[0][16:]
    elif asserts:
        chosen = errors[asserts[0]]
        if len(chosen) < 20 and asserts[0] + 1 < len(errors):
            chosen += " " + errors[asserts[0] + 1].lstrip("+ ")
    elif errors:
        chosen = errors[0]
    else:
        lines = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
        chosen = lines[0] if lines else output.strip().splitlines()[-1]
    return chosen[:240]


def run_tests(tests: list[str], timeout: float = 900) -> tuple[str, str, float]:
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-o", "addopts=", "-p", "no:cacheprovider",
               "--tb=short", *tests]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - started
    summary = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    verdict = summary[-1].strip("= ") if summary else f"exit {result.returncode}"
    failure = _first_failure(result.stdout) if result.returncode else ""
    per_test = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return verdict, failure + ("\n" + "\n".join(per_test) if per_test else ""), seconds


def main(keys: list[str]) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for mutant in MUTANTS:
        if keys and mutant.key not in keys:
            continue
        path = ROOT / mutant.path
        original = path.read_bytes()
        text = original.decode()
        if text.count(mutant.old) != 1:
            results[mutant.key] = {"item": mutant.item, "verdict": "stale: the mutated text is not in the code once"}
            print(mutant.key, "stale", flush=True)
            continue
        try:
            path.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
            verdict, failure, seconds = run_tests(mutant.tests)
        finally:
            path.write_bytes(original)
        results[mutant.key] = {"item": mutant.item, "tests": mutant.tests, "mutation": f"{mutant.path}: {mutant.what}",
                               "verdict": verdict, "failure": failure, "seconds": round(seconds, 1)}
        print(mutant.key, verdict, "|", failure.splitlines()[0] if failure else "", flush=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def restored() -> None:
    """Every guarding test once more on the unmutated code (the table's last column)."""
    results = json.loads(RESULTS.read_text())
    tests = sorted({test for mutant in MUTANTS for test in mutant.tests if "/old_" not in test})
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"}
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-o", "addopts=", "-p", "no:cacheprovider", "-rA", *tests]
    output = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800).stdout
    outcome = {}
    for line in output.splitlines():
        match = re.match(r"(PASSED|FAILED|ERROR|SKIPPED) (\S+)", line)
        if match:
            outcome[match.group(2)] = match.group(1).lower()
    results["restored"] = outcome
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(output.splitlines()[-1])


def table() -> None:
    """The table of notes/blind_tests.md, from the results (printed)."""
    results = json.loads(RESULTS.read_text())
    outcome = results.get("restored", {})
    rows = ["| # | item | test(s) | mutation (never committed) | with the mutation | restored |", "|---|---|---|---|---|---|"]
    for mutant in MUTANTS:
        result = results.get(mutant.key, {})
        tests = "<br>".join(f"`{test.replace('tests/', '')}`" for test in mutant.tests)
        failure = result.get("failure", "").splitlines()
        first = failure[0] if not failure or len(failure[0]) < 150 else failure[0][:147] + "..."
        shown = f"{result.get('verdict', 'not run')}: `{first}`" if failure else result.get("verdict", "not run")
        mine = [test for test in mutant.tests if "/old_" not in test]
        back = ", ".join(sorted({value for name, value in outcome.items()
                                 if any(name == test or name.startswith(test + "[") for test in mine)})) or "?"
        if all(test.endswith(".py") for test in mine):  # a whole file
            back = ", ".join(sorted({value for name, value in outcome.items() if name.split("::")[0] in mine})) or "?"
        rows.append(f"| {mutant.key} | {mutant.item} | {tests} | `{mutant.path}`: {mutant.what} | {shown} | {back} |")
    print("\n".join(rows))


if __name__ == "__main__":
    if sys.argv[1:] == ["--restored"]:
        restored()
    elif sys.argv[1:] == ["--table"]:
        table()
    else:
        main(sys.argv[1:])
