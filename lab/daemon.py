"""Start, stop and watch the lab: moto's API (on loopback, and on the lab's internet for runners) and the converge loop.

start() checks prerequisites, builds the cached base image and mirror (with progress), and spawns
the daemon detached (setsid, stdin /dev/null, log in state_dir/lab.log); stop() removes everything
of the env by PID and by name prefix, also after a crash. `python -m lab.daemon run ...` is the
daemon itself; `provision.py lab start|stop|status` is how a person starts a bare lab.

The lab belongs to its owner: the daemon makes fresh credentials for its API at every start and
keeps them only in state_dir/lab.json (0600); start() and attach() hand them back as a LabApi, and
the API refuses every request not signed with them (emulator/auth.py). Its files in the state
folder (lab.json, lab.log, converge.json, settle-request) go through common/files.py, the state
folder's one rule (in a folder of ours, never through a link): the one module of awsenv/ the lab
uses, which needs only awsenv/errors.py.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import files

from . import image, instances, names, netns, runner
from .deadline import poll
from .errors import LabError, LabPrerequisiteError

STATE_FILE = "lab.json"
LOG_FILE = "lab.log"
SSH_FRAGMENT = "lab.ssh_config"        # OpenSSH to any host launched in the lab (vantage.ssh_fragment)
SSH_KNOWN_HOSTS = "lab.known_hosts"    # the host keys OpenSSH pinned through it: they go with the lab
PROGRAMS = {"ip": "iproute2", "nft": "nftables", "systemd-nspawn": "systemd-container",
            "mmdebstrap": "mmdebstrap", "dpkg-scanpackages": "dpkg-dev", "apt-ftparchive": "apt-utils",
            "chroot": "coreutils", "mount": "mount"}
START_TIMEOUT = 60.0
REPO_ROOT = names.REPO_ROOT


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise LabPrerequisiteError("local target needs root (or use --target moto)")
    for prog, pkg in PROGRAMS.items():
        if not shutil.which(prog):
            raise LabPrerequisiteError(f"missing program {prog}: apt-get install {pkg} (or use --target moto)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        netns.run("modprobe", "overlay", check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            raise LabPrerequisiteError("the kernel has no overlayfs (or use --target moto)")


@dataclass(frozen=True)
class LabApi:
    """How a client reaches one lab's API: its endpoint, the region it serves, its credentials.

    The credentials are this lab's own (made at daemon start); the secret never shows in a repr.
    """
    endpoint: str
    region: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    # The same API on the lab's internet (198.51.100.4), for a runner there (runner.py).
    internet_endpoint: str | None = None

    @classmethod
    def from_state(cls, state: dict) -> LabApi:
        missing = [k for k in ("endpoint", "region", "access_key_id", "secret_access_key") if not state.get(k)]
        if missing:
            raise LabError(f"the lab's state file has no {', '.join(missing)} (a lab from before the API "
                           f"needed credentials?): remove it with provision.py down, then start again")
        return cls(state["endpoint"], state["region"], state["access_key_id"], state["secret_access_key"],
                   state.get("internet_endpoint"))


# --- status -------------------------------------------------------------------------------------
def _read_state(state_dir: Path) -> dict | None:
    try:
        text = files.read_text(Path(state_dir) / STATE_FILE)
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def _is_our_daemon(pid: int, env: str) -> bool:
    """The PID is alive and still our daemon (not a reused PID)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"lab.daemon" in cmd and env.encode() in cmd and instances.alive(pid)


def dead_daemon(env: str, state_dir: Path) -> int | None:
    """The PID of this env's daemon when it is gone (crashed, killed, a reboot) but its state file
    is still there (stop() removes it); None when it runs or was stopped."""
    names.check_env(env)
    state = _read_state(Path(state_dir))
    if not state or state.get("env") != env or _is_our_daemon(state.get("pid", 0), env):
        return None
    return int(state.get("pid", 0)) or None


def status(env: str, state_dir: Path) -> dict | None:
    """endpoint, pid, running containers, namespaces; None when no daemon of this env runs."""
    names.check_env(env)
    state = _read_state(state_dir)
    if not state or state.get("env") != env or not _is_our_daemon(state.get("pid", 0), env):
        return None
    return {"endpoint": state.get("endpoint"), "internet_endpoint": state.get("internet_endpoint"),
            "region": state.get("region"), "pid": state["pid"], "ready": state.get("ready", False),
            "containers": instances.nspawn_pids_of(env),
            "namespaces": netns.list_ns(names.netns_prefix(env)), "runners": runner.runners(env)}


