"""Every file the project reads or writes, never through a link; one module for awsenv/, lab/ and
compliance/. Two kinds, each with its own rules:

Files we keep (state folders, the lab's files in them, reports): in folders that are ours.
The tool often runs as root and is pointed at folders other people can reach (a shared
--state-dir, a CI workspace). Two rules, checked at every use:

- A folder is used only if it is ours: owned by the invoking user, not writable by group or others,
  and every folder above it owned by root or by us and not writable by others either (a folder
  everyone may write, like /tmp, only with its sticky bit). Then nobody else can plant a file or a
  link in it, nor swap it for another folder between our check and our use. A folder this module
  creates is made so (0700 for state, 0755 for reports).
- No file is reached through a link. Every file is opened relative to its folder's own descriptor
  with O_NOFOLLOW. A write goes to a new temporary file (O_EXCL) in the same folder, is fsynced,
  and is renamed over the name: a rename replaces a link at the destination, it never follows it,
  and a reader never sees half a file. A read refuses a link, anything but a regular file, and a
  file of another owner.

Files a user names that need not be ours (compliance/: --results, --history, --baseline,
--waivers, --asff, the CI's step summary, a merge's inputs and output): written to a temporary
file in the same folder and renamed over the name (a link there is replaced, never followed; a
reader never sees half a file); read and appended to only as a regular file reached without a link.
Their folders are not owner-checked: a teammate's waivers file or a CI runner's summary file is
theirs, and reading or adding to it is what the user asked.

Every refusal is one line (a FileError, which is an EnvError) that names the path and says why.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from .errors import EnvError

STATE_DIR_MODE = 0o700
REPORTS_DIR_MODE = 0o755
MAX_READ = 64 * 1024 * 1024      # a results file of a very large fleet; anything bigger is not ours


class FileError(EnvError):
    """A file or folder that can't be read or written as asked; the message is one line naming it."""


class UnsafePath(FileError):
    """A folder or file that isn't ours to use: a link, another owner's, writable by others."""


def _who(uid: int) -> str:
    import pwd

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _check_folder(st: os.stat_result, path: Path, what: str) -> None:
    me = os.geteuid()
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{what} {path} is not a folder; give a folder (it is created if missing)")
    if st.st_uid != me:
        raise UnsafePath(f"{what} {path} belongs to {_who(st.st_uid)}, not to you ({_who(me)}); refusing to use a "
                         "folder someone else controls: choose one of your own")
    if st.st_mode & 0o022:
        raise UnsafePath(f"{what} {path} is writable by {'group and others' if st.st_mode & 0o002 else 'its group'} "
                         f"(mode {stat.S_IMODE(st.st_mode):o}); refusing it, since others could plant links in it: "
                         f"chmod go-w {path}, or choose another folder")


def _check_above(path: Path, what: str) -> None:
    """Every folder above `path` (as given, and as the links in it resolve) is root's or ours, and not
    writable by others unless sticky: nobody else can rename `path` away and put their own in its place."""
    me = os.geteuid()
    trusted = (0, me)
    given = Path(os.path.abspath(path))
    for above in [*reversed(given.parents), given]:
        try:
            st = os.lstat(above)
        except FileNotFoundError:
            break
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in trusted:
            raise UnsafePath(f"{what} {path} is reached through {above}, a link that belongs to {_who(st.st_uid)}; "
                             "refusing to follow it")
    real = Path(os.path.realpath(given))
    for above in reversed(real.parents):
        try:
            st = os.stat(above)
        except FileNotFoundError:
            break       # made by ensure_folder, as it should be
        writable_by_others = st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX
        if st.st_uid not in trusted or writable_by_others:
            why = (f"belongs to {_who(st.st_uid)}" if st.st_uid not in trusted else
                   f"is writable by others (mode {stat.S_IMODE(st.st_mode):o}, no sticky bit)")
            raise UnsafePath(f"{what} {path}: the folder above it, {above}, {why}, so someone else could swap "
                             "it; choose a folder under one of your own")


def check_folder(path: Path, what: str = "state folder") -> bool:
    """True if the folder exists and is ours (raises UnsafePath if it is not); False if it doesn't exist."""
    path = Path(path)
    _check_above(path, what)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        raise UnsafePath(f"{what} {path} is not a folder (something above it is a file)") from None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{what} {path} is a symbolic link; refusing to follow it (give the folder itself)")
    _check_folder(st, path, what)
    return True


def ensure_folder(path: Path, mode: int = STATE_DIR_MODE, what: str = "state folder") -> bool:
    """The folder, checked, created (with the folders above it, 0755) if missing. True if this call created it."""
    path = Path(path)
    if check_folder(path, what):
        return False
    missing = []
    for above in [path, *Path(os.path.abspath(path)).parents]:
        if os.path.lexists(above):
            break
        missing.append(above)
    for n, folder in enumerate(reversed(missing)):
        try:
            # The umask can only take bits away: never group- or world-writable.
            os.mkdir(folder, mode if n == len(missing) - 1 else 0o755)
        except FileExistsError:
            pass    # made by a concurrent command meanwhile: checked below like any other
        except NotADirectoryError:
            raise UnsafePath(f"{what} {path} is not a folder (something above it is a file)") from None
    check_folder(path, what)
    return True


