"""A monotonic clock tests can hold still."""
from __future__ import annotations

import contextlib
import threading
import time


class PausableClock:
    """`time.monotonic` that can be held still: `with clock.paused(): ...`. For tests: a check made
    "immediately after" a call can't be outrun by a loaded machine, and real time runs on afterwards
    (the paused stretch is skipped, so every window still lasts its full length)."""

    def __init__(self, base=time.monotonic):
        self._base = base
        self._lock = threading.Lock()
        self._offset = 0.0
        self._held_at: float | None = None
        self._depth = 0

    def __call__(self) -> float:
        with self._lock:
            now = self._held_at if self._held_at is not None else self._base()
            return now - self._offset

    @contextlib.contextmanager
    def paused(self):
        with self._lock:
            if self._depth == 0:
                self._held_at = self._base()
            self._depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._offset += self._base() - self._held_at
                    self._held_at = None
