"""Security-group rules read by meaning: each allowed source resolved to what it admits.

AWS writes one source four ways: a security group, an IPv4 CIDR, an IPv6 CIDR, a prefix list.
"Only from the web server" (article 4.2) is a statement about the set of senders a rule admits,
so each source is judged by that set, never by how it is spelled: the web server's group (or any
group it is a member of) and its own private address as a /32 both admit exactly the web server;
a subnet, 0.0.0.0/0, ::/0 or a prefix list holding such ranges admit others, and say whom.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

WORLD = "0.0.0.0/0"
WORLD6 = "::/0"
PROTOCOLS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}


@dataclass(frozen=True)
class Permission:
    """One allowed source for one protocol/port range (AWS rules are flattened to these)."""
    protocol: str                 # "tcp", "udp", "icmp", "icmpv6", "-1" (all)
    from_port: int | None
    to_port: int | None
    cidr: str | None = None       # an IPv4 or an IPv6 range
    group_id: str | None = None
    prefix_list_id: str | None = None
    prefix_cidrs: tuple[str, ...] | None = None   # the prefix list's entries; None: they could not be read

    def covers_port(self, protocol: str, port: int | None) -> bool:
        if self.protocol == "-1":
            return True
        if self.protocol != protocol:
            return False
        if port is None or self.from_port is None or self.from_port == -1:
            return True
        return self.from_port <= port <= (self.to_port if self.to_port is not None else self.from_port)

    @property
    def cidrs(self) -> tuple[str, ...]:
        """The address ranges this source stands for (a prefix list's entries, when they were read)."""
        return (self.cidr,) if self.cidr else (self.prefix_cidrs or ())

    @property
    def source(self) -> str:
        if self.prefix_list_id:
            entries = ", ".join(self.prefix_cidrs) if self.prefix_cidrs is not None else "entries unreadable"
            return f"{self.prefix_list_id} [{entries or 'empty'}]"
        return self.cidr or self.group_id or "?"

    @property
    def is_world(self) -> bool:
        """Open to anyone on the internet: 0.0.0.0/0 or ::/0, written out or inside a prefix list."""
        return any(c in (WORLD, WORLD6) for c in self.cidrs)

    def row(self) -> str:
        ports = "all" if self.from_port in (None, -1) else (
            str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}")
        proto = "all" if self.protocol == "-1" else self.protocol
        return f"{proto:<5} {ports:<11} from {self.source}"


@dataclass(frozen=True)
class Admits:
    """What one source of one rule lets in."""
    permission: Permission
    meaning: str                  # in words: "the web server's own private address", "the whole IPv6 internet"
    only_web: bool | None         # True: exactly the web server; False: others too; None: unknown

    def row(self) -> str:
        return f"{self.permission.row()}  = {self.meaning}"

    @property
    def said(self) -> str:
        """The source as written, and what it admits: for a message."""
        return f"{self.permission.source} ({self.meaning})"


def flatten(perms: list[dict], prefix_lists: dict[str, tuple[str, ...] | None]) -> tuple[Permission, ...]:
    """boto3's IpPermissions as Permissions: every IPv4 and IPv6 range, group pair and prefix list."""
    out = []
    for p in perms:
        proto = str(p.get("IpProtocol", "-1"))
        proto = PROTOCOLS.get(proto, proto)
        frm, to = p.get("FromPort"), p.get("ToPort")
        out += [Permission(proto, frm, to, cidr=r["CidrIp"]) for r in p.get("IpRanges", [])]
        out += [Permission(proto, frm, to, cidr=r["CidrIpv6"]) for r in p.get("Ipv6Ranges", [])]
        out += [Permission(proto, frm, to, group_id=g["GroupId"]) for g in p.get("UserIdGroupPairs", [])]
        out += [Permission(proto, frm, to, prefix_list_id=pl["PrefixListId"],
                           prefix_cidrs=prefix_lists.get(pl["PrefixListId"]))
                for pl in p.get("PrefixListIds", [])]
    return tuple(out)


def prefix_list_ids(groups_raw: list[dict]) -> set[str]:
    return {pl["PrefixListId"] for g in groups_raw
            for key in ("IpPermissions", "IpPermissionsEgress") for p in g.get(key, [])
            for pl in p.get("PrefixListIds", [])}


@dataclass(frozen=True)
class Judge:
    """What the VPC tells about a source: the web server's addresses and groups, who holds which group."""
    web_ips: tuple[str, ...]
    web_groups: tuple[str, ...]
    group_members: dict[str, tuple[str, ...]]     # group id -> private addresses of the interfaces in it
    group_names: dict[str, str]
    subnets: dict[str, str]                       # cidr -> "the public subnet" / "subnet-..."

    def admits(self, p: Permission) -> Admits:
        if p.group_id:
            return self._group(p)
        if p.prefix_list_id and p.prefix_cidrs is None:
            return Admits(p, f"prefix list {p.prefix_list_id}, whose entries could not be read", None)
        judged = [self._cidr(c) for c in p.cidrs]
        if p.prefix_list_id:
            if not judged:
                return Admits(p, f"prefix list {p.prefix_list_id}, empty: nobody", True)
            meaning = f"prefix list {p.prefix_list_id}: " + "; ".join(f"{c} {m}" for c, (m, _) in zip(p.cidrs, judged, strict=True))
            return Admits(p, meaning, all(ok for _, ok in judged))
        meaning, ok = judged[0]
        return Admits(p, meaning, ok)

    def _group(self, p: Permission) -> Admits:
        gid = p.group_id or ""
        name = self.group_names.get(gid)
        members = [ip for ip in self.group_members.get(gid, ()) if ip not in self.web_ips]
        also = f"; also held by {', '.join(members)}" if members else ""
        if gid in self.web_groups:
            # A group the web server carries counts as the web server (a shared "client" group is
            # common); other holders are named so a reviewer sees them.
            what = "the web server's security group" if not members else "a group the web server is a member of"
            return Admits(p, f"{what} {gid} ({name}){also}", True)
        if name is None:
            return Admits(p, f"group {gid} of another VPC or account, which the web server is not in", False)
        holders = ", ".join(self.group_members.get(gid, ())) or "no interface"
        return Admits(p, f"group {gid} ({name}), which the web server is not in (held by {holders})", False)

    def _cidr(self, cidr: str) -> tuple[str, bool]:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return "not a range this suite can read", False
        if net.prefixlen == 0:
            return f"every {'IPv6' if net.version == 6 else 'IPv4'} address, the whole internet", False
        web = [ipaddress.ip_address(i) for i in self.web_ips]
        web_in = [str(ip) for ip in web if ip.version == net.version and ip in net]
        if net.num_addresses == 1 and web_in:
            return "the web server's own private address", True
        where = self.subnets.get(str(net))
        if where is None and isinstance(net, ipaddress.IPv4Network):
            inside = [name for c, name in self.subnets.items() if ipaddress.IPv4Network(c).subnet_of(net)]
            where = f"covers {', '.join(inside)}" if inside else None
        others = net.num_addresses - len(web_in)
        who = f"{others} address{'es' if others != 1 else ''}" + (
            f" besides the web server ({', '.join(web_in)})" if web_in else ", not the web server")
        return who + (f" ({where})" if where else ""), False
