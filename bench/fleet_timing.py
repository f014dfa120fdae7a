"""A pytest plugin of bench/fleet.py only (`-p fleet_timing`, bench/ on PYTHONPATH): when the session
was configured, when its first check started, when its last ended, and when the session ended
(report, junit and results.json written), into the JSON file TWOTIER_BENCH_TIMING names."""
from __future__ import annotations

import json
import os
import time

import pytest

_marks: dict[str, float] = {}


def pytest_configure(config):
    _marks["configured"] = time.monotonic()
    _marks["wall_configured"] = time.time()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    _marks["checks_start"] = time.monotonic()
    yield
    _marks["checks_done"] = time.monotonic()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    _marks["end"] = time.monotonic()
    _marks["wall_end"] = time.time()
    path = os.environ.get("TWOTIER_BENCH_TIMING")
    if path and not hasattr(config, "workerinput"):
        with open(path, "w") as f:
            json.dump(_marks, f)