def attach(env: str, state_dir: Path) -> LabApi | None:
    """The API of a running, ready lab of this env (a kept environment); None when none runs (or
    when it is a lab from before its API needed credentials: nobody can use that one; stop() can)."""
    names.check_env(env)
    state = _read_state(Path(state_dir).resolve())
    if (not state or state.get("env") != env or not state.get("ready")
            or not _is_our_daemon(state.get("pid", 0), env) or not _has_credentials(state)):
        return None
    return LabApi.from_state(state)


def _has_credentials(state: dict) -> bool:
    return bool(state.get("access_key_id") and state.get("secret_access_key"))


def _api_answers(endpoint: str) -> bool:
    # A TCP accept is enough: the server object exists before its port is published in lab.json.
    # (moto's /moto-api/data.json would load every backend: 15 s on a cold start.)
    host, port = endpoint.rsplit("//", 1)[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


# --- start --------------------------------------------------------------------------------------
def start(env: str, state_dir: Path, region: str, progress=print) -> LabApi:
    """Start the lab of this env serving `region` (or return the running one, if it serves it)."""
    names.check_env(env)
    state_dir = Path(state_dir).resolve()
    check_prerequisites()
    info = status(env, state_dir)
    if info and info["ready"] and _api_answers(info["endpoint"]):
        if not _has_credentials(_read_state(state_dir) or {}):   # never replace a kept lab silently
            raise LabError(f"the local lab of env {env!r} predates the API's credentials; "
                           f"remove it first (provision.py down), then start again")
        running = attach(env, state_dir)
        if running and running.region != region:
            raise LabError(f"the local lab of env {env!r} serves region {running.region}, not {region}; "
                           f"pass --region {running.region}, or remove it first (provision.py down)")
        if running:
            _write_ssh_fragment(env, state_dir)
            return running
    if info:  # a daemon that never got ready: start over
        stop(env, state_dir, progress=progress)
    elif _leftovers(env, state_dir):
        progress(f"lab: cleaning leftovers of an earlier lab for {env!r}")
        stop(env, state_dir, progress=lambda *_: None)
    t0 = time.monotonic()
    base, repo = image.ensure_image_and_mirror(progress)
    files.remove(state_dir / STATE_FILE)
    log = files.open_append(state_dir / LOG_FILE)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "lab.daemon", "run", "--env", env, "--state-dir",
                                 str(state_dir), "--region", region, "--base", str(base), "--repo", str(repo)],
                                cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=_daemon_environment())
    finally:
        os.close(log)
    def ready() -> dict | None:
        state = _read_state(state_dir)
        if proc.poll() is not None:
            raise LabError(f"the lab daemon exited at start ({_log_tail(state_dir)})")
        return state if state and state.get("ready") and _api_answers(state["endpoint"]) else None

    state = poll(ready, START_TIMEOUT, interval=0.1)
    if state is None:
        raise LabError(f"timed out after {START_TIMEOUT:.0f}s waiting for the lab daemon's API to answer "
                       f"({_log_tail(state_dir)})")
    progress(f"lab: {env!r} up in {time.monotonic() - t0:.1f}s, API at {state['endpoint']} ({region})")
    _write_ssh_fragment(env, state_dir)
    return LabApi.from_state(state)


def _write_ssh_fragment(env: str, state_dir: Path) -> None:
    """OpenSSH's way to the hosts launched in this lab (vantage.ssh_fragment), rewritten at every
    start: the interpreter and the folder it names are this start's."""
    from . import vantage

    files.write_private(state_dir / SSH_FRAGMENT, vantage.ssh_fragment(env, state_dir / SSH_KNOWN_HOSTS))