def _folder_fd(folder: Path, what: str, create: bool, mode: int) -> int:
    if create:
        ensure_folder(folder, mode, what)
    else:
        check_folder(folder, what)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        # The folder we hold is the one we checked (not one swapped in since).
        _check_folder(os.fstat(fd), folder, what)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_link(path: Path) -> UnsafePath:
    return UnsafePath(f"{path} is a symbolic link; refusing to follow it (remove it, or choose another folder)")


def _check_file(fd: int, path: Path) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(f"{path} is not a regular file; refusing to use it")
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"{path} belongs to {_who(st.st_uid)}, not to you; refusing to use it")


def write_private(path: Path, data: bytes | str, mode: int = 0o600, folder_mode: int = STATE_DIR_MODE,
                  what: str = "state folder") -> None:
    """Replace `path` with `data`: a new file, `mode` from its first byte, renamed over the name."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    dfd = _folder_fd(path.parent, what, create=True, mode=folder_mode)
    tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            os.fchmod(fd, mode)     # the umask must not decide who may read it
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dfd)
        except OSError:
            pass
        raise
    finally:
        os.close(dfd)


def reserve(path: Path, mode: int = 0o644, folder_mode: int = REPORTS_DIR_MODE, what: str = "reports folder") -> Path:
    """A new, empty file (O_EXCL) beside `path` for another program to write by name; publish() it
    afterwards. For writers that open their file themselves (pytest-html, junitxml)."""
    path = Path(path)
    dfd = _folder_fd(path.parent, what, create=True, mode=folder_mode)
    try:
        tmp = f".{path.name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        os.fchmod(fd, mode)
        os.close(fd)
    finally:
        os.close(dfd)
    return path.parent / tmp


def publish(reserved: Path, path: Path, what: str = "reports folder") -> None:
    """Rename a reserve()d file over `path` (a link there is replaced, never followed)."""
    dfd = _folder_fd(Path(path).parent, what, create=False, mode=REPORTS_DIR_MODE)
    try:
        os.replace(Path(reserved).name, Path(path).name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def create_private(path: Path, data: bytes | str, mode: int = 0o600) -> None:
    """A new file at `path`, never over anything already there (a file or a link): FileExistsError."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    dfd = _folder_fd(path.parent, "state folder", create=True, mode=STATE_DIR_MODE)
    try:
        fd = os.open(path.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            os.fchmod(fd, mode)
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


def _open_in_folder(path: Path, flags: int, mode: int = 0o600, create: bool = True) -> int:
    """`path` opened with `flags` relative to its checked folder, never through a link, and checked
    to be a regular file of ours; the caller closes it."""
    dfd = _folder_fd(path.parent, "state folder", create=create, mode=STATE_DIR_MODE)
    try:
        try:
            fd = os.open(path.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:     # O_NOFOLLOW met a link
                raise _refuse_link(path) from None
            raise
    finally:
        os.close(dfd)
    try:
        _check_file(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_append(path: Path, mode: int = 0o600) -> int:
    """An O_APPEND descriptor on `path` (created if missing), never through a link."""
    return _open_in_folder(Path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)


def append_private(path: Path, data: bytes | str) -> None:
    """Append `data` to `path` and fsync it (a line of a ledger survives a crash right after)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = open_append(path)
    try:
        os.write(fd, raw)
        os.fsync(fd)
    finally:
        os.close(fd)


def open_lock(path: Path) -> int:
    """A read-write descriptor on the lock file `path` (created if missing), never through a link."""
    return _open_in_folder(Path(path), os.O_RDWR | os.O_CREAT)


def read_private(path: Path) -> bytes:
    """The bytes of `path`, a regular file of ours reached without a link (FileNotFoundError if missing)."""
    path = Path(path)
    if not os.path.lexists(path.parent):
        raise FileNotFoundError(2, "No such file or directory", str(path))
    fd = _open_in_folder(path, os.O_RDONLY | os.O_NONBLOCK, create=False)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: Path) -> str | None:
    """read_private as text, None when the file is missing."""
    try:
        return read_private(path).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    """Remove the name `path` from its folder (a link is removed, never what it points to)."""
    path = Path(path)
    if not os.path.lexists(path.parent):
        return
    dfd = _folder_fd(path.parent, "state folder", create=False, mode=STATE_DIR_MODE)
    try:
        os.unlink(path.name, dir_fd=dfd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dfd)


# --- files a user names (compliance/): link-safe, not owner-checked ------------------------------
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


def read_given(path: Path) -> str:
    """The UTF-8 text of a file a user named (FileError if missing, a link, not a regular file, too big)."""
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
    text = read_given(path)
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


def read_given_yaml(path: Path):
    """The data of a YAML file a user named: read as read_given does, then parsed safely. FileError
    says why not in one line ("PATH: not YAML at line N (problem)")."""
    import yaml

    text = read_given(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise FileError(f"{path}: not YAML{at} ({getattr(exc, 'problem', None) or 'syntax'})") from None
