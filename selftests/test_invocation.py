"""The suite as users start it: `pytest .` in the repository, or `pytest /path/to/repo` from
elsewhere. Both name the whole folder; only tests/ is the verification suite (conftest.py's
collect_ignore), so neither collects the project's own tests or fails on their conftest."""
import subprocess
import sys

import pytest

from selftests.suite_runner import NO_REPORTS, REPO


@pytest.mark.parametrize("where", ["dot-in-the-repo", "repo-path-from-elsewhere"])
def test_naming_the_repository_runs_the_suite_only(tmp_path, where):
    cwd, target = (REPO, ".") if where == "dot-in-the-repo" else (tmp_path, str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", target, "-p", "no:cacheprovider", "-o", NO_REPORTS,
                           "--target", "moto", "--provision", "--co", "-q"], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert len(collected) >= 40 and not [line for line in collected if "selftests" in line], out[-2000:]