def _daemon_environment() -> dict[str, str]:
    """The caller's environment without AWS_*: the daemon is handed its region and credentials, and a
    profile, config file or endpoint from the user's shell must not reach its own API client."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def _log_tail(state_dir: Path) -> str:
    try:
        lines = (files.read_text(state_dir / LOG_FILE) or "").strip().splitlines()
    except (OSError, files.UnsafePath):
        return "no log"
    return f"last log line: {lines[-1][:200]}" if lines else "empty log"


# --- stop ---------------------------------------------------------------------------------------
def _leftovers(env: str, state_dir: Path) -> bool:
    return bool(netns.list_ns(names.netns_prefix(env)) or instances.nspawn_pids_of(env)
                or netns.mounts_under(Path(state_dir) / "instances"))


def _kill(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not poll(lambda: not instances.alive(pid), timeout):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop(env: str, state_dir: Path, progress=print) -> None:
    """Remove everything of this env; safe when already gone and after a crash (found by prefix).

    Removes only what the lab makes: its namespaces, containers, cgroups and mounts (by prefix and
    PID), the instance disks it wrote under state_dir/instances, its run dir and its own state files.
    """
    names.check_env(env)
    state_dir = Path(state_dir).resolve()
    t0 = time.monotonic()
    state = _read_state(state_dir) or {}
    pid = state.get("pid")
    # The daemon first, so it can't recreate what is removed next.
    if pid and state.get("env") == env and _is_our_daemon(pid, env):
        progress(f"lab: stopping the daemon (pid {pid})")
        _kill(pid, 25.0)  # the lab daemon: it powers its containers off before exiting
    pids = instances.nspawn_pids_of(env)
    if pids:
        progress(f"lab: ending {len(pids)} container(s) left by a dead daemon")
        instances.poweroff_pids(pids, clean=False)   # their disks are deleted below
        _wait_gone(pids)
    prefix = names.netns_prefix(env)
    for ns in netns.list_ns(prefix):
        for p in netns.ns_pids(ns):  # anything still inside one of our namespaces, by PID
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Reverse order: an instance's overlay (root) before the tmpfs (disk) that holds its upper dir.
    for mnt in sorted(netns.mounts_under(state_dir / "instances"), reverse=True):
        netns.run("umount", mnt, check=False)
        if netns.mounted(Path(mnt)):
            netns.run("umount", "-l", mnt, check=False)
    spaces = netns.list_ns(prefix)
    for ns in spaces:
        netns.remove_ns(ns)
    _remove_cgroups(env)
    if names.NSPAWN_PROPAGATE.is_dir():
        for d in names.NSPAWN_PROPAGATE.glob(f"tl-{names.tag(env)}-*"):
            if not netns.mounted(d):
                shutil.rmtree(d, ignore_errors=True)
    _remove_instance_disks(state_dir / "instances", progress)
    shutil.rmtree(names.run_dir(env), ignore_errors=True)
    runner.forget(env)
    for f in (STATE_FILE, "converge.json", "settle-request", SSH_FRAGMENT, SSH_KNOWN_HOSTS):
        files.remove(state_dir / f)
    left = netns.list_ns(prefix)
    if left:
        raise LabError(f"could not remove the lab's namespaces: {', '.join(left)}")
    progress(f"lab: {env!r} removed ({len(spaces)} namespaces) in {time.monotonic() - t0:.1f}s")


def _remove_instance_disks(root: Path, progress) -> None:
    """Delete the instance disks the lab wrote (dirs named like an instance id), never through a
    mount that is still there, and nothing else a person may have put in the state dir."""
    if not root.is_dir() or root.is_symlink():
        return
    for d in root.iterdir():
        if not names.is_instance_id(d.name) or d.is_symlink() or not d.is_dir():
            continue
        if netns.mounts_under(d) or netns.mounted(d):
            progress(f"lab: leaving {d} in place: something is still mounted under it")
            continue
        shutil.rmtree(d, ignore_errors=True)
    try:
        root.rmdir()
    except OSError:
        pass


def _remove_cgroups(env: str) -> None:
    """rmdir the launchers' cgroups; a just-killed process can hold one for a moment (bounded)."""
    left = [c for root in {Path("/sys/fs/cgroup"), *names.CGROUP_ROOTS} if (root / "twotier-lab").is_dir()
            for c in (root / "twotier-lab").glob(f"tl-{names.tag(env)}-*")]
    def released() -> bool:
        left[:] = [c for c in left if not instances.remove_cgroup(c)]
        return not left
    poll(released, 5, interval=0.1)


def _wait_gone(pids: list[int], timeout: float = 5.0) -> None:
    """Wait until the PIDs have left the process table (zombies are reaped by their new parent)."""
    poll(lambda: not any(Path(f"/proc/{p}").exists() for p in pids), timeout)


# --- settle -------------------------------------------------------------------------------------
def wait_settled(state_dir: Path, timeout: float = 30.0) -> None:
    """Return once a converge pass that started after this call has completed without error."""
    since = time.time()
    path = Path(state_dir) / "converge.json"
    # Ask for a pass now rather than at the next periodic one. A fresh token, not the file's mtime:
    # mtime comes from a coarse clock and can look older than a pass that has just started.
    request = Path(state_dir) / "settle-request"
    files.write_private(request, f"{since} {os.getpid()} {threading.get_ident()} {time.monotonic_ns()}\n")
    last: dict = {}

    def converged() -> bool:
        try:
            last.update(json.loads(files.read_text(path) or "{}"))
        except (OSError, ValueError):
            pass
        if last.get("ok_started", 0) > since:
            return True
        state = _read_state(Path(state_dir)) or {}
        if not _is_our_daemon(state.get("pid", 0), state.get("env", "")):
            raise LabError(f"the lab daemon is not running (waiting for it to converge; see {Path(state_dir) / LOG_FILE})")
        return False
    if poll(converged, timeout):
        return
    why = f"; last pass failed: {last['error']}" if last.get("error") else ("" if last else "; no pass recorded")
    raise LabError(f"timed out after {timeout:.0f}s waiting for the lab to converge to the API{why}")


