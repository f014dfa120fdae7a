"""The VPC as a routing fabric: one router namespace per VPC, every ENI a routed veth link.

No bridges: each ENI's router-side end carries its subnet's gateway address (.1) with proxy ARP,
so every packet between two ENIs, even in one subnet, is routed by the router namespace. That puts
all traffic through one forward hook, where security groups are enforced (security_groups.py).

Route tables are policy routing: `to <vpc cidr> lookup main` is the VPC's local route (it can't be
deleted, as on AWS), then `from <subnet cidr> lookup <table of its route table>`; each table holds
exactly the API's non-local routes. A deleted route is no route; a route to a missing target is a
blackhole. Every value handed to `ip` is an argv element that world.py has checked (CIDRs,
addresses) or that this lab made (link names); nothing is split out of a string.
"""
from __future__ import annotations

import hashlib
import ipaddress

from . import names, netns
from .world import World

IGW_TRANSIT = ipaddress.ip_network("169.254.0.0/16")  # link-local: never a VPC CIDR on AWS


def table_id(route_table_id: str) -> int:
    return 1000 + int(hashlib.sha1(route_table_id.encode()).hexdigest()[:6], 16) % 200000


def transit(vpc_index: int) -> tuple[str, str]:
    """(internet side, router side) addresses of a VPC's IGW link."""
    base = IGW_TRANSIT.network_address + 4 * vpc_index
    return str(base + 1), str(base + 2)


class Router:
    """One VPC's router namespace and what has been applied to it (to apply only differences)."""

    def __init__(self, env: str, vpc_id: str):
        self.env = env
        self.vpc_id = vpc_id
        self.ns = names.vpc_ns(env, vpc_id)
        self.rules: set[tuple] = set()
        self.tables: dict[int, list[tuple[str, ...]]] = {}
        self.attached: dict[str, tuple[str, str]] = {}   # router-side link -> (address, gateway)

    def ensure(self) -> None:
        if netns.ensure_ns(self.ns, forwarding=True):
            for key in ("all", "default"):
                netns.sysctl(self.ns, f"net.ipv4.conf.{key}.send_redirects", "0")
                netns.sysctl(self.ns, f"net.ipv4.conf.{key}.rp_filter", "0")

    def remove(self) -> None:
        netns.remove_ns(self.ns)

    # --- ENIs -------------------------------------------------------------------------------
    def attach(self, link: str, peer_ns: str, address: str, subnet_cidr: str) -> None:
        """Wire an endpoint namespace (instance, NAT gateway, probe) in as `eth0` with `address`.

        Safe to repeat: an existing link with the same address is left alone.
        """
        net = ipaddress.ip_network(subnet_cidr)
        gateway = str(net.network_address + 1)
        if self.attached.get(link) == (address, gateway):
            return  # this daemon made it; a quiet pass costs no subprocess
        self.detach(link)
        netns.ip(peer_ns, "link", "del", "eth0", check=False)
        netns.veth(self.ns, link, peer_ns, "eth0")
        for key in ("proxy_arp", "send_redirects"):
            netns.sysctl(self.ns, f"net.ipv4.conf.{link}.{key}", "1" if key == "proxy_arp" else "0")
        netns.ip(self.ns, "addr", "add", f"{gateway}/32", "dev", link)
        netns.ip(self.ns, "route", "replace", f"{address}/32", "dev", link)
        netns.ip(peer_ns, "addr", "add", f"{address}/{net.prefixlen}", "dev", "eth0")
        netns.ip(peer_ns, "route", "replace", "default", "via", gateway, "dev", "eth0")
        self.attached[link] = (address, gateway)

    def detach(self, link: str) -> None:
        if link in netns.links(self.ns):
            netns.ip(self.ns, "link", "del", link, check=False)
        self.attached.pop(link, None)

    # --- route tables -----------------------------------------------------------------------
    def routes(self, world: World, igw_link: str | None, igw_gateway: str | None,
               nat_links: dict[str, tuple[str, str]]) -> None:
        """Make the policy rules and tables equal to the API's route tables for this VPC's subnets."""
        vpc = world.vpcs[self.vpc_id]
        want_rules = {(100, "to", c, "main") for c in vpc.cidrs}
        want_tables: dict[int, list[tuple[str, ...]]] = {}
        for sub in world.subnets.values():
            if sub.vpc_id != self.vpc_id or not sub.route_table:
                continue
            tid = table_id(sub.route_table)
            want_rules.add((200, "from", sub.cidr, str(tid)))
            rows: list[tuple[str, ...]] = []
            igw_via = igw_gateway or ""
            for r in world.route_tables.get(sub.route_table, []):
                dest = str(ipaddress.IPv4Network(r.dest))   # checked in world.py; never an option
                if r.kind == "igw" and world.igw_of_vpc.get(self.vpc_id) == r.target and igw_link:
                    rows.append((dest, "via", igw_via, "dev", igw_link, "onlink"))
                elif r.kind == "nat" and r.target in nat_links:
                    link, addr = nat_links[r.target]
                    rows.append((dest, "via", str(ipaddress.IPv4Address(addr)), "dev", link, "onlink"))
                elif r.kind in ("eni", "instance"):
                    hit = next((i for i in world.instances.values()
                                if r.target in (i.id, i.eni_id) and i.exists), None)
                    rows.append((dest, "via", str(ipaddress.IPv4Address(hit.private_ip))) if hit
                                else ("blackhole", dest))
                else:
                    rows.append(("blackhole", dest))  # target gone or detached: AWS says "blackhole"
            want_tables[tid] = sorted(rows)
        for tid, rows in want_tables.items():
            if self.tables.get(tid) != rows:
                netns.ip(self.ns, "route", "flush", "table", str(tid), check=False)
                self.tables.pop(tid, None)   # until every row is in: a failed row is retried next pass
                for row in rows:
                    netns.ip(self.ns, "route", "replace", *row, "table", str(tid))
                self.tables[tid] = rows
        for tid in set(self.tables) - set(want_tables):
            netns.ip(self.ns, "route", "flush", "table", str(tid), check=False)
            del self.tables[tid]
        # One at a time, so a pass that fails half-way retries only what is still missing.
        for rule in sorted(want_rules - self.rules):
            prio, sel, cidr, table = rule
            netns.ip(self.ns, "rule", "add", "priority", str(prio), sel, cidr, "lookup", table)
            self.rules.add(rule)
        for rule in sorted(self.rules - want_rules):
            prio, sel, cidr, table = rule
            netns.ip(self.ns, "rule", "del", "priority", str(prio), sel, cidr, "lookup", table, check=False)
            self.rules.discard(rule)
