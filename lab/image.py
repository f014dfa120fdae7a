"""The base root filesystem every instance boots (and, with mirror.py, the lab's package mirror).

Both are built once and cached under CACHE_DIR:
- the image: Debian bookworm, mmdebstrap's `minbase` plus PACKAGES (the same set debootstrap's
  minbase gave: the merged-usr hook installs usr-is-merged instead of usrmerge and perl), with dpkg
  under eatmydata during the build;
- the mirror (mirror.py): Apache + MariaDB and whatever they need beyond the image.

`ensure_image_and_mirror()` builds whatever is missing, both at once, from one private apt (one
`apt-get update`, one download cache): mmdebstrap gets the lists copied in (`--skip=update`) and,
while it installs, the mirror's closure is computed and fetched against the dpkg status the image
*will* have (apt predicts mmdebstrap's package set: same selection, same resolver). Once the image
is done the closure is computed again against its real status; whatever the prediction missed is
fetched then, so nothing is fetched twice.

Host-specific files (resolv.conf, hostname, machine-id, SSH host keys) are stripped here and
written per instance (instances.py), like cloud-init does on EC2.

Cache hygiene (marked folders, the lock, the tools run with a heartbeat) is cache.py's, for both.
mirror.py knows nothing of the image but what it is handed (the image's folder, its suite, its
package selection): it never imports this module.
"""
from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from . import cache, mirror
from .aptsources import debian_mirror
from .errors import LabError, LabPrerequisiteError
from .names import CACHE_DIR

SUITE = "bookworm"
VARIANT = "minbase"
# What the checks need on a host: sshd, sudo, ping, curl, a TCP probe (nc), ps for service checks;
# and python3, which AL2023's and Debian's cloud images ship and configuration tools (Ansible's
# modules) run on the host.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "sudo", "iputils-ping",
            "curl", "netcat-openbsd", "procps", "ca-certificates", "eatmydata", "python3"]
LOGIN_USER = "ec2-user"
SSHD_CONF = "PasswordAuthentication no\nPermitRootLogin no\nKbdInteractiveAuthentication no\nUseDNS no\n"
# Units that have nothing to do in a container whose network the fabric owns.
MASK = ["systemd-networkd.service", "systemd-networkd.socket", "systemd-networkd-wait-online.service",
        "getty@tty1.service", "console-getty.service", "apt-daily.timer", "apt-daily-upgrade.timer",
        "e2scrub_all.timer", "fstrim.timer"]
# dpkg inside the instances unpacks without an fsync per file, the way image builders set it up
# (an instance's disk is an overlay that a crash throws away anyway): faster Apache/MariaDB installs.
DPKG_CFG = ("etc/dpkg/dpkg.cfg.d/twotier-lab-unsafe-io", "force-unsafe-io\n")
# ... and apt runs dpkg under eatmydata, which skips the fsyncs of dpkg's own database too (the
# larger cost: installs measured 10.5 s -> see bench). Lab images only; real hosts are untouched.
DPKG_WRAPPER = ("usr/local/sbin/dpkg-eatmydata", "#!/bin/sh\nexec /usr/bin/eatmydata /usr/bin/dpkg \"$@\"\n")
APT_DPKG = ("etc/apt/apt.conf.d/90twotier-lab-eatmydata", 'Dir::Bin::dpkg "/usr/local/sbin/dpkg-eatmydata";\n')
# mmdebstrap's own hooks: merged /usr as debootstrap does it, and dpkg under eatmydata while building.
HOOKS = ("/usr/share/mmdebstrap/hooks/merged-usr", "/usr/share/mmdebstrap/hooks/eatmydata")
RECIPE_VERSION = "5"   # part of the cache key: a new recipe builds a new image, the old one goes

BUILD_TIMEOUT = 1200.0      # mmdebstrap, seconds (about 15 s here)
PREFETCH = True             # fetch the mirror while mmdebstrap installs (False: after it; for measuring)


def _recipe_id() -> str:
    text = "|".join([SUITE, VARIANT, RECIPE_VERSION, "mmdebstrap", *HOOKS, LOGIN_USER, SSHD_CONF, *DPKG_CFG,
                     *DPKG_WRAPPER, *APT_DPKG, *PACKAGES, *MASK])
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def base_dir() -> Path:
    return CACHE_DIR / f"base-{SUITE}-{_recipe_id()}"


