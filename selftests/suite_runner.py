"""Runs the verification suite in a subprocess and reads its verdicts from junit XML."""
from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Verdicts:
    returncode: int
    passed: set[str]
    failed: set[str]
    skipped: set[str]
    output: str
    xfailed: set[str]

    @property
    def ran(self) -> set[str]:
        return self.passed | self.failed


def run_suite(tmp_path: Path, *args: str, timeout: float = 900, env: dict | None = None) -> Verdicts:
    junit = tmp_path / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q",
           "-o", "addopts=", f"--junitxml={junit}", "--rootdir", str(REPO),
           # -c: an option value that is an existing path (--state-dir /tmp/x) would otherwise take part
           # in pytest's search for its ini file, which then misses pytest.ini (and its markers).
           "-c", str(REPO / "pytest.ini"), *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    out = proc.stdout + proc.stderr
    passed, failed, skipped, xfailed = set(), set(), set(), set()
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            if case.find("failure") is not None or case.find("error") is not None:
                failed.add(name)
            elif case.find("skipped") is not None:
                # xfail is how the suite reports a finding accepted by design; not a skip.
                (xfailed if case.find("skipped").get("type") == "pytest.xfail" else skipped).add(name)
            else:
                passed.add(name)
    return Verdicts(proc.returncode, passed, failed, skipped, out, xfailed)
