"""The lab's cache under CACHE_DIR (the base image, the package mirror, their build folders): how a
cache folder is made, kept apart from anyone else's and removed, one builder at a time, and how the
tools that fill it run.

Every folder the lab creates under CACHE_DIR carries MARKER, written by us; only marked folders are
ever removed (TWOTIER_LAB_CACHE may point at a shared folder), never one that a running lab uses
(names.cache_in_use), and only while holding the lock of that kind of folder. image.py and
mirror.py both build on this; neither knows the other's folders.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .errors import LabError
from .names import CACHE_DIR, cache_in_use

LOCK_TIMEOUT = 1800.0       # waiting for another process that builds the same cache
HEARTBEAT = 10.0            # a long step says it is still waiting at least this often

MARKER = ".twotier-lab-cache"
# The marker's text is the cache's on-disk format: caches made by earlier versions carry exactly
# this line (naming image.py, where it was first written), and only folders that do are removed.
MARKER_TEXT = "made by the twotier lab (lab/image.py); removable when no running lab uses it:"


# --- folders: marked, and only marked ones removed ----------------------------------------------
def mark(folder: Path, what: str) -> None:
    """Say in `folder` that the lab made it (the only folders the lab will ever remove)."""
    (folder / MARKER).write_text(f"{MARKER_TEXT} {what}\n")


def is_marked(folder: Path) -> bool:
    marker = folder / MARKER
    try:
        return (not folder.is_symlink() and not marker.is_symlink() and marker.is_file()
                and marker.read_text(errors="replace").startswith(MARKER_TEXT))
    except OSError:
        return False


def remove(folder: Path) -> None:
    """Remove a folder the lab made; LabError (and nothing removed) unless it is marked and unused."""
    if folder.is_symlink() or not folder.is_dir():
        raise LabError(f"refusing to remove {folder}: not a folder")
    if not is_marked(folder):
        raise LabError(f"refusing to remove {folder}: it has no {MARKER}, so the lab did not make it "
                       f"(move it away by hand if it is yours to remove)")
    if cache_in_use(folder):
        raise LabError(f"refusing to remove {folder}: a running lab (or a build) uses it")
    shutil.rmtree(folder)


def remove_old(cache_dir: Path, pattern: str, keep: Path) -> list[Path]:
    """Remove the folders matching `pattern` other than `keep` (older recipes, stale build folders),
    but only marked ones that no running lab uses. The caller holds the lock of that kind of folder,
    so no build of ours is using one. Returns what was removed."""
    removed = []
    for old in sorted(cache_dir.glob(pattern)):
        if old == keep or old.is_symlink() or not old.is_dir() or not is_marked(old) or cache_in_use(old):
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def fresh_folder(folder: Path, what: str) -> Path:
    """An empty marked folder (a stale one of ours is removed first; one not ours stops the build)."""
    if folder.exists() or folder.is_symlink():
        remove(folder)
    folder.mkdir(parents=True)
    mark(folder, what)
    return folder


def discard(folder: Path, progress) -> None:
    """Remove a build folder once done with it; what can't be removed is said and left for the next build."""
    try:
        if folder.exists():
            remove(folder)
    except (LabError, OSError) as exc:
        progress(f"lab:   left {folder} behind ({exc}); the next build removes it")


@contextlib.contextmanager
def lock(kind: str, what: str, progress=print, timeout: float = LOCK_TIMEOUT):
    """Hold CACHE_DIR/.<kind>.lock (another process may be building the same cache), saying so while waiting."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{kind}.lock", "w") as held:
        t0 = last = time.monotonic()
        while True:
            try:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                now = time.monotonic()
                if now - t0 > timeout:
                    raise LabError(f"gave up after {timeout:.0f}s waiting for another process to finish "
                                   f"building the {what} in {CACHE_DIR} (lock {held.name})") from None
                if now == t0 or now - last >= HEARTBEAT:
                    progress(f"lab: waiting for another process that is building the {what} in {CACHE_DIR} "
                             f"({now - t0:.0f}s, gives up at {timeout:.0f}s)")
                    last = now
                time.sleep(0.3)
        yield


# --- the tools that fill a cache ----------------------------------------------------------------
def run_step(args: list[str], what: str, progress, timeout: float, env: dict | None = None,
             cwd: Path | None = None) -> str:
    """Run a tool in its own session; while it runs, say every HEARTBEAT seconds that we still wait
    for `what`; kill it after `timeout` (or when we are interrupted). Returns stdout; LabError on failure."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, errors="replace", env=env, cwd=cwd, start_new_session=True)
    try:
        while True:
            try:
                out, err = proc.communicate(timeout=HEARTBEAT)
                break
            except subprocess.TimeoutExpired:
                waited = time.monotonic() - t0
                if waited > timeout:
                    raise LabError(f"gave up on {what} after {timeout:.0f}s") from None
                progress(f"lab:   still {what} ({waited:.0f}s, gives up at {timeout:.0f}s)")
    finally:
        kill(proc)
    if proc.returncode != 0:
        lines = (err.strip() or out.strip()).splitlines() or ["no output"]
        errors = [ln for ln in lines if ln.startswith("E:")] or lines[-1:]
        raise LabError(f"{what}: {args[0]} exited {proc.returncode}: {' | '.join(errors)[:300]}")
    return out


def kill(proc: subprocess.Popen) -> None:
    """Kill a tool we started (its whole session: it was started with start_new_session) if still running."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
