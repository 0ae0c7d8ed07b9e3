"""The package type-checks (mypy) and lints (ruff) as part of the test command, so CI runs both."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_mypy_finds_no_type_errors_in_the_package(tmp_path):
    result = _run("mypy", "pipeline", "--ignore-missing-imports", "--cache-dir", str(tmp_path / "mypy_cache"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing_in_package_tests_and_benchmarks():
    result = _run("ruff", "check", "--no-cache", "pipeline", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr
