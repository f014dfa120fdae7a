"""Ctrl-C and SIGTERM always interrupt, as KeyboardInterrupt, so every exit path cleans up.

A process started as a background job of a non-interactive shell (CI runners, `cmd &` in a
script) inherits SIGINT as *ignored*, and Python then keeps it ignored: a Ctrl-C to the script's
process group would be swallowed and `up` would carry on building. Both handlers are set
explicitly, whatever was inherited.
"""
from __future__ import annotations

import signal


def _terminate(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def arm() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