# --- the daemon itself --------------------------------------------------------------------------
def _serve(args) -> None:
    import boto3
    from botocore.config import Config

    from emulator import server as api_server
    from emulator.auth import new_credentials

    from . import internet
    from .converge import Converger
    from .power import PowerRecord

    state_dir = Path(args.state_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())

    def log(msg):
        now = time.time()
        print(f"{time.strftime('%H:%M:%S', time.localtime(now))}.{int(now % 1 * 1000):03d} {msg}", flush=True)

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per API call drowns the log
    # This lab's own credentials: the API answers only requests signed with them. They live only in
    # lab.json (0600) and in this process; never in the log.
    key_id, secret = new_credentials()
    server = api_server.serve(0, access_key_id=key_id, secret_access_key=secret, log=log)
    endpoint = server.endpoint
    state = {"env": args.env, "pid": os.getpid(), "endpoint": endpoint, "region": args.region, "ready": False,
             "state_dir": str(state_dir), "prefix": names.netns_prefix(args.env),
             "access_key_id": key_id, "secret_access_key": secret}
    _write_state(state_dir, state)
    log(f"moto API at {endpoint} (signed requests with this lab's credentials only; see lab.json)")
    # The region is the caller's decision (the local target's), handed over on the command line:
    # never read from AWS_* variables here, which may name another region than the one provisioned.
    region = args.region
    ec2 = boto3.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region).client(
        "ec2", endpoint_url=endpoint, config=Config(retries={"max_attempts": 2}))
    power = PowerRecord(region)
    conv = Converger(args.env, state_dir, ec2, Path(args.base), Path(args.repo), log=log,
                     reboots=api_server.take_reboots, power=power)
    # The API says running / stopped / terminated only once the converge loop has made it so (power.py):
    # the aws target stops an instance, waits for `stopped` and finds its web server down, as on EC2.
    server.realism.hold_states_until(power.reached, log=log)
    conv.internet.ensure()
    # The same API where a regional endpoint is: on the lab's internet, for runners (runner.py).
    internet_endpoint = server.also_at(internet.API_IP, 80, lambda make: netns.in_netns(conv.internet.ns, make))
    state.update(ready=True, region=region, internet_ns=conv.internet.ns, internet_endpoint=internet_endpoint)
    _write_state(state_dir, state)
    log(f"ready: internet namespace {conv.internet.ns} (API there at {internet_endpoint}), converging {region}")
    conv.loop(stopping, api_server.changes)
    log("stopping: ending the containers (their disks go with the lab)")
    conv.shutdown()
    log("daemon exiting (stop() removes the rest of the lab)")


def _write_state(state_dir: Path, state: dict) -> None:
    """Atomically, readable by root only: it holds the API's credentials."""
    files.write_private(state_dir / STATE_FILE, json.dumps(state, indent=1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.daemon", description="the local lab's daemon and controls")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "start", "stop", "status"):
        s = sub.add_parser(name)
        s.add_argument("--env", default="twotier")
        s.add_argument("--state-dir", default=None)
        if name in ("run", "start"):
            s.add_argument("--region", default="us-east-1")
        if name == "run":
            s.add_argument("--base", required=True)
            s.add_argument("--repo", required=True)
    args = p.parse_args(argv)
    try:
        names.check_env(args.env)   # before any path is built from it
        # The local target's folder for the env (awsenv/targets: .state/local/ENV), so that this and
        # `provision.py lab ...` / `--target local` mean the same lab.
        state_dir = Path(args.state_dir or REPO_ROOT / ".state" / "local" / args.env)
        if args.cmd == "run":
            args.state_dir = str(state_dir)
            _serve(args)
            # Everything is already ended; tearing down moto's modules would take another second.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        elif args.cmd == "start":
            print(start(args.env, state_dir, args.region).endpoint)
        elif args.cmd == "stop":
            stop(args.env, state_dir)
        else:
            print(json.dumps(status(args.env, state_dir), indent=1))
    except (LabError, files.UnsafePath) as exc:
        print(f"lab.daemon: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
