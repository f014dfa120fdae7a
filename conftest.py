"""Loads the suite's plugin (fixtures/): options, verdicts, lifecycle, fixtures, report."""
pytest_plugins = [
    "fixtures.options",
    "fixtures.verdicts",
    "fixtures.lifecycle",
    "fixtures.environment",
    "fixtures.report",
    "fixtures.report.outputs",
]

# `pytest .` or `pytest /path/to/repo` names the whole folder: the verification suite is tests/
# only. The project's own tests run with their own ini (-c selftests/pytest.ini), which never loads
# this file.
collect_ignore = ["selftests", "bench", "examples", "reports", ".state"]