def ready() -> bool:
    return (base_dir() / ".lab-complete").is_file()


# --- the image's recipe -----------------------------------------------------------------------
def native_arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def base_selection() -> tuple[list[str], list[str]]:
    """(apt options, install arguments) that select what `mmdebstrap --variant=minbase --include=PACKAGES`
    with the merged-usr hook installs: Essential:yes of SUITE (apt not counted as essential), then
    Priority:required, apt by its priority, usr-is-merged, PACKAGES; no recommends. mirror.py uses it
    to predict the image's dpkg status; the real status is checked once the image exists."""
    scope = f"?or(?archive(^{SUITE}$),?codename(^{SUITE}$)),?architecture({native_arch()})"
    return (["-o", "pkgCacheGen::ForceEssential=,", "-o", "APT::Install-Recommends=false"],
            [f"?narrow({scope},?essential)", f"?narrow({scope},?and(?priority(required),?not(?essential)))",
             "usr-is-merged", *PACKAGES])


class Bootstrap:
    """mmdebstrap into `rootfs` from the lists of a mirror.AptWork, in its own session; its status
    lines are passed on as they come, and wait() says what it waits for and kills it at the deadline."""

    QUIET = ("I: running --", "I: chroot architecture", "I: automatically chosen", "I: finding correct",
             "I: skipping update")

    def __init__(self, rootfs: Path, apt, progress):
        self.rootfs, self.apt, self.progress = rootfs, apt, progress
        self.proc: subprocess.Popen | None = None
        self.tail: deque[str] = deque(maxlen=30)
        self.step = "starting"
        self.t0 = self.last_said = time.monotonic()

    def command(self) -> list[str]:
        for hook in HOOKS:
            if not Path(hook).is_dir():
                raise LabPrerequisiteError(f"mmdebstrap's hook folder {hook} is missing: apt-get install mmdebstrap")
        copy_lists = f'cp -a {shlex.quote(str(self.apt.lists))}/. "$1"/var/lib/apt/lists/'
        return ["mmdebstrap", "--mode=unshare", f"--variant={VARIANT}", "--skip=update",
                *[f"--hook-dir={hook}" for hook in HOOKS], f"--setup-hook={copy_lists}",
                f"--include={','.join(PACKAGES)}", SUITE, str(self.rootfs), str(self.apt.sources)]

    def start(self) -> None:
        # --mode=unshare as root: mmdebstrap's mounts (/proc, /sys, /dev) live in a mount namespace of
        # its own, so a killed build can't leave them behind on the host.
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
        self.reader = threading.Thread(target=self._read, name="mmdebstrap-output", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None    # start() made both
        for line in self.proc.stdout:
            line = line.rstrip()
            self.tail.append(line)
            if line.startswith("I: ") and not line.startswith(self.QUIET):
                self.step = line[3:].rstrip(".")
                self.last_said = time.monotonic()
                self.progress(f"lab:   image: {self.step}")

    def wait(self) -> None:
        assert self.proc is not None        # start() made it
        while self.proc.poll() is None:
            now = time.monotonic()
            if now - self.t0 > BUILD_TIMEOUT:
                self.kill()
                raise LabError(f"mmdebstrap took more than {BUILD_TIMEOUT:.0f}s (last step: {self.step}); "
                               f"giving up on the base image")
            if now - self.last_said >= cache.HEARTBEAT:
                self.progress(f"lab:   image: still waiting for mmdebstrap: {self.step} "
                              f"({now - self.t0:.0f}s, gives up at {BUILD_TIMEOUT:.0f}s)")
                self.last_said = now
            time.sleep(0.2)
        self.reader.join(timeout=5)  # the last lines (the errors) come after the exit
        if self.proc.returncode != 0:
            errors = [ln for ln in self.tail if ln.startswith("E:")] or list(self.tail)[-3:]
            raise LabError(f"mmdebstrap failed (exit {self.proc.returncode}): {' | '.join(errors)[-400:]}")

    def kill(self) -> None:
        if self.proc is not None:
            cache.kill(self.proc)


# --- building ----------------------------------------------------------------------------------
def ensure_base(progress=print) -> Path:
    """Return the cached rootfs, building it first (about 15 s) if this recipe isn't cached yet."""
    root = base_dir()
    if ready():
        return root
    with cache.lock("base", "base image", progress):
        if not ready():
            _build(progress, with_mirror=False)
    return root


def ensure_image_and_mirror(progress=print) -> tuple[Path, Path]:
    """(base rootfs, package mirror folder), building whatever is missing; both at once when both are."""
    root, repo = base_dir(), mirror.repo_dir(base_dir())
    if ready() and mirror.ready(root):
        return root, repo
    t0 = time.monotonic()
    with cache.lock("base", "base image", progress), cache.lock("mirror", "package mirror", progress):
        if not ready():
            _build(progress, with_mirror=not mirror.ready(root))
        elif not mirror.ready(root):
            mirror.build(root, SUITE, progress)
    progress(f"lab: base image and package mirror ready in {time.monotonic() - t0:.1f}s")
    return root, repo


def _build(progress, with_mirror: bool) -> None:
    """Build the image (and the mirror alongside when with_mirror). The caller holds the base lock
    (and the mirror lock when with_mirror)."""
    root = base_dir()
    t0 = time.monotonic()
    work = cache.fresh_folder(CACHE_DIR / f"{root.name}.work", f"build folder of {root.name}")
    boot = None
    try:
        apt = mirror.AptWork(work / "apt", SUITE)
        apt.update(progress)
        also = " and the package mirror, side by side" if with_mirror else ""
        progress(f"lab: building the base image (mmdebstrap {SUITE} {VARIANT} + {len(PACKAGES)} packages "
                 f"from {debian_mirror(SUITE)}){also} ...")
        boot = Bootstrap(work / "rootfs", apt, progress)
        boot.start()
        ahead = mirror.prefetch(apt, work, base_selection, progress) if with_mirror and PREFETCH else None
        boot.wait()
        progress(f"lab:   image: customising (user {LOGIN_USER}, sshd, dpkg unsafe-io, no host identity) ...")
        rootfs = work / "rootfs"
        _customise(rootfs)
        cache.mark(rootfs, f"base image {root.name}")
        (rootfs / ".lab-complete").write_text(f"built by mmdebstrap in {time.monotonic() - t0:.1f}s\n")
        if root.exists() or root.is_symlink():
            cache.remove(root)  # an unfinished one of ours (no .lab-complete)
        rootfs.rename(root)
        progress(f"lab: base image ready in {time.monotonic() - t0:.1f}s: {root}")
        if with_mirror:
            mirror.finish(apt, root, work, ahead, progress)
    finally:
        if boot is not None:
            boot.kill()
        cache.discard(work, progress)
    cache.remove_old(CACHE_DIR, f"base-{SUITE}-*", root)
    if with_mirror:
        cache.remove_old(CACHE_DIR, "mirror-*", mirror.repo_dir(root))


def _chroot(root: Path, *args: str) -> None:
    proc = subprocess.run(["chroot", str(root), *args], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise LabError(f"in the base image, {' '.join(args)}: {(proc.stderr or proc.stdout).strip()[:200]}")


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
    for path, text in (DPKG_CFG, DPKG_WRAPPER, APT_DPKG):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    (root / DPKG_WRAPPER[0]).chmod(0o755)
    # apt sources point at the lab mirror per instance; the lists are fetched by `apt-get update`.
    # (mmdebstrap leaves the build's sources in sources.list.d: no instance could reach them.)
    (root / "etc/apt/sources.list").write_text("")
    for f in (root / "etc/apt/sources.list.d").glob("*"):
        if f.is_file() or f.is_symlink():
            f.unlink()
    for f in (root / "var/lib/apt/lists").glob("*"):
        if f.is_file():
            f.unlink()
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
    for unit in MASK:
        (root / "etc/systemd/system" / unit).unlink(missing_ok=True)
        (root / "etc/systemd/system" / unit).symlink_to("/dev/null")
    _chroot(root, "systemctl", "enable", "ssh.service")
