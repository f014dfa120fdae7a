"""Loads the suite's plugin (fixtures/): options, verdicts, lifecycle, fixtures, report."""
pytest_plugins = [
    "fixtures.options",
    "fixtures.verdicts",
    "fixtures.lifecycle",
    "fixtures.environment",
    "fixtures.report",
]
