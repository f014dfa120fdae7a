"""A pytest plugin of bench/fleet.py only (`-p fleet_timing`, bench/ on PYTHONPATH): when the session
was configured, when its first check started, when its last ended, and when the session ended
(report, junit and results.json written), into the JSON file TWOTIER_BENCH_TIMING names; and the
process's own memory: its resident size when configured and its peak (VmHWM). Not wait4's
ru_maxrss: Linux carries the parent's peak over the fork and exec into the child's, so a child of
the benchmark (which holds the fleet it built) would read the benchmark's size."""
from __future__ import annotations

import json
import os
import time

import pytest

_marks: dict[str, float] = {}


def _memory_kb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def pytest_configure(config):
    _marks["configured"] = time.monotonic()
    _marks["wall_configured"] = time.time()
    _marks["rss_configured_kb"] = _memory_kb("VmRSS")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtestloop(session):
    _marks["checks_start"] = time.monotonic()
    yield
    _marks["checks_done"] = time.monotonic()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    _marks["end"] = time.monotonic()
    _marks["wall_end"] = time.time()
    _marks["peak_kb"] = _memory_kb("VmHWM")
    path = os.environ.get("TWOTIER_BENCH_TIMING")
    if path and not hasattr(config, "workerinput"):
        with open(path, "w") as f:
            json.dump(_marks, f)
