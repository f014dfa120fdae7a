"""Instances: each running instance in the API is a systemd-nspawn container booting real systemd.

Disk: one overlayfs per instance over the cached base image, its upper dir on the instance's own
tmpfs (under the state dir), so it survives a stop and start; terminate removes it. Not on the
state dir's filesystem: an ext4 without a journal (this project's CI machines) skips every inode
deleted in the last 30 s when it allocates one, so an install right after a teardown crawled
(4-8 s more per install, growing run to run); a tmpfs has no such scan, and the disk never
outlives the lab anyway (a lab stop deletes it). Identity is written per instance on first
boot, as cloud-init does on EC2: hostname, machine-id, SSH host key, ec2-user's authorized_keys
(the public key of the instance's key pair, from the API), resolv.conf (its VPC's resolver) and apt
sources (the lab's mirror). Network: the instance's own namespace, wired by fabric.py; the
container gets no CAP_NET_ADMIN, so root inside can't change the fabric.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from . import internet, names, netns
from .deadline import poll
from .errors import LabError
from .image import LOGIN_USER
from .world import Instance

POWEROFF = signal.SIGRTMIN + 4  # systemd's "poweroff" signal
POWEROFF_TIMEOUT = 15.0
BOOT_TIMEOUT = 30.0
# Each launcher moves itself ($$, the PID that then execs systemd-nspawn) into its own cgroups.
# The paths arrive as arguments, never inside the script: a state dir may hold quotes or spaces.
LAUNCHER = 'for c do [ "$c" = -- ] && break; mkdir -p -- "$c" && echo $$ > "$c/cgroup.procs"; shift; done; shift; exec "$@"'
# One OpenSSH public key on one line (what goes into authorized_keys: no options, no second key).
PUBLIC_KEY = re.compile(r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
                        r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [\x20-\x7e]*)?")
OVERLAY_UNSAFE = (",", ":", "\\", "\n")   # overlayfs option separators and escapes
# The size of the default EBS root volume of the AMIs the article uses: a cap, not a reservation
# (a tmpfs takes memory only for what is written: the bench measures 140 MB web, 415 MB DB).
DISK_GIB = 8


def valid_public_key(key) -> bool:
    return isinstance(key, str) and bool(PUBLIC_KEY.fullmatch(key.strip()))


def cgroup_dirs(env: str, instance_id: str) -> list[Path]:
    """The cgroups a launcher moves into (hybrid: the systemd v1 tree and the unified tree)."""
    unified = Path("/sys/fs/cgroup")
    if (unified / "cgroup.controllers").exists():  # pure cgroup v2 host
        return [unified / names.cgroup_name(env, instance_id)]
    return [root / names.cgroup_name(env, instance_id) for root in names.CGROUP_ROOTS if root.is_dir()]


def remove_cgroup(path: Path) -> bool:
    """rmdir a cgroup and the sub-cgroups the container's systemd made in it, deepest first."""
    if not path.is_dir():
        return True
    dirs = sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
    for d in [*dirs, path]:
        try:
            d.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False
    return True


