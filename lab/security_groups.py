"""Security groups, enforced in the fabric (the VPC router's forward hook), statefully.

Each ENI gets an egress chain (jumped to when a packet comes in from its link) and an ingress
chain (jumped to when a packet leaves through its link). A matching rule lets the packet on; no
match drops it, so negative reachability fails by timeout as on AWS. Replies of allowed traffic
pass by connection tracking. Source-group rules expand to the private IPs of the group's members.
The whole table is replaced atomically (one `nft -f`), which keeps tracked connections.
"""
from __future__ import annotations

from . import names, netns
from .world import Instance, Rule, World

TABLE = "lab_sg"


def _match(rule: Rule, world: World, peer: str) -> str | None:
    """nft match for one rule, `peer` being saddr (ingress) or daddr (egress); None if it matches nothing."""
    addrs = list(rule.cidrs)
    for g in rule.groups:
        addrs += world.members(g)
    if not addrs:
        return None
    parts = []
    if "0.0.0.0/0" not in addrs:
        parts.append(f"ip {peer} {{ {', '.join(sorted(set(addrs)))} }}")
    proto = rule.protocol.lower()
    if proto in ("tcp", "udp", "6", "17"):
        name = {"6": "tcp", "17": "udp"}.get(proto, proto)
        parts.append(f"meta l4proto {name}")
        lo, hi = rule.from_port, rule.to_port
        if lo is not None and lo != -1 and not (lo == 0 and hi == 65535):
            parts.append(f"th dport {lo}-{hi}" if hi not in (None, lo) else f"th dport {lo}")
    elif proto in ("icmp", "1"):
        parts.append("meta l4proto icmp")
        if rule.from_port not in (None, -1):
            parts.append(f"icmp type {rule.from_port}")
            if rule.to_port not in (None, -1):
                parts.append(f"icmp code {rule.to_port}")
    elif proto not in ("-1", "all"):
        parts.append(f"meta l4proto {int(proto)}" if proto.isdigit() else f"meta l4proto {proto}")
    return " ".join(parts)


def _chain(name: str, rules: list[Rule], world: World, peer: str, verdict: str) -> list[str]:
    lines = [f"  chain {name} {{"]
    for rule in rules:
        m = _match(rule, world, peer)
        if m is not None:
            lines.append(f"    {m} {verdict}" if m else f"    {verdict}")
    lines += ["    drop", "  }"]
    return lines


def ruleset(world: World, instances: list[Instance]) -> str:
    """The whole lab_sg table for one VPC router, as an nft script that replaces it atomically."""
    chains, egress_map, ingress_map = [], [], []
    for inst in sorted(instances, key=lambda i: i.id):
        link = names.link("e", inst.eni_id)
        tail = names.short(inst.eni_id, 12)
        egress = [r for g in inst.groups if g in world.groups for r in world.groups[g].egress]
        ingress = [r for g in inst.groups if g in world.groups for r in world.groups[g].ingress]
        # Egress passes on with `return` (ingress of the destination still has to agree).
        chains += _chain(f"eg_{tail}", egress, world, "daddr", "return")
        chains += _chain(f"in_{tail}", ingress, world, "saddr", "accept")
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

    def apply(self, world: World, instances: list[Instance]) -> bool:
        script = ruleset(world, instances)
        if script == self.applied:
            return False
        netns.nft(self.ns, script)
        self.applied = script
        return True
