"""Loads the suite's plugin (fixtures/): options, lifecycle, fixtures, report."""
pytest_plugins = [
    "fixtures.options",
    "fixtures.lifecycle",
    "fixtures.environment",
    "fixtures.report",
]
