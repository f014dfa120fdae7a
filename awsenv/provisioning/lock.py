"""One `up` or `down` of an environment at a time, on this machine.

An advisory lock (flock) on a file in the environment's state directory, held for the whole
command; the file says who holds it, so the second command can say so and stop before it touches
anything. The kernel drops the lock when the holder dies, so a crash never leaves it stuck. The
file is opened like every file of a state folder (common/files.py): in a folder of ours, never
through a link.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from pathlib import Path

from common import files

from ..errors import EnvError

LOCK_FILE = ".twotier-lock"


@contextlib.contextmanager
def environment_lock(state_dir: Path, env: str, what: str):
    path = Path(state_dir) / LOCK_FILE
    fd = files.open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise EnvError(f"env {env!r} is busy: {holder} holds {path}; wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({what}, since {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(sys.argv[:2])})\n".encode(), 0)
        yield
    finally:
        os.close(fd)
