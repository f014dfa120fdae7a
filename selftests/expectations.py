"""Which checks each drift must fail, read from the checks' own markers (fails_on and
fails_on_with_hosts in tests/), so renaming a check never touches the provisioning code.

Collected once per process by running pytest's collection of tests/ with this module as a plugin.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from selftests.suite_runner import NO_REPORTS

REPO = Path(__file__).resolve().parent.parent
OUT_VAR = "TWOTIER_EXPECTATIONS_OUT"


@dataclass(frozen=True)
class Check:
    name: str
    fails_on: frozenset[str]
    fails_on_with_hosts: frozenset[str]
    host: bool          # reaches the hosts: runs only where they exist


def pytest_collection_modifyitems(session, config, items):
    """Plugin side: write every collected check's drift markers to the file OUT_VAR names."""
    out = os.environ.get(OUT_VAR)
    if not out:
        return
    checks = {}
    for item in items:
        on = {d for m in item.iter_markers("fails_on") for d in m.args}
        with_hosts = {d for m in item.iter_markers("fails_on_with_hosts") for d in m.args}
        checks[item.name] = {"fails_on": sorted(on), "fails_on_with_hosts": sorted(with_hosts),
                             "host": item.get_closest_marker("host") is not None}
    Path(out).write_text(json.dumps(checks))


@functools.cache
def checks() -> dict[str, Check]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "checks.json"
        proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO),
                               str(REPO / "tests"), "--collect-only", "-q", "-p", "no:cacheprovider",
                               "-p", "selftests.expectations", "-o", NO_REPORTS],
                              cwd=REPO, capture_output=True, text=True, env=dict(os.environ, **{OUT_VAR: str(out)}),
                              timeout=120)
        if not out.exists():
            raise RuntimeError(f"collecting tests/ failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        raw = json.loads(out.read_text())
    return {name: Check(name, frozenset(c["fails_on"]), frozenset(c["fails_on_with_hosts"]), c["host"])
            for name, c in raw.items()}


def expected_failures(drift: str, host_access: bool) -> set[str]:
    """The checks that must fail on this drift, on a target with or without hosts."""
    return {c.name for c in checks().values()
            if (drift in c.fails_on and (host_access or not c.host))
            or (host_access and drift in c.fails_on_with_hosts)}


def caught_by_a_host_check(drift: str) -> bool:
    return any(c.host and drift in c.fails_on for c in checks().values())
