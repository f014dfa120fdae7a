"""The base root filesystem every instance boots: Debian bookworm from debootstrap, built once, cached.

Host-specific files (resolv.conf, hostname, machine-id, SSH host keys) are stripped here and
written per instance (instances.py), like cloud-init does on EC2.
"""
from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import time
from pathlib import Path

from .aptsources import debian_mirror
from .errors import LabError
from .names import CACHE_DIR, cache_in_use

SUITE = "bookworm"
# What the checks need on a host: sshd, sudo, ping, curl, a TCP probe (nc), ps for service checks.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "sudo", "iputils-ping",
            "curl", "netcat-openbsd", "procps", "ca-certificates"]
LOGIN_USER = "ec2-user"
SSHD_CONF = "PasswordAuthentication no\nPermitRootLogin no\nKbdInteractiveAuthentication no\nUseDNS no\n"
# Units that have nothing to do in a container whose network the fabric owns.
MASK = ["systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
        "getty@tty1.service", "console-getty.service", "apt-daily.timer", "apt-daily-upgrade.timer",
        "e2scrub_all.timer", "fstrim.timer"]
RECIPE_VERSION = "3"


def _recipe_id() -> str:
    text = "|".join([SUITE, RECIPE_VERSION, LOGIN_USER, SSHD_CONF, *PACKAGES, *MASK])
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def base_dir() -> Path:
    return CACHE_DIR / f"base-{SUITE}-{_recipe_id()}"


def ready() -> bool:
    return (base_dir() / ".lab-complete").is_file()


def _chroot(root: Path, *args: str) -> None:
    proc = subprocess.run(["chroot", str(root), *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise LabError(f"in the base image, {' '.join(args)}: {(proc.stderr or proc.stdout).strip()[:200]}")


def ensure_base(progress=print) -> Path:
    """Return the cached rootfs, building it first (about a minute) if this recipe isn't cached yet."""
    root = base_dir()
    if ready():
        return root
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / ".base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another start() may be building the same image
        if ready():
            return root
        tmp = root.with_name(root.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        mirror = debian_mirror(SUITE)
        progress(f"lab: building the base image (debootstrap {SUITE} from {mirror}, about a minute) ...")
        t0 = time.monotonic()
        _debootstrap(tmp, mirror, progress)
        progress(f"lab: base image: customising (user {LOGIN_USER}, sshd, no host identity) ...")
        _customise(tmp)
        (tmp / ".lab-complete").write_text(f"built in {time.monotonic() - t0:.1f}s\n")
        tmp.rename(root)
        progress(f"lab: base image ready in {time.monotonic() - t0:.0f}s: {root}")
        for old in CACHE_DIR.glob(f"base-{SUITE}-*"):  # older recipes, unless a running lab uses one
            if old != root and not old.name.endswith(".tmp") and not cache_in_use(old):
                shutil.rmtree(old, ignore_errors=True)
    return root


def _debootstrap(tmp: Path, mirror: str, progress) -> None:
    args = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(tmp), mirror]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = 0.0
    tail = []
    deadline = time.monotonic() + 900
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-5:]
        # debootstrap prints hundreds of lines; show one every few seconds so a person sees it moving.
        if line.startswith("I: ") and time.monotonic() - last > 5:
            progress(f"lab:   {line[3:].strip()}")
            last = time.monotonic()
        if time.monotonic() > deadline:
            proc.kill()
            raise LabError("debootstrap took more than 15 minutes; giving up on the base image")
    if proc.wait() != 0:
        raise LabError(f"debootstrap failed: {' | '.join(tail)[-300:]}")


def _customise(root: Path) -> None:
    _chroot(root, "useradd", "--create-home", "--shell", "/bin/bash", LOGIN_USER)
    (root / "etc/sudoers.d/90-ec2-user").write_text(f"{LOGIN_USER} ALL=(ALL) NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/90-ec2-user").chmod(0o440)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONF)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for name in ("etc/resolv.conf", "etc/hostname"):
        (root / name).unlink(missing_ok=True)
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    # apt sources point at the lab mirror per instance; the lists are fetched by `apt-get update`.
    (root / "etc/apt/sources.list").write_text("")
    for f in (root / "var/lib/apt/lists").glob("*"):
        if f.is_file():
            f.unlink()
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for unit in MASK:
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    _chroot(root, "systemctl", "enable", "ssh.service")
