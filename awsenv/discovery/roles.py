"""Which subnet is the public one and which the private one, read from the routes.

A subnet whose effective route table sends 0.0.0.0/0 to an internet gateway is public; one with no
route to an internet gateway at all is private (terratest's IsPublicSubnet reads routes the same
way). The instances say which of them the article means: the web server's subnet is the public
one where the routes agree, the DB server's the private one where the routes agree. Where they
don't (a DB relaunched into the public subnet), the routes decide and the instance that sits in the
wrong place is the finding (4.1, 2.1), not the subnet it left. A CIDR the user stated
(--public-cidr, --private-cidr), or that this run built with, names its subnet outright where a
subnet has it; where none has, the routes decide and 1.2 says the CIDR is missing. CIDR values are
never guessed from.

Each role comes with the sentence that says how it was found, for the evidence and the messages.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .snapshot import RouteTable, Snapshot, Subnet


@dataclass(frozen=True)
class SubnetRoles:
    public: Subnet | None
    private: Subnet | None
    public_why: str           # how the public subnet was found, or why none was
    private_why: str


def label(subnet: Subnet | None) -> str:
    """How every message names a subnet: its ID and CIDR."""
    return f"{subnet.id} ({subnet.cidr})" if subnet else "no subnet"


def table_label(table: RouteTable | None) -> str:
    if table is None:
        return "no route table"
    return f"route table {table.id}" + (" (the VPC's main table)" if table.main else "")


def default_to_igw(table: RouteTable | None) -> str | None:
    """The internet gateway the table sends 0.0.0.0/0 to, if it does (any state: it says what the
    subnet is meant to be; whether that route works is 1.4's question)."""
    route = table.default_route() if table else None
    return route.target if route is not None and route.kind == "igw" else None


def routes_to_igw(table: RouteTable | None) -> bool:
    return table is not None and any(r.kind == "igw" for r in table.routes)


def find(snap: Snapshot, public_cidr: str | None = None, private_cidr: str | None = None) -> SubnetRoles:
    subnets = sorted(snap.subnets.values(), key=lambda s: s.id)
    public, public_why = _public(snap, subnets, public_cidr)
    private, private_why = _private(snap, subnets, public, private_cidr)
    return SubnetRoles(public, private, public_why, private_why)


def _stated(subnets: list[Subnet], cidr: str | None, option: str,
            by_routes: Callable[[], tuple[Subnet | None, str]]) -> tuple[Subnet | None, str]:
    """The subnet a stated CIDR names; where none has it, the one the routes name (1.2 then says the
    stated CIDR is missing, and the other checks still look at the right subnet)."""
    found = next((s for s in subnets if s.cidr == cidr), None) if cidr else None
    if found is not None:
        return found, f"{label(found)}: the stated {option}"
    subnet, why = by_routes()
    if cidr:
        why = f"no subnet of the VPC has the stated {option} {cidr}; by the routes, {why}"
    return subnet, why


def _public(snap: Snapshot, subnets: list[Subnet], cidr: str | None) -> tuple[Subnet | None, str]:
    return _stated(subnets, cidr, "--public-cidr", lambda: _public_by_routes(snap, subnets))


def _public_by_routes(snap: Snapshot, subnets: list[Subnet]) -> tuple[Subnet | None, str]:
    to_igw = {s.id: default_to_igw(snap.route_table_of(s)) for s in subnets}
    public_like = [s for s in subnets if to_igw[s.id]]
    web = snap.subnets.get(snap.web.subnet_id or "")
    if web is not None and to_igw[web.id]:
        return web, (f"{label(web)}: the web server's subnet; its {table_label(snap.route_table_of(web))} sends "
                     f"0.0.0.0/0 to {to_igw[web.id]}")
    if len(public_like) == 1:
        only = public_like[0]
        return only, (f"{label(only)}: the only subnet whose {table_label(snap.route_table_of(only))} sends "
                      f"0.0.0.0/0 to an internet gateway ({to_igw[only.id]}); the web server is in {label(web)}")
    if web is None:
        return None, "the web server is in no subnet of the VPC"
    others = f" (several do: {', '.join(label(s) for s in public_like)})" if public_like else " (none does)"
    return web, (f"{label(web)}: the web server's subnet, though its {table_label(snap.route_table_of(web))} sends "
                 f"0.0.0.0/0 to no internet gateway{others}")


def _private(snap: Snapshot, subnets: list[Subnet], public: Subnet | None,
             cidr: str | None) -> tuple[Subnet | None, str]:
    return _stated(subnets, cidr, "--private-cidr", lambda: _private_by_routes(snap, subnets, public))


def _private_by_routes(snap: Snapshot, subnets: list[Subnet], public: Subnet | None) -> tuple[Subnet | None, str]:
    closed = [s for s in subnets if (public is None or s.id != public.id)
              and not routes_to_igw(snap.route_table_of(s))]
    db = snap.subnets.get(snap.db.subnet_id or "")
    if db is not None and db.id in {s.id for s in closed}:
        return db, (f"{label(db)}: the DB server's subnet; its {table_label(snap.route_table_of(db))} has no route "
                    "to an internet gateway")
    where = f"the DB server is in {label(db)}"
    if len(closed) == 1:
        return closed[0], (f"{label(closed[0])}: the only subnet besides the public one with no route to an internet "
                           f"gateway; {where}")
    if len(closed) > 1:
        via_nat = [s for s in closed if _default_kind(snap.route_table_of(s)) == "nat"]
        if len(via_nat) == 1:
            return via_nat[0], (f"{label(via_nat[0])}: of the subnets with no route to an internet gateway, the one "
                                f"whose 0.0.0.0/0 goes to a NAT gateway; {where}")
        return None, (f"several subnets have no route to an internet gateway ({', '.join(label(s) for s in closed)}) "
                      f"and {where}: say which is the private one with --private-cidr")
    if db is not None and (public is None or db.id != public.id):
        return db, (f"{label(db)}: the DB server's subnet (every other subnet routes to an internet gateway, "
                    f"and so does its own {table_label(snap.route_table_of(db))})")
    return None, f"every subnet of the VPC routes to an internet gateway, and {where}"


def _default_kind(table: RouteTable | None) -> str | None:
    route = table.default_route() if table else None
    return route.kind if route is not None else None
