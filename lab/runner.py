"""Runners: where a CI runner stands, on the lab's internet, for code that reaches the lab as it
reaches AWS (the aws target's own: plain sockets, the API at an endpoint, DNS from a resolver).

A runner is a namespace of its own, `tl-<tag>-run<N>`, holding one public address 198.51.100.N
(N from 5 to 15: the lab's own internet hosts are .1-.4, the API hands out .16 and up) on a veth
to the internet namespace. The internet side answers ARP for everything it routes (proxy ARP, as
the VPC routers do for their ENIs), so the runner needs no gateway address, and it routes the
runner's /32 back. From there a process reaches what a machine on the internet reaches: the lab's
API (198.51.100.4, behind the same owner-only gate), the mirror, the DNS server, the hosts' public
addresses as the security groups allow; nothing else, since the internet namespace has no link
out of the machine. The host's namespace gets no link and no route.

Its resolv.conf names the lab's DNS: `/etc/netns/<ns>/resolv.conf`, which `ip netns exec` binds
over /etc/resolv.conf in a mount namespace of the command's own (nothing is mounted in the host's).
The lab's stop removes the runners with every namespace of the env (by prefix) and `forget()`
removes their /etc/netns folders.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
from pathlib import Path

from . import names, netns
from .errors import LabError

ADDRESSES = ipaddress.ip_network("198.51.100.0/28")
FIRST, LAST = 5, 15
DEFAULT_ADDRESS = "198.51.100.7"
ETC_NETNS = Path("/etc/netns")


def check_address(address: str) -> str:
    """A runner's address: 198.51.100.5 to 198.51.100.15, else one line saying so."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        ip = None
    if ip is None or ip not in ADDRESSES or not FIRST <= int(ip) - int(ADDRESSES.network_address) <= LAST:
        raise LabError(f"a runner's address is one of 198.51.100.{FIRST}-{LAST} (the lab's own hosts are .1-.4, "
                       f"its Elastic IPs .16 and up), not {str(address)[:40]!r}")
    return str(ip)


def _number(address: str) -> int:
    return int(ipaddress.IPv4Address(address)) - int(ADDRESSES.network_address)


def ns_name(env: str, address: str) -> str:
    return f"{names.netns_prefix(env)}run{_number(check_address(address))}"


def _outer_link(env: str, address: str) -> str:
    return f"r{names.tag(env)}-{_number(address)}"      # in the internet namespace, <= 15 characters


def ensure(env: str, address: str = DEFAULT_ADDRESS) -> str:
    """The runner namespace at `address`, wired to the lab's internet (made if missing); its name."""
    address = check_address(address)
    inet = names.internet_ns(env)
    if not netns.exists(inet):
        raise LabError(f"no lab of env {env!r} is running (its internet namespace {inet} is missing)")
    ns = ns_name(env, address)
    run = names.run_dir(env)
    run.mkdir(parents=True, exist_ok=True)
    # Two `lab run` at once with the same address: one wires it, the other finds it wired.
    with open(run / "runner.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        netns.ensure_ns(ns)
        outer = _outer_link(env, address)
        if "eth0" not in netns.links(ns) or outer not in netns.links(inet):
            netns.ip(inet, "link", "del", outer, check=False)
            netns.ip(ns, "link", "del", "eth0", check=False)
            netns.veth(inet, outer, ns, "eth0")
            netns.sysctl(inet, f"net.ipv4.conf.{outer}.proxy_arp", "1")
            # Answer at once: the kernel's default holds proxy ARP replies back up to 0.8 s.
            netns.sysctl(inet, f"net.ipv4.neigh.{outer}.proxy_delay", "0")
            netns.ip(ns, "addr", "add", f"{address}/32", "dev", "eth0")
            netns.ip(ns, "route", "replace", "default", "dev", "eth0")
            netns.ip(inet, "route", "replace", f"{address}/32", "dev", outer)
        _write_resolv_conf(ns)
    return ns


def _write_resolv_conf(ns: str) -> None:
    from .internet import DNS_IP

    folder = ETC_NETNS / ns
    folder.mkdir(parents=True, exist_ok=True)
    if folder.is_symlink():
        raise LabError(f"{folder} is a link: not writing the runner's resolv.conf through it")
    tmp = folder / ".resolv.conf.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(f"# the lab's internet DNS (twotier lab runner {ns})\nnameserver {DNS_IP}\n")
    os.replace(tmp, folder / "resolv.conf")


def runners(env: str) -> list[str]:
    """The runner namespaces of this env that exist now."""
    return netns.list_ns(f"{names.netns_prefix(env)}run")


def forget(env: str) -> None:
    """Remove the runners' /etc/netns folders (the namespaces go with the lab's, by prefix)."""
    if not ETC_NETNS.is_dir():
        return
    for d in ETC_NETNS.glob(f"{names.netns_prefix(env)}run*"):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
