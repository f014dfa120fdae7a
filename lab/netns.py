"""Small helpers around `ip`, `nft` and setns; every creator here is also a safe remover."""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import threading
from pathlib import Path

from .errors import LabError
from .names import NETNS_DIR

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 30.0, cwd=None) -> str:
    """Run a program (an argv list: never a shell); on failure raise LabError with its first stderr
    line (one line for a person)."""
    try:
        proc = subprocess.run(args, input=input, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        raise LabError(f"timed out after {timeout:.0f}s waiting for: {' '.join(args)[:200]}") from None
    if check and proc.returncode != 0:
        err = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise LabError(f"{' '.join(args)[:160]}: {err[0] if err else f'exit {proc.returncode}'}")
    return proc.stdout


def ip(ns: str, *args: str, check: bool = True) -> str:
    return run("ip", "-n", ns, *args, check=check)


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def ensure_ns(ns: str, forwarding: bool = False) -> bool:
    """Create the namespace with lo up; returns True if it was new."""
    if exists(ns):
        return False
    run("ip", "netns", "add", ns)
    ip(ns, "link", "set", "lo", "up")
    if forwarding:
        sysctl(ns, "net.ipv4.ip_forward", "1")
    # No IPv6 anywhere in the lab: nothing to route, nothing to leak.
    sysctl(ns, "net.ipv6.conf.all.disable_ipv6", "1")
    sysctl(ns, "net.ipv6.conf.default.disable_ipv6", "1")
    return True


def sysctl(ns: str, key: str, value: str) -> None:
    run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{key}={value}")


def remove_ns(ns: str) -> None:
    """Delete a namespace (its links, routes and nft tables go with it); fine if already gone."""
    if exists(ns):
        run("ip", "netns", "del", ns, check=False)


def list_ns(prefix: str) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def ns_pids(ns: str) -> list[int]:
    out = run("ip", "netns", "pids", ns, check=False)
    return [int(x) for x in out.split()]


def links(ns: str) -> set[str]:
    out = ip(ns, "-o", "link", "show", check=False)
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def veth(ns_a: str, name_a: str, ns_b: str, name_b: str) -> None:
    """A veth pair created directly inside its two namespaces (never in the host's)."""
    ip(ns_a, "link", "add", name_a, "type", "veth", "peer", "name", name_b, "netns", ns_b)
    ip(ns_a, "link", "set", name_a, "up")
    ip(ns_b, "link", "set", name_b, "up")


def nft(ns: str, script: str) -> None:
    run("ip", "netns", "exec", ns, "nft", "-f", "-", input=script)


def in_netns(ns: str, fn, timeout: float = 10.0):
    """Call fn() on a short-lived thread that has joined namespace `ns` (setns is per thread).

    Sockets made there keep that namespace, so the caller can use them with no route in the host's.
    """
    result: dict = {}

    def body():
        try:
            fd = os.open(str(NETNS_DIR / ns), os.O_RDONLY)
        except FileNotFoundError:
            result["error"] = LabError(f"lab network namespace {ns} does not exist (is the lab running?)")
            return
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                result["error"] = OSError(err, f"setns into {ns}: {os.strerror(err)}")
                return
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread, re-raised there
            result["error"] = exc
        finally:
            os.close(fd)

    t = threading.Thread(target=body, name=f"setns-{ns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise LabError(f"timed out after {timeout:.0f}s inside namespace {ns}")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _unescape_mount_field(field: str) -> str:
    """/proc/self/mounts writes space, tab, newline and backslash in paths as \\040, \\011, \\012, \\134."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, as real paths (escapes decoded)."""
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as f:
        return [_unescape_mount_field(line.split()[1]) for line in f if len(line.split()) > 1]


def mounted(path: Path) -> bool:
    return str(path) in mount_points()


def mounts_under(prefix: Path) -> list[str]:
    p = str(prefix).rstrip("/") + "/"
    return [m for m in mount_points() if m.startswith(p)]
