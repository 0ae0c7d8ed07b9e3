"""The package type-checks (mypy) and lints (ruff) as part of the test command, so CI runs both;
an ignore that is no longer needed fails the check, and every remaining one says why."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.conftest import REPO


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_mypy_finds_no_type_errors_in_the_package(tmp_path):
    result = _run("mypy", "pipeline", "--ignore-missing-imports", "--warn-unused-ignores",
                  "--cache-dir", str(tmp_path / "mypy_cache"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing_in_package_tests_and_benchmarks():
    # RUF100: a noqa for a rule that is not enabled or no longer fires is itself a finding
    result = _run("ruff", "check", "--no-cache", "--extend-select", "RUF100", "pipeline", "tests", "bench", "scripts")
    assert result.returncode == 0, result.stdout + result.stderr


IGNORE = re.compile(r"#\s*(?:type:\s*ignore\[[^\]]*\]|noqa:\s*[A-Z0-9, ]+)(.*)")


def test_every_ignore_in_the_package_says_why():
    bare = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted((REPO / "pipeline").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if (match := IGNORE.search(line)) and not re.search(r"[a-z]{3}", match.group(1))
    ]
    assert not bare, "type: ignore / noqa without a reason after it: " + ", ".join(bare)
