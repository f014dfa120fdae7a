"""Every kind of resource the project creates, in delete order: the one table that teardown,
sweep, leftovers and the cost notes walk.

Order matters on AWS: instances and the NAT gateway hold ENIs that keep subnets, security groups
and Elastic IPs in use, so they go first. NAT gateways and Elastic IPs bill by the hour, so every
message about what is left names them first, with their cost.

The hourly prices are a per-region table (`Price.by_region`), from AWS's own pricing pages (see
PRICES_SOURCE). Those pages render each region's figure in the browser only; the one figure their
text states is us-east-1's, so that is the only row held. A message about another region says the
figure is us-east-1's and names the region, rather than pass it off as that region's price.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]


PRICES_SOURCE = ("AWS's Amazon VPC pricing page (aws.amazon.com/vpc/pricing): its pricing example for US East "
                 "($0.045 per NAT gateway-hour plus $0.045 per GB processed) and the public IPv4 charge ($0.005 "
                 "per address-hour); the page renders each region's own figure in the browser only")
# When the NAT gateway's figure was last compared, and with what: a verbatim transcription of that
# page's text dated 2026-09-20 (the page itself can't be read from here), whose example is US East
# (Ohio) at the same $0.045 as the us-east-1 row below. The IPv4 figure is carried from before.
PRICES_CHECKED = "2026-12-06"


@dataclass(frozen=True)
class Price:
    """What a kind costs by the hour, per region; `by_region` holds the regions whose figure we have."""
    by_region: dict[str, str]

    def note(self, region: str | None) -> str:
        if region in self.by_region:
            return f"about {self.by_region[region]} in {region}"
        known = "us-east-1" if "us-east-1" in self.by_region else next(iter(self.by_region))
        elsewhere = f"; {region}'s price differs" if region else "; other regions' prices differ"
        return f"about {self.by_region[known]} in {known}{elsewhere} (see AWS's VPC pricing page)"


@dataclass(frozen=True)
class Kind:
    name: str
    # (ec2, filters) -> [(id, tags)] of everything of this kind matching the filters
    listing: Callable[..., list[tuple[str, list[dict]]]]
    # (ec2, id) -> [(id, tags)] of that one resource if it still exists (a ledger entry's check)
    lookup: Callable[..., list[tuple[str, list[dict]]]]
    hourly_cost: Price | None = None


def _instances(ec2, **kw):
    return [(i["InstanceId"], i.get("Tags", [])) for r in ec2.describe_instances(**kw)["Reservations"]
            for i in r["Instances"] if i["State"]["Name"] in LIVE_INSTANCE_STATES]


def _nats(ec2, **kw):
    return [(n["NatGatewayId"], n.get("Tags", [])) for n in ec2.describe_nat_gateways(**kw)["NatGateways"]
            if n["State"] not in ("deleted", "deleting", "failed")]


def _simple(op: str, key: str, id_key: str):
    def listing(ec2, **kw):
        return [(x[id_key], x.get("Tags", [])) for x in getattr(ec2, op)(**kw)[key]]
    return listing


_addresses = _simple("describe_addresses", "Addresses", "AllocationId")
_igws = _simple("describe_internet_gateways", "InternetGateways", "InternetGatewayId")
_tables = _simple("describe_route_tables", "RouteTables", "RouteTableId")
_groups = _simple("describe_security_groups", "SecurityGroups", "GroupId")
_subnets = _simple("describe_subnets", "Subnets", "SubnetId")
_vpcs = _simple("describe_vpcs", "Vpcs", "VpcId")
_keys = _simple("describe_key_pairs", "KeyPairs", "KeyName")

KINDS: tuple[Kind, ...] = (
    Kind("instance", lambda ec2, f: _instances(ec2, Filters=f), lambda ec2, i: _instances(ec2, InstanceIds=[i])),
    Kind("nat-gateway", lambda ec2, f: _nats(ec2, Filters=f), lambda ec2, i: _nats(ec2, NatGatewayIds=[i]),
         hourly_cost=Price({"us-east-1": "$0.045/hour plus data"})),
    Kind("elastic-ip", lambda ec2, f: _addresses(ec2, Filters=f), lambda ec2, i: _addresses(ec2, AllocationIds=[i]),
         hourly_cost=Price({"us-east-1": "$0.005/hour"})),
    Kind("internet-gateway", lambda ec2, f: _igws(ec2, Filters=f),
         lambda ec2, i: _igws(ec2, InternetGatewayIds=[i])),
    Kind("route-table", lambda ec2, f: _tables(ec2, Filters=f), lambda ec2, i: _tables(ec2, RouteTableIds=[i])),
    Kind("security-group", lambda ec2, f: _groups(ec2, Filters=f), lambda ec2, i: _groups(ec2, GroupIds=[i])),
    Kind("subnet", lambda ec2, f: _subnets(ec2, Filters=f), lambda ec2, i: _subnets(ec2, SubnetIds=[i])),
    Kind("vpc", lambda ec2, f: _vpcs(ec2, Filters=f), lambda ec2, i: _vpcs(ec2, VpcIds=[i])),
    Kind("key-pair", lambda ec2, f: _keys(ec2, Filters=f), lambda ec2, i: _keys(ec2, KeyNames=[i])),
)
BY_NAME = {k.name: k for k in KINDS}
BILLED = tuple(k.name for k in KINDS if k.hourly_cost)


def billed_first(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(kind, id) pairs with what bills by the hour first, the rest in delete order."""
    order = {name: n for n, name in enumerate(BILLED + tuple(k.name for k in KINDS if not k.hourly_cost))}
    return sorted(items, key=lambda item: order.get(item[0], len(order)))


def cost_note(kind: str, region: str | None = None) -> str:
    """" (about $0.045/hour plus data in us-east-1)" for a billed kind, else "": for messages about
    what is left. Without the region, the note still says whose figure it is."""
    cost = BY_NAME[kind].hourly_cost if kind in BY_NAME else None
    return f" ({cost.note(region)})" if cost else ""


def lookup(ec2, kind: str, resource_id: str) -> list[tuple[str, list[dict]]]:
    """That one resource, if it still exists; [] when it is gone or the ID is malformed."""
    try:
        return BY_NAME[kind].lookup(ec2, resource_id)
    except ClientError:
        return []
