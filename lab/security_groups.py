"""Security groups, enforced in the fabric (the VPC router's forward hook), statefully.

Each ENI gets an egress chain (jumped to when a packet comes in from its link) and an ingress
chain (jumped to when a packet leaves through its link). A matching rule lets the packet on; no
match drops it, so negative reachability fails by timeout as on AWS. Replies of allowed traffic
pass by connection tracking. Source-group rules expand to the private IPs of the group's members.
The whole table is replaced atomically (one `nft -f`), which keeps tracked connections.

Nothing reaches the script unchecked: each rule passes `world.valid_rule` again here (protocol from
a whitelist, ports integers in range, CIDRs and member addresses parsed), and a rule that fails is
left out (admitting less) and reported, never written.
"""
from __future__ import annotations

import ipaddress

from . import names, netns
from .world import Instance, Invalid, Rule, World, valid_rule

TABLE = "lab_sg"


def _match(rule: Rule, world: World, peer: str) -> str | None:
    """nft match for one rule, `peer` being saddr (ingress) or daddr (egress); None if it matches nothing.

    Raises world.Invalid for a rule that must not be written (unknown protocol, bad port or address).
    """
    rule = valid_rule(rule)
    addrs = [str(ipaddress.IPv4Network(a, strict=False)) for a in rule.cidrs]
    for g in rule.groups:
        addrs += [str(ipaddress.IPv4Address(m)) for m in world.members(g)]
    if not addrs:
        return None
    parts = []
    if "0.0.0.0/0" not in addrs:
        parts.append(f"ip {peer} {{ {', '.join(sorted(set(addrs)))} }}")
    proto, lo, hi = rule.protocol, rule.from_port, rule.to_port
    if proto in ("tcp", "udp"):
        parts.append(f"meta l4proto {proto}")
        if lo is not None and lo != -1 and not (lo == 0 and hi == 65535):
            parts.append(f"th dport {lo}-{hi}" if hi not in (None, -1, lo) else f"th dport {lo}")
    elif proto == "icmp":
        parts.append("meta l4proto icmp")
        if lo not in (None, -1):
            parts.append(f"icmp type {lo}")
            if hi not in (None, -1):
                parts.append(f"icmp code {hi}")
    elif proto == "icmpv6":
        parts.append("meta l4proto ipv6-icmp")   # the lab has no IPv6: matches nothing, as it should
    elif proto != "-1":
        parts.append(f"meta l4proto {int(proto)}")
    return " ".join(parts)


def _chain(name: str, rules: list[Rule], world: World, peer: str, verdict: str,
           problems: list[str] | None = None) -> list[str]:
    lines = [f"  chain {name} {{"]
    for rule in rules:
        try:
            m = _match(rule, world, peer)
        except (Invalid, ValueError) as exc:   # left out: the chain admits less, never more
            if problems is not None:
                problems.append(f"chain {name}: rule skipped: {exc}")
            continue
        if m is not None:
            lines.append(f"    {m} {verdict}" if m else f"    {verdict}")
    lines += ["    drop", "  }"]
    return lines


def ruleset(world: World, instances: list[Instance], problems: list[str] | None = None) -> str:
    """The whole lab_sg table for one VPC router, as an nft script that replaces it atomically.

    Rules that fail validation are left out and named in `problems`."""
    chains, egress_map, ingress_map = [], [], []
    for inst in sorted(instances, key=lambda i: i.id):
        link = names.link("e", inst.eni_id)
        tail = names.short(inst.eni_id, 12)
        if not tail.isascii() or not tail.isalnum():   # becomes a chain and an interface name
            if problems is not None:
                problems.append(f"instance {inst.id[:30]!r}: ENI id {inst.eni_id[:30]!r} skipped")
            continue
        egress = [r for g in inst.groups if g in world.groups for r in world.groups[g].egress]
        ingress = [r for g in inst.groups if g in world.groups for r in world.groups[g].ingress]
        # Egress passes on with `return` (ingress of the destination still has to agree).
        chains += _chain(f"eg_{tail}", egress, world, "daddr", "return", problems)
        chains += _chain(f"in_{tail}", ingress, world, "saddr", "accept", problems)
        egress_map.append(f'"{link}" : jump eg_{tail}')
        ingress_map.append(f'"{link}" : jump in_{tail}')
    fwd = ["  chain forward {", "    type filter hook forward priority filter; policy accept;",
           "    ct state established,related accept", "    ct state invalid drop"]
    if egress_map:
        fwd.append(f"    iifname vmap {{ {', '.join(egress_map)} }}")
        fwd.append(f"    oifname vmap {{ {', '.join(ingress_map)} }}")
    fwd.append("  }")
    return "\n".join([f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{",
                      *chains, *fwd, "}", ""])


class Enforcer:
    def __init__(self, ns: str):
        self.ns = ns
        self.applied: str | None = None
        self.problems: list[str] = []

    def apply(self, world: World, instances: list[Instance]) -> bool:
        self.problems = []
        script = ruleset(world, instances, self.problems)
        if script == self.applied:
            return False
        netns.nft(self.ns, script)
        self.applied = script
        return True