def container_init(nspawn_pid: int) -> int | None:
    """The container's systemd: the child of systemd-nspawn."""
    try:
        kids = Path(f"/proc/{nspawn_pid}/task/{nspawn_pid}/children").read_text().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def poweroff_pids(nspawn_pids: list[int], timeout: float = POWEROFF_TIMEOUT, clean: bool = True) -> None:
    """Power containers off, all at once: clean (SIGRTMIN+4 to each container's systemd, about a
    second) or, when their disks are about to be deleted anyway, at once (SIGKILL to the
    container's init ends its whole PID namespace; nspawn then exits). Bounded; then SIGKILL by PID."""
    for pid in nspawn_pids:
        init = container_init(pid)
        try:
            if init:
                os.kill(init, POWEROFF if clean else signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    poll(lambda: not any(alive(p) for p in nspawn_pids), timeout)
    for pid in nspawn_pids:
        if alive(pid):
            init = container_init(pid)
            for p in (init, pid):
                if p:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    poll(lambda: not any(alive(p) for p in nspawn_pids), 5)


def nspawn_pids_of(env: str) -> list[int]:
    """systemd-nspawn processes joined to one of this env's namespaces (found after a crash too)."""
    marker = f"--network-namespace-path={names.NETNS_DIR}/{names.netns_prefix(env)}".encode()
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if b"systemd-nspawn" in cmd and marker in cmd:
                pids.append(int(d.name))
    return pids


class InstanceHost:
    """One instance on this machine: namespace, disk, container process."""

    def __init__(self, env: str, state_dir: Path, instance_id: str, base: Path):
        self.env = env
        self.id = instance_id
        self.base = base
        self.dir = state_dir / "instances" / instance_id
        self.root = self.dir / "root"
        self.disk = self.dir / "disk"      # the tmpfs holding the overlay's upper and work dirs
        self.ns = names.instance_ns(env, instance_id)
        self.proc: subprocess.Popen | None = None
        self.booted_at: float | None = None
        self.link_up: bool | None = None

    def link(self, up: bool, gateway: str | None = None) -> None:
        """A stopped instance's NIC answers nothing (not even ping): its link goes down with it."""
        netns.ip(self.ns, "link", "set", "eth0", "up" if up else "down")
        if up and gateway:
            netns.ip(self.ns, "route", "replace", "default", "via", gateway, "dev", "eth0")
        self.link_up = up

    # --- disk and identity ------------------------------------------------------------------
    def prepare(self, inst: Instance, public_key: str | None, name_server: str) -> None:
        """Mount the overlay; on first use write the instance's identity into it (`name_server`: its
        VPC's resolver, as DHCP hands it out on EC2)."""
        for d in (self.disk, self.root):
            d.mkdir(parents=True, exist_ok=True)
        if not netns.mounted(self.root):
            if any(c in str(self.base) for c in OVERLAY_UNSAFE):
                raise LabError(f"the base image path {self.base} holds one of , : \\ (overlayfs can't take it)")
            if not netns.mounted(self.disk):
                netns.run("mount", "-t", "tmpfs", "-o", f"size={DISK_GIB}g,mode=0755", "tmpfs", str(self.disk))
            for sub in ("upper", "work"):
                (self.disk / sub).mkdir(exist_ok=True)
            # upper and work relative to the instance dir (mount runs there): the state dir's own
            # path, whatever it holds (quotes, spaces, commas), never goes into the option string.
            netns.run("mount", "-t", "overlay", "overlay", "-o",
                      f"lowerdir={self.base},upperdir=disk/upper,workdir=disk/work", str(self.root), cwd=self.dir)
        marker = self.dir / "identity-written"
        if not marker.exists():
            self._write_identity(inst, public_key, name_server)
            marker.write_text(f"{inst.id}\n")

    def _write_identity(self, inst: Instance, public_key: str | None, name_server: str) -> None:
        r = self.root
        hostname = "ip-" + inst.private_ip.replace(".", "-")
        (r / "etc/hostname").write_text(hostname + "\n")
        (r / "etc/hosts").write_text(f"127.0.0.1 localhost\n{inst.private_ip} {hostname}\n")
        (r / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
        # As EC2's DHCP options set it: the VPC's resolver, the private domain to search.
        domain = inst.private_dns.split(".", 1)[1] if inst.private_dns and "." in inst.private_dns else None
        (r / "etc/resolv.conf").write_text(f"nameserver {name_server}\n" + (f"search {domain}\n" if domain else ""))
        (r / "etc/apt/sources.list").write_text(f"deb [trusted=yes] http://{internet.MIRROR_IP}/ ./\n")
        key = ed25519.Ed25519PrivateKey.generate()
        priv = r / "etc/ssh/ssh_host_ed25519_key"
        priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                           serialization.NoEncryption()))
        priv.chmod(0o600)
        pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        (r / "etc/ssh/ssh_host_ed25519_key.pub").write_bytes(pub + f" root@{hostname}\n".encode())
        uid, gid = _user_ids(r, LOGIN_USER)
        ssh_dir = r / "home" / LOGIN_USER / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        auth = ssh_dir / "authorized_keys"
        if public_key and not valid_public_key(public_key):
            raise LabError(f"instance {inst.id}: its key pair's public key is not one OpenSSH key line")
        auth.write_text((public_key.strip() + "\n") if public_key else "")
        auth.chmod(0o600)
        for p in (ssh_dir, auth):
            os.chown(p, uid, gid)

    # --- power ------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def launched(self) -> bool:
        """Its launcher has become systemd-nspawn: the container boots (what EC2's `running` means).
        Before that (a loaded machine can take a while) nothing of the instance runs yet."""
        if self.proc is None or not self.running:
            return False
        try:
            return os.readlink(f"/proc/{self.proc.pid}/exe").endswith("/systemd-nspawn")
        except OSError:
            return False

    def boot(self) -> None:
        cgroups = cgroup_dirs(self.env, self.id)
        # Each launcher moves itself into its own cgroup first: with --keep-unit nspawn uses the
        # caller's cgroup, and two containers sharing one would see each other's services.
        args = ["systemd-nspawn", "-D", str(self.root), "--boot", "--register=no", "--keep-unit",
                f"--network-namespace-path={names.NETNS_DIR}/{self.ns}", "-M", names.machine_name(self.env, self.id),
                "--console=read-only", "--resolv-conf=off", "--link-journal=no", "--timezone=off",
                "--drop-capability=CAP_NET_ADMIN"]
        log = open(self.dir / "console.log", "ab")
        self.proc = subprocess.Popen(["sh", "-c", LAUNCHER, "lab-launch", *map(str, cgroups), "--", *args],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        (self.dir / "nspawn.pid").write_text(f"{self.proc.pid}\n")
        self.booted_at = time.monotonic()

    def wait_sshd(self, private_ip: str, router_ns: str, timeout: float = BOOT_TIMEOUT,
                  cancelled=lambda: False) -> float:
        """Wait until sshd accepts on the instance (probed from its router, outside the SGs)."""
        def accepts() -> float | None:
            if cancelled():
                raise LabError(f"instance {self.id}: no longer waiting for sshd (the lab is stopping)")
            if not self.running:
                raise LabError(f"instance {self.id}: systemd-nspawn exited while booting "
                               f"(see {self.dir / 'console.log'})")
            try:
                s = netns.in_netns(router_ns, lambda: socket.create_connection((private_ip, 22), timeout=0.5))
                s.close()
                return max(time.monotonic() - (self.booted_at or 0), 0.001)
            except OSError:
                return None
        took = poll(accepts, timeout, interval=0.1, started=self.booted_at)
        if took:
            return took
        raise LabError(f"timed out after {timeout:.0f}s waiting for sshd on instance {self.id} ({private_ip})")

    def poweroff(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            poweroff_pids([self.proc.pid])
        self.proc.wait(timeout=5)
        self.proc = None
        for c in cgroup_dirs(self.env, self.id):
            remove_cgroup(c)

    def remove(self) -> None:
        """Terminate: power off, unmount, delete the disk and the namespace. Safe to repeat."""
        self.poweroff()
        for mnt in (self.root, self.disk):     # the overlay first: it holds the tmpfs busy
            if netns.mounted(mnt):
                netns.run("umount", str(mnt), check=False)
                if netns.mounted(mnt):
                    netns.run("umount", "-l", str(mnt), check=False)
        if netns.mounted(self.root) or netns.mounts_under(self.dir):
            raise LabError(f"instance {self.id}: {self.root} is still mounted; not deleting its disk")
        shutil.rmtree(self.dir, ignore_errors=True)
        netns.remove_ns(self.ns)


def _user_ids(root: Path, user: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3])
    raise LabError(f"user {user} missing from the base image")
