"""Loads the suite's plugin (fixtures/): options, verdicts, lifecycle, stages, hosts, changes, the
policies before a check, fixtures, probes, compliance, report."""
import sys

from awsenv.install import missing_line

_missing = missing_line("pytest")
if _missing:
    # SystemExit, not an exception pytest would wrap in "ImportError while loading conftest".
    print(f"error: {_missing}", file=sys.stderr)
    raise SystemExit(4)

pytest_plugins = [
    "fixtures.options",
    "fixtures.verdicts",
    "fixtures.probes",          # before lifecycle, which imports it (run-stats.json's negative_checks)
    "fixtures.lifecycle",
    "fixtures.fleet",
    "fixtures.stages",
    "fixtures.hosts",
    "fixtures.changes",
    "fixtures.policies",
    "fixtures.environment",
    # After lifecycle (its sessionstart reads --waivers and --baseline before anything is built) and
    # before report (its makereport turns a waived violation into "waived" before the report reads it).
    "fixtures.compliance",
    "fixtures.report",
    "fixtures.report.outputs",
]

# `pytest .` or `pytest /path/to/repo` names the whole folder: the verification suite is tests/
# only. The project's own tests run with their own ini (-c selftests/pytest.ini), which never loads
# this file.
collect_ignore = ["selftests", "bench", "examples", "reports", ".state"]
