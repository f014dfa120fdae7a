"""Removes an environment in a safe order, from tags and from the run ledger.

Order matters on AWS: instances and the NAT gateway hold ENIs that keep subnets, security groups
and Elastic IPs in use, so they go first and are waited for. NAT gateways and Elastic IPs are
named first in every message because they are what bills by the hour.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from . import tags
from .ledger import Ledger
from .settings import Settings
from .targets import Target
from .waits import wait_with_waiter

HOURLY_COST = {"nat-gateway": "about $0.045/hour plus data", "elastic-ip": "about $0.005/hour"}


@dataclass
class Leftovers:
    items: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self):
        return bool(self.items)

    def lines(self) -> list[str]:
        billed = [i for i in self.items if i[0] in HOURLY_COST]
        rest = [i for i in self.items if i[0] not in HOURLY_COST]
        return ([f"{k} {i} LEFT BEHIND ({HOURLY_COST[k]})" for k, i in billed]
                + [f"{k} {i} left behind" for k, i in rest])


def _ok(fn, **kwargs) -> None:
    """Delete calls succeed when the thing is already gone."""
    try:
        fn(**kwargs)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
        if not (code.endswith("NotFound") or code.endswith(".Malformed") or code in (
                "Gateway.NotAttached", "InvalidAssociationID.NotFound", "InvalidAllocationID.NotFound")):
            raise


def _try(progress, fn, **kwargs) -> None:
    """Keep going when one deletion fails: what is left is reported at the end, not hidden by a crash."""
    try:
        _ok(fn, **kwargs)
    except ClientError as exc:
        err = exc.response["Error"]
        progress(f"  could not {fn.__name__.replace('_', ' ')} {next(iter(kwargs.values()))}: "
                 f"{err['Code']}: {err['Message']}")


def find_env(ec2, env: str, ledger: Ledger) -> dict[str, list[str]]:
    """Everything of the environment, by tag and by ledger, by kind."""
    f = tags.env_filter(env)
    found = {
        "instance": [i["InstanceId"] for r in ec2.describe_instances(Filters=f + [{
            "Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped", "shutting-down"]}])[
            "Reservations"] for i in r["Instances"]],
        "nat-gateway": [n["NatGatewayId"] for n in ec2.describe_nat_gateways(Filters=f)["NatGateways"]
                        if n["State"] not in ("deleted",) and tags.is_ours(n.get("Tags"), env)],
        "elastic-ip": [a["AllocationId"] for a in ec2.describe_addresses(Filters=f)["Addresses"]],
        "internet-gateway": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways(Filters=f)["InternetGateways"]],
        "route-table": [t["RouteTableId"] for t in ec2.describe_route_tables(Filters=f)["RouteTables"]],
        "security-group": [g["GroupId"] for g in ec2.describe_security_groups(Filters=f)["SecurityGroups"]],
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets(Filters=f)["Subnets"]],
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs(Filters=f)["Vpcs"]],
        "key-pair": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=f)["KeyPairs"]],
    }
    for kind, rid in ledger.entries():
        if rid not in found.setdefault(kind, []) and _exists(ec2, kind, rid):
            found[kind].append(rid)
    return found


def _exists(ec2, kind: str, rid: str) -> bool:
    calls = {
        "instance": lambda: [i for r in ec2.describe_instances(InstanceIds=[rid])["Reservations"] for i in r["Instances"]
                             if i["State"]["Name"] != "terminated"],
        "nat-gateway": lambda: [n for n in ec2.describe_nat_gateways(NatGatewayIds=[rid])["NatGateways"]
                                if n["State"] != "deleted"],
        "elastic-ip": lambda: ec2.describe_addresses(AllocationIds=[rid])["Addresses"],
        "internet-gateway": lambda: ec2.describe_internet_gateways(InternetGatewayIds=[rid])["InternetGateways"],
        "route-table": lambda: ec2.describe_route_tables(RouteTableIds=[rid])["RouteTables"],
        "security-group": lambda: ec2.describe_security_groups(GroupIds=[rid])["SecurityGroups"],
        "subnet": lambda: ec2.describe_subnets(SubnetIds=[rid])["Subnets"],
        "vpc": lambda: ec2.describe_vpcs(VpcIds=[rid])["Vpcs"],
        "key-pair": lambda: ec2.describe_key_pairs(KeyNames=[rid])["KeyPairs"],
    }
    try:
        return bool(calls[kind]())
    except (ClientError, KeyError):
        return False


def down(target: Target, settings: Settings, progress=print) -> Leftovers:
    ec2 = target.ec2
    ledger = Ledger(settings.state_dir)
    found = find_env(ec2, settings.env, ledger)
    if not any(found.values()):
        progress(f"env {settings.env}: nothing to remove")
        ledger.clear()
        return Leftovers()

    if found["instance"]:
        progress(f"terminating instances {', '.join(found['instance'])}")
        _try(progress, ec2.terminate_instances, InstanceIds=found["instance"])
    for nat in found["nat-gateway"]:
        progress(f"deleting NAT gateway {nat} (billed hourly)")
        _try(progress, ec2.delete_nat_gateway, NatGatewayId=nat)
    if found["instance"]:
        wait_with_waiter(ec2, "instance_terminated", "instances terminated", 600, progress,
                         InstanceIds=found["instance"])
    if found["nat-gateway"]:
        wait_with_waiter(ec2, "nat_gateway_deleted", "NAT gateways deleted", 900, progress, delay=10,
                         NatGatewayIds=found["nat-gateway"])
    for alloc in found["elastic-ip"]:
        for a in ec2.describe_addresses(AllocationIds=[alloc])["Addresses"]:
            if a.get("AssociationId"):
                _try(progress, ec2.disassociate_address, AssociationId=a["AssociationId"])
        progress(f"releasing Elastic IP {alloc}")
        _try(progress, ec2.release_address, AllocationId=alloc)
    for igw in found["internet-gateway"]:
        for g in ec2.describe_internet_gateways(InternetGatewayIds=[igw])["InternetGateways"]:
            for att in g.get("Attachments", []):
                _try(progress, ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=att["VpcId"])
        progress(f"deleting internet gateway {igw}")
        _try(progress, ec2.delete_internet_gateway, InternetGatewayId=igw)
    for rt in found["route-table"]:
        for t in ec2.describe_route_tables(RouteTableIds=[rt])["RouteTables"]:
            if any(a.get("Main") for a in t.get("Associations", [])):
                continue   # the main table goes with the VPC
            for a in t.get("Associations", []):
                _try(progress, ec2.disassociate_route_table, AssociationId=a["RouteTableAssociationId"])
            progress(f"deleting route table {rt}")
            _try(progress, ec2.delete_route_table, RouteTableId=rt)
    _delete_groups(ec2, found["security-group"], progress)
    for sn in found["subnet"]:
        progress(f"deleting subnet {sn}")
        _try(progress, ec2.delete_subnet, SubnetId=sn)
    for vpc in found["vpc"]:
        progress(f"deleting VPC {vpc}")
        _try(progress, ec2.delete_vpc, VpcId=vpc)
    for key in found["key-pair"]:
        _try(progress, ec2.delete_key_pair, KeyName=key)
    left = leftovers(target, settings)
    # The hosts are gone: their pinned keys must not fail the next environment that gets the
    # same addresses (Elastic IPs and private IPs are reused).
    (settings.state_dir / "known_hosts").unlink(missing_ok=True)
    if not left:
        ledger.clear()
    return left


def _delete_groups(ec2, group_ids: list[str], progress) -> None:
    # Groups that name each other as sources can't be deleted until those rules are gone.
    for g in ec2.describe_security_groups(GroupIds=group_ids)["SecurityGroups"] if group_ids else []:
        referencing = [p for p in g.get("IpPermissions", []) if p.get("UserIdGroupPairs")]
        if referencing:
            _try(progress, ec2.revoke_security_group_ingress, GroupId=g["GroupId"], IpPermissions=referencing)
    for gid in group_ids:
        progress(f"deleting security group {gid}")
        _try(progress, ec2.delete_security_group, GroupId=gid)


def leftovers(target: Target, settings: Settings) -> Leftovers:
    found = find_env(target.ec2, settings.env, Ledger(settings.state_dir))
    order = ["nat-gateway", "elastic-ip", "instance", "internet-gateway", "route-table", "security-group",
             "subnet", "vpc", "key-pair"]
    return Leftovers([(k, i) for k in order for i in found.get(k, [])])
