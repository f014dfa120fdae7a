"""Internet gateway (1:1 NAT at the VPC router's link to the internet) and NAT gateways.

The IGW exists on the machine only while the API shows it attached: a veth between the VPC router
and the internet namespace. It translates each public address (Elastic IP or auto public IP) to
its private address and back, only for ENIs in subnets whose route table sends 0.0.0.0/0 to it;
any other private source leaving through it is dropped (no translation, as on AWS).

A NAT gateway is its own namespace on its subnet, with its private address, masquerading what it
forwards behind that address; the IGW then maps that address to the NAT gateway's Elastic IP.
"""
from __future__ import annotations

import ipaddress

from . import fabric, names, netns
from .world import World


def _ip(value: str) -> str:
    """An address for an nft script: parsed, so nothing else can ride along (ValueError otherwise)."""
    return str(ipaddress.IPv4Address(value))

IGW_TABLE = "lab_igw"
PUBLIC_BLOCK = ipaddress.ip_network("198.51.100.0/24")   # the only public addresses the lab routes


def igw_link_names(env: str, vpc_id: str) -> tuple[str, str]:
    """(router side, internet side) interface names of a VPC's IGW link."""
    return names.link("g", vpc_id), names.link("x", vpc_id)


def translations(world: World, vpc_id: str) -> dict[str, str]:
    """public -> private for everything the VPC's IGW translates (public addresses of the lab's
    block only: the emulated API never hands out others)."""
    pairs = {}
    for inst in world.instances.values():
        if inst.vpc_id == vpc_id and inst.exists and inst.public_ip and world.igw_routed(inst.subnet_id):
            pairs[inst.public_ip] = inst.private_ip
    for nat in world.nat_gateways.values():
        if nat.vpc_id == vpc_id and nat.public_ip and world.igw_routed(nat.subnet_id):
            pairs[nat.public_ip] = nat.private_ip
    return {a: b for a, b in pairs.items() if ipaddress.ip_address(a) in PUBLIC_BLOCK}


def igw_ruleset(link: str, pairs: dict[str, str]) -> str:
    pairs = {_ip(a): _ip(b) for a, b in pairs.items()}
    if not link.isascii() or not link.isalnum():
        raise ValueError(f"bad interface name {link[:20]!r}")

    def elements(items):
        items = list(items)
        return f"elements = {{ {', '.join(f'{a} : {b}' for a, b in sorted(items))} }}" if items else ""

    privates = f"elements = {{ {', '.join(sorted(pairs.values()))} }}" if pairs else ""
    return "\n".join([
        f"table ip {IGW_TABLE}", f"delete table ip {IGW_TABLE}", f"table ip {IGW_TABLE} {{",
        f"  map to_private {{ type ipv4_addr : ipv4_addr; {elements(pairs.items())} }}",
        f"  map to_public {{ type ipv4_addr : ipv4_addr; {elements((b, a) for a, b in pairs.items())} }}",
        f"  set translated {{ type ipv4_addr; {privates} }}",
        "  chain pre {", "    type nat hook prerouting priority dstnat;",
        f'    iifname "{link}" dnat to ip daddr map @to_private', "  }",
        "  chain post {", "    type nat hook postrouting priority srcnat;",
        f'    oifname "{link}" snat to ip saddr map @to_public', "  }",
        # Untranslated traffic never crosses the IGW, in either direction.
        "  chain guard {", "    type filter hook forward priority -10; policy accept;",
        f'    oifname "{link}" ip saddr != @translated drop',
        f'    iifname "{link}" ip daddr != @translated drop', "  }",
        "}", ""])


class InternetGateway:
    """The IGW link of one VPC router, and the internet namespace's routes back to its addresses."""

    def __init__(self, env: str, router: fabric.Router, index: int):
        self.env = env
        self.router = router
        self.link, self.outer = igw_link_names(env, router.vpc_id)
        self.inet_addr, self.router_addr = fabric.transit(index)
        self.applied_nat: str | None = None
        self.applied_routes: set[str] = set()

        self.up = False

    def ensure(self) -> None:
        inet = names.internet_ns(self.env)
        if self.up:
            return
        netns.ip(inet, "link", "del", self.outer, check=False)
        netns.veth(self.router.ns, self.link, inet, self.outer)
        netns.ip(self.router.ns, "addr", "add", f"{self.router_addr}/30", "dev", self.link)
        netns.ip(inet, "addr", "add", f"{self.inet_addr}/30", "dev", self.outer)
        netns.sysctl(self.router.ns, f"net.ipv4.conf.{self.link}.send_redirects", "0")
        self.applied_nat = None
        self.applied_routes = set()
        self.up = True

    def remove(self) -> None:
        netns.ip(self.router.ns, "link", "del", self.link, check=False)
        netns.nft(self.router.ns, f"table ip {IGW_TABLE}\ndelete table ip {IGW_TABLE}\n")
        self.up = False
        self.applied_nat = None
        self.applied_routes = set()

    def translate(self, pairs: dict[str, str]) -> None:
        script = igw_ruleset(self.link, pairs)
        if script != self.applied_nat:
            netns.nft(self.router.ns, script)
            self.applied_nat = script
        # The internet reaches each public address through this VPC's link. (Its own hosts bind
        # their own addresses, so replies and vantage connections never leave from the transit address.)
        inet = names.internet_ns(self.env)
        want = set(pairs)
        for addr in sorted(want - self.applied_routes):
            netns.ip(inet, "route", "replace", f"{_ip(addr)}/32", "via", self.router_addr, "dev", self.outer)
            self.applied_routes.add(addr)
        for addr in sorted(self.applied_routes - want):
            netns.ip(inet, "route", "del", f"{_ip(addr)}/32", check=False)
            self.applied_routes.discard(addr)


def natgw_ruleset(own_ip: str) -> str:
    own_ip = _ip(own_ip)
    return "\n".join([
        "table ip lab_natgw", "delete table ip lab_natgw", "table ip lab_natgw {",
        "  chain post {", "    type nat hook postrouting priority srcnat;",
        f'    oifname "eth0" ip saddr != {own_ip} masquerade', "  }",
        "}", ""])


class NatGatewayNs:
    def __init__(self, env: str, nat_id: str):
        self.ns = names.natgw_ns(env, nat_id)
        self.link = names.link("n", nat_id)
        self.applied: str | None = None

    def ensure(self, router: fabric.Router, private_ip: str, subnet_cidr: str) -> None:
        if netns.ensure_ns(self.ns, forwarding=True):
            for key in ("all", "default"):
                netns.sysctl(self.ns, f"net.ipv4.conf.{key}.send_redirects", "0")
                netns.sysctl(self.ns, f"net.ipv4.conf.{key}.rp_filter", "0")
            self.applied = None
        router.attach(self.link, self.ns, private_ip, subnet_cidr)
        script = natgw_ruleset(private_ip)
        if script != self.applied:
            netns.nft(self.ns, script)
            self.applied = script

    def remove(self, router: fabric.Router | None) -> None:
        if router:
            router.detach(self.link)
        netns.remove_ns(self.ns)
