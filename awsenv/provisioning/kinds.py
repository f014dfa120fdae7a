"""Every kind of resource the project creates, in delete order: the one table that teardown,
sweep, leftovers and the cost notes walk. Each row owns how a resource of its kind is found, what
must be undone before it can go, its deleting call and what to wait for after it: teardown only
walks KINDS, so a new row is deleted as soon as it is found.

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
from typing import Any

from botocore.exceptions import ClientError

from ..consistency import ADDRESS_NOT_FOUND, error_code
from ..retries import address_listed
from ..waits import api_check

LIVE_INSTANCE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]
INSTANCE_TIMEOUT = 600.0     # terminated (EC2: shutting-down lasts seconds to minutes)
NAT_TIMEOUT = 900.0          # deleted (EC2: deleting lasts about a minute, sometimes more)
ENI_TIMEOUT = 600.0          # their network interfaces gone


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


# A teardown pass (teardown._Pass), as the rows' own parts use it: `p.ec2`, `p.t` (the target),
# `p.say(line)`, `p.read(what, describe, key, **params)` (a listing; [] and said when it fails),
# `p.call(what, fn, id, gone=..., **params)` (a deleting call; True when done or nothing was there
# to do, False when it failed: said and kept, the teardown carries on), `p.notes` (a dict for the
# rows' own use within the pass). A stage is ({what: (check, timeout)}, what happens if it times out).
Pass = Any
Stage = tuple[dict, str]


@dataclass(frozen=True)
class Kind:
    name: str
    # (ec2, filters) -> [(id, tags)] of everything of this kind matching the filters
    listing: Callable[..., list[tuple[str, list[dict]]]]
    # (ec2, id) -> [(id, tags)] of that one resource if it still exists (a ledger entry's check)
    lookup: Callable[..., list[tuple[str, list[dict]]]]
    # (p, id) -> bool: its deleting call, through the pass
    delete: Callable[[Pass, str], bool]
    # (p, ids) -> the IDs to delete, once what holds them is undone (an address's association, a
    # gateway's attachment, the rules that name a group)
    before_delete: Callable[[Pass, list[str]], list[str]] | None = None
    # (p, deleted IDs) -> stages to wait for, in turn, before a kind that doesn't wait is deleted
    # (the same stage of consecutive kinds is one wait: instances and NAT gateways go together)
    settle: Callable[[Pass, list[str]], list[Stage]] | None = None
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

# -- what each row does in a teardown ------------------------------------------------------------------
def nothing_there(code: str) -> bool:
    """A delete answered with one of these found nothing to do (for an ID that isn't just-created)."""
    return code.endswith("NotFound") or code.endswith(".Malformed") or code == "Gateway.NotAttached"


def deleting(line: str | None, what: str, method: str, param: str, as_list: bool = False,
              gone: Callable[[str], bool] = nothing_there) -> Callable[[Pass, str], bool]:
    """A row's delete: says `line` (if any), then one call naming the ID."""
    def delete(p: Pass, rid: str) -> bool:
        if line:
            p.say(line.format(rid))
        return p.call(what.format(rid), getattr(p.ec2, method), rid, gone=gone, **{param: [rid] if as_list else rid})
    return delete


def _instances_held(p: Pass, ids: list[str]) -> list[str]:
    """The network interfaces each instance holds now: with DeleteOnTermination they go with the
    instance, but some time after it is terminated. (A NAT gateway's interface is EC2's own: it goes
    as the gateway reaches `deleted`, which is waited for; the deletes after that retry
    DependencyViolation for whatever still lingers.)"""
    held = p.notes.setdefault("interfaces", {})
    for eni in p.read("list the instances' network interfaces", p.ec2.describe_network_interfaces,
                      "NetworkInterfaces", Filters=[{"Name": "attachment.instance-id", "Values": ids}]):
        owner = eni.get("Attachment", {}).get("InstanceId")
        if owner:
            held.setdefault(owner, []).append(eni["NetworkInterfaceId"])
    return ids


def _instances_settle(p: Pass, terminated: list[str]) -> list[Stage]:
    ec2 = p.ec2

    def all_terminated() -> bool:
        found = ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": terminated}])["Reservations"]
        return all(i["State"]["Name"] == "terminated" for r in found for i in r["Instances"])

    def interfaces_gone() -> bool:
        return not ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": enis}])["NetworkInterfaces"]

    # Own checks, not botocore's instance_terminated waiter: it FAILS on `pending` and `stopping`,
    # exactly what an `up` interrupted right after RunInstances leaves.
    stages = [({f"instances {' '.join(terminated)} terminated": (
        api_check(all_terminated, "instances terminated"), INSTANCE_TIMEOUT)},
        "carrying on (what they hold may refuse to go)")]
    held = p.notes.get("interfaces", {})
    enis = sorted(e for iid in terminated for e in held.get(iid, []))   # not those of an instance still there
    if enis:
        stages.append(({f"their network interfaces {' '.join(enis)} gone": (
            api_check(interfaces_gone, "network interfaces gone"), ENI_TIMEOUT)},
            "carrying on (deletes that need them gone are retried)"))
    return stages


def _nats_settle(p: Pass, deleted: list[str]) -> list[Stage]:
    def all_deleted() -> bool:
        found = p.ec2.describe_nat_gateways(Filters=[{"Name": "nat-gateway-id", "Values": deleted}])["NatGateways"]
        return all(n["State"] in ("deleted", "failed") for n in found)
    return [({f"NAT gateways {' '.join(deleted)} deleted": (api_check(all_deleted, "NAT gateways deleted"), NAT_TIMEOUT)},
             "carrying on (what they hold may refuse to go)")]


def _addresses_unmapped(p: Pass, ids: list[str]) -> list[str]:
    for alloc in ids:
        for a in p.read(f"look up Elastic IP {alloc}", p.ec2.describe_addresses, "Addresses",
                        Filters=[{"Name": "allocation-id", "Values": [alloc]}]):
            if a.get("AssociationId"):
                p.call(f"disassociate Elastic IP {alloc}", p.ec2.disassociate_address, alloc,
                       AssociationId=a["AssociationId"])
    return ids


def _release(p: Pass, alloc: str) -> bool:
    p.say(f"releasing Elastic IP {alloc}")
    # InUse, AuthFailure, a NotFound that DescribeAddresses contradicts: retried (awsenv/retries.py);
    # a NotFound that it agrees with is "released" (release_address), so no code here means "gone".
    return p.call(f"release Elastic IP {alloc}", release_address, alloc, gone=lambda code: False,
                  target=p.t, allocation_id=alloc)


def _gateways_detached(p: Pass, ids: list[str]) -> list[str]:
    for igw in ids:
        for g in p.read(f"look up internet gateway {igw}", p.ec2.describe_internet_gateways, "InternetGateways",
                        Filters=[{"Name": "internet-gateway-id", "Values": [igw]}]):
            for att in g.get("Attachments", []):
                # Refused while the VPC still has public addresses mapped (DependencyViolation).
                p.call(f"detach internet gateway {igw} from {att['VpcId']}", p.ec2.detach_internet_gateway, igw,
                       InternetGatewayId=igw, VpcId=att["VpcId"])
    return ids


def _tables_disassociated(p: Pass, ids: list[str]) -> list[str]:
    kept = []
    for rt in ids:
        for t in p.read(f"look up route table {rt}", p.ec2.describe_route_tables, "RouteTables",
                        Filters=[{"Name": "route-table-id", "Values": [rt]}]):
            if any(a.get("Main") for a in t.get("Associations", [])):
                continue   # the main table goes with the VPC
            for a in t.get("Associations", []):
                p.call(f"disassociate route table {rt}", p.ec2.disassociate_route_table, rt,
                       AssociationId=a["RouteTableAssociationId"])
            kept.append(rt)
    return kept


def _group_rules_revoked(p: Pass, ids: list[str]) -> list[str]:
    # Groups that name each other as sources can't be deleted until those rules are gone.
    for g in p.read("list the security groups", p.ec2.describe_security_groups, "SecurityGroups",
                    Filters=[{"Name": "group-id", "Values": ids}]):
        referencing = [perm for perm in g.get("IpPermissions", []) if perm.get("UserIdGroupPairs")]
        if referencing:
            p.call(f"revoke the group rules of {g['GroupId']}", p.ec2.revoke_security_group_ingress, g["GroupId"],
                   GroupId=g["GroupId"], IpPermissions=referencing)
    return ids


# The deletes after the instances and NAT gateways can meet DependencyViolation while what they
# held lets go (a terminated instance's interface holds its groups and subnet for a while): the
# teardown's dependency scope waits those out (awsenv/retries.py).
KINDS: tuple[Kind, ...] = (
    Kind("instance", lambda ec2, f: _instances(ec2, Filters=f), lambda ec2, i: _instances(ec2, InstanceIds=[i]),
         deleting("terminating instance {}", "terminate instance {}", "terminate_instances", "InstanceIds", True),
         before_delete=_instances_held, settle=_instances_settle),
    Kind("nat-gateway", lambda ec2, f: _nats(ec2, Filters=f), lambda ec2, i: _nats(ec2, NatGatewayIds=[i]),
         deleting("deleting NAT gateway {} (billed hourly)", "delete NAT gateway {}", "delete_nat_gateway",
                   "NatGatewayId"),
         settle=_nats_settle, hourly_cost=Price({"us-east-1": "$0.045/hour plus data"})),
    Kind("elastic-ip", lambda ec2, f: _addresses(ec2, Filters=f), lambda ec2, i: _addresses(ec2, AllocationIds=[i]),
         _release, before_delete=_addresses_unmapped, hourly_cost=Price({"us-east-1": "$0.005/hour"})),
    Kind("internet-gateway", lambda ec2, f: _igws(ec2, Filters=f), lambda ec2, i: _igws(ec2, InternetGatewayIds=[i]),
         deleting("deleting internet gateway {}", "delete internet gateway {}", "delete_internet_gateway",
                   "InternetGatewayId"),
         before_delete=_gateways_detached),
    Kind("route-table", lambda ec2, f: _tables(ec2, Filters=f), lambda ec2, i: _tables(ec2, RouteTableIds=[i]),
         deleting("deleting route table {}", "delete route table {}", "delete_route_table", "RouteTableId"),
         before_delete=_tables_disassociated),
    Kind("security-group", lambda ec2, f: _groups(ec2, Filters=f), lambda ec2, i: _groups(ec2, GroupIds=[i]),
         deleting("deleting security group {}", "delete security group {}", "delete_security_group", "GroupId"),
         before_delete=_group_rules_revoked),
    Kind("subnet", lambda ec2, f: _subnets(ec2, Filters=f), lambda ec2, i: _subnets(ec2, SubnetIds=[i]),
         deleting("deleting subnet {}", "delete subnet {}", "delete_subnet", "SubnetId")),
    Kind("vpc", lambda ec2, f: _vpcs(ec2, Filters=f), lambda ec2, i: _vpcs(ec2, VpcIds=[i]),
         deleting("deleting VPC {}", "delete VPC {}", "delete_vpc", "VpcId")),
    Kind("key-pair", lambda ec2, f: _keys(ec2, Filters=f), lambda ec2, i: _keys(ec2, KeyNames=[i]),
         deleting(None, "delete key pair {}", "delete_key_pair", "KeyName")),
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


# The kind of an ID by its prefix (a key pair is named, not numbered: none).
_PREFIXES = {"i-": "instance", "nat-": "nat-gateway", "eipalloc-": "elastic-ip", "igw-": "internet-gateway",
             "rtb-": "route-table", "sg-": "security-group", "subnet-": "subnet", "vpc-": "vpc"}


def kind_of(resource_id: str) -> str | None:
    return next((kind for prefix, kind in _PREFIXES.items() if resource_id.startswith(prefix)), None)


def lookup(ec2, kind: str, resource_id: str) -> list[tuple[str, list[dict]]]:
    """That one resource, if it still exists; [] when it is gone or the ID is malformed."""
    try:
        return BY_NAME[kind].lookup(ec2, resource_id)
    except ClientError:
        return []


def release_address(target, allocation_id: str) -> None:
    """ReleaseAddress; an address already gone counts as released. Right after its NAT gateway is
    deleted EC2 refuses for a moment: called within `target.retries.waiting_out_dependencies()`, the
    target's session retries that (awsenv/retries.py). InvalidAllocationID.NotFound means gone only when
    DescribeAddresses agrees and the target didn't just allocate it; anything else is raised as it
    came (the address may still be allocated, and billed)."""
    try:
        target.ec2.release_address(AllocationId=allocation_id)
    except ClientError as exc:
        if (error_code(exc) != ADDRESS_NOT_FOUND or target.recent.is_fresh(allocation_id)
                or address_listed(target.ec2, allocation_id)):
            raise
