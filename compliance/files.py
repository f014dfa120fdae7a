"""Every file this package writes or reads, written link-safe.

A report folder may be shared or restored from a cache: a file is written to a temporary name
in its own folder (created exclusively, never through a link) and renamed over the target, so a
reader never sees half a file and a symlink planted at the target is replaced, not followed.
Reads refuse links and anything but a regular file. One function per operation, so the lead can
swap them for the project-wide ones (branch issue-17) in one place.
"""
from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

MAX_READ = 64 * 1024 * 1024      # a results file of a very large fleet; anything bigger is not ours


class FileError(Exception):
    """A file that can't be read or written as asked; the message is one line."""


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)   # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def append_text(path: Path, text: str) -> None:
    """Append to a file that may exist (a CI step summary), never through a link."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileError(f"{path}: not a regular file")
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise FileError(f"{path}: no such file") from None
    except OSError as exc:
        raise FileError(f"{path}: {exc.strerror or exc} (links are not followed)") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileError(f"{path}: not a regular file")
        if info.st_size > MAX_READ:
            raise FileError(f"{path}: {info.st_size} bytes, more than a results file can be")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_READ + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileError(f"{path}: not UTF-8 text") from None


def read_json(path: Path):
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None


def remove_own(path: Path) -> bool:
    """Remove a file this user wrote (a regular file it owns, not a link); leave anything else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        return False
    os.unlink(path)
    return True
