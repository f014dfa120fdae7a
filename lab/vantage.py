"""The suite's clients (SSH, HTTP, DNS) as a user on the lab's internet: no host route needed.

Sockets are made on a short-lived thread that joined the lab's namespace (setns is per thread),
and keep that namespace for their life, so paramiko and friends use them like any socket.
origin="internet": from the vantage address 198.51.100.3 in the internet namespace.
origin="public-probe": from a namespace in the public subnet with an unused address and no
security group (to show that the DB refuses even its neighbours).
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from dnslib import QTYPE, DNSRecord

from . import names, netns
from .errors import LabError
from .internet import ACCESS_LOG, DNS_IP, MIRROR_IP, VANTAGE_IP

ORIGINS = ("internet", "public-probe")


def _origin(env: str, origin: str) -> tuple[str, str | None]:
    if origin == "internet":
        return names.internet_ns(env), VANTAGE_IP
    if origin == "public-probe":
        return names.probe_ns(env), None
    raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")


def make_socket(env: str, origin: str = "internet", kind: int = socket.SOCK_STREAM) -> socket.socket:
    ns, source = _origin(env, origin)
    if not netns.exists(ns):
        raise LabError(f"lab namespace {ns} for origin {origin!r} does not exist (is the lab for {env!r} running?)")

    def make():
        s = socket.socket(socket.AF_INET, kind)
        if source:
            s.bind((source, 0))
        return s

    return netns.in_netns(ns, make)


def connect(env: str, host: str, port: int, timeout: float = 5.0, origin: str = "internet") -> socket.socket:
    """A connected TCP socket from inside the lab; raises as a plain socket would (refused, timeout)."""
    s = make_socket(env, origin)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    s.settimeout(None)
    return s


def resolve(env: str, name: str, timeout: float = 3.0) -> list[str]:
    """A records for `name`, asked of the lab's DNS server from the internet namespace."""
    s = make_socket(env, "internet", socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(DNSRecord.question(name, "A").pack(), (DNS_IP, 53))
        reply = DNSRecord.parse(s.recv(4096))
    finally:
        s.close()
    return [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A]


def echo_url(env: str) -> str:
    """Answers with the requester's source address as plain text (checkip.amazonaws.com on AWS)."""
    return f"http://{MIRROR_IP}/ip"


def mirror_clients(env: str) -> list[str]:
    """Source addresses the mirror has seen, first-seen order (from its access log)."""
    path = Path(names.run_dir(env)) / ACCESS_LOG
    seen: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) > 1 and parts[1] not in seen:
            seen.append(parts[1])
    return seen


def proxy_command(env: str) -> str:
    """An OpenSSH ProxyCommand that reaches lab hosts from the vantage point (for ssh -F, testinfra).

    OpenSSH runs it with `exec` through the user's shell, from whatever folder ssh was started in:
    so no `cd` (exec can't run a shell builtin: "exec: cd: not found"), absolute paths only, and the
    repository on PYTHONPATH for `-m lab.vantage`."""
    import shlex
    import sys

    return (f"env PYTHONPATH={shlex.quote(str(names.REPO_ROOT))} {shlex.quote(os.path.abspath(sys.executable))} "
            f"-m lab.vantage proxy --env {shlex.quote(names.check_env(env))} %h %p")


SSH_FRAGMENT_HEADER = "# twotier lab"


def ssh_fragment(env: str, known_hosts: Path) -> str:
    """An ssh_config fragment that reaches every public address the lab hands out (198.51.100.*),
    from the vantage point, for `ssh -F FILE` or an `Include FILE` in a config of your own (which
    names your key). Host keys are pinned in a file of the lab's (removed with it): the lab hands
    out the same addresses again after a restart, to hosts with new keys."""
    text = str(known_hosts)
    if any(c in text for c in '"\n\r'):
        raise LabError(f"path {text!r} can't be written into an ssh_config (quote or newline in it)")
    return (f"{SSH_FRAGMENT_HEADER} {env}: OpenSSH to the hosts launched in it, from its internet ({VANTAGE_IP}).\n"
            f"# Written by its start, removed by its stop. Use: ssh -F THIS_FILE -i KEY ec2-user@ADDRESS, or\n"
            f"# `Include` it in a config of your own that names your key; a private address: -J PUBLIC_ADDRESS.\n"
            f"Host 198.51.100.*\n"
            f"  ProxyCommand {proxy_command(env)}\n"
            f'  UserKnownHostsFile "{text}"\n'
            f"  StrictHostKeyChecking accept-new\n"
            f"  CheckHostIP no\n")


def _proxy(env: str, host: str, port: int, origin: str = "internet") -> int:
    """Pipe stdin/stdout through a vantage socket (what ProxyCommand needs)."""
    import select

    s = connect(env, host, port, timeout=10, origin=origin)
    open_in = True
    while True:
        watched: list = [s, 0] if open_in else [s]      # the socket, and stdin (fd 0) until it closes
        ready, _, _ = select.select(watched, [], [])
        if s in ready:
            data = s.recv(65536)
            if not data:
                return 0
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
        if open_in and 0 in ready:
            data = os.read(0, 65536)
            if data:
                s.sendall(data)
            else:
                s.shutdown(socket.SHUT_WR)
                open_in = False


def main(argv=None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m lab.vantage", description="reach lab hosts from the lab's internet")
    sub = p.add_subparsers(dest="cmd", required=True)
    px = sub.add_parser("proxy", help="pipe stdin/stdout to HOST:PORT (use as an OpenSSH ProxyCommand)")
    px.add_argument("--env", default="twotier")
    px.add_argument("--origin", default="internet", choices=ORIGINS)
    px.add_argument("host")
    px.add_argument("port", type=int)
    rs = sub.add_parser("resolve", help="ask the lab's DNS for NAME's A records")
    rs.add_argument("--env", default="twotier")
    rs.add_argument("name")
    args = p.parse_args(argv)
    try:
        names.check_env(args.env)
        if args.cmd == "proxy":
            return _proxy(args.env, args.host, args.port, args.origin)
        print("\n".join(resolve(args.env, args.name)))
        return 0
    except (OSError, LabError) as exc:
        print(f"lab.vantage: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
