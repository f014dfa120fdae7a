"""Runs the verification suite in a subprocess and reads its verdicts from junit XML."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _addopts_without_reports() -> str:
    """pytest.ini's addopts less the report files (a self-test's run must not write reports/ while
    others run). The rest stays, above all the plugins it turns off: a bare `-o addopts=` would load
    hypothesis's plugin, the better part of a second at every start."""
    import configparser
    import shlex

    ini = configparser.ConfigParser()
    ini.read(REPO / "pytest.ini")
    keep = [o for o in shlex.split(ini["pytest"]["addopts"])
            if not o.startswith(("--html", "--junitxml", "--self-contained-html"))]
    return shlex.join(keep)


# `-o`, this: the suite as pytest.ini runs it, without writing reports/.
NO_REPORTS = f"addopts={_addopts_without_reports()}"


@dataclass
class Verdicts:
    returncode: int
    passed: set[str]              # holds
    failed: set[str]              # violated
    skipped: set[str]             # not checked or not applicable (both below, by their reason's prefix)
    output: str
    xfailed: set[str]             # accepted by design, or an advisory hardening finding
    not_checked: dict[str, str] = field(default_factory=dict)        # name -> reason
    not_applicable: dict[str, str] = field(default_factory=dict)     # name -> reason

    @property
    def ran(self) -> set[str]:
        return self.passed | self.failed


def run_suite(tmp_path: Path, *args: str, timeout: float = 900, env: dict | None = None,
              prefix: tuple[str, ...] = ()) -> Verdicts:
    """The suite's verdicts; `prefix` is a command the suite runs under (`provision.py lab run ... --`)."""
    junit = tmp_path / "junit.xml"
    cmd = [*prefix, sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q",
           "-o", NO_REPORTS, f"--junitxml={junit}", "--rootdir", str(REPO),
           # -c: an option value that is an existing path (--state-dir /tmp/x) would otherwise take part
           # in pytest's search for its ini file, which then misses pytest.ini (and its markers).
           "-c", str(REPO / "pytest.ini"), *args]
    if not any(a.startswith("--results") for a in args):
        cmd.append(f"--results={tmp_path / 'results.json'}")     # not the repo's reports/, which other runs share
    # The CI job's own step summary is not a self-test's run to append to.
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "GITHUB_STEP_SUMMARY"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    out = proc.stdout + proc.stderr
    passed, failed, skipped, xfailed = set(), set(), set(), set()
    not_checked, not_applicable = {}, {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            skip = case.find("skipped")
            if case.find("failure") is not None or case.find("error") is not None:
                failed.add(name)
            elif skip is not None and skip.get("type") == "pytest.xfail":
                # xfail is how the suite reports a finding accepted by design or advisory; not a skip.
                xfailed.add(name)
            elif skip is not None:
                skipped.add(name)
                reason = skip.get("message", "")
                if reason.startswith("not applicable: "):
                    not_applicable[name] = reason.removeprefix("not applicable: ")
                else:
                    not_checked[name] = reason.removeprefix("not checked: ")
            else:
                passed.add(name)
    return Verdicts(proc.returncode, passed, failed, skipped, out, xfailed, not_checked, not_applicable)


def message_of(v: Verdicts, name: str) -> str:
    """A check's message (why violated, or why not checked) as the run's terminal summary shows it
    ("  N.N name: message")."""
    found = [line.split(f" {name}: ", 1)[1] for line in v.output.splitlines() if f" {name}: " in line]
    assert found, f"no message for {name} in the summary\n{v.output[-3000:]}"
    return found[0]
