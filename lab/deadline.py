"""The lab's one bounded wait: poll until a check says done, or the time is up.

Every wait in the lab (a daemon's API answering, containers gone, a cgroup released, sshd
accepting, a converge pass done) goes through `poll`. A check returns something truthy when done
(that value is returned) and may raise to stop the wait with its own reason; on timeout `poll`
returns None and the caller says what it was waiting for.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(check: Callable[[], T], timeout: float, interval: float = 0.05, started: float | None = None) -> T | None:
    """check() until truthy (returned) or `timeout` seconds after `started` (default: now) pass."""
    deadline = (started if started is not None else time.monotonic()) + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)
