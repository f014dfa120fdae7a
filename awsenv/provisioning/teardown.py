"""Removes an environment in the order of kinds.py, from tags and from the run ledger.

Only resources carrying our Project tag and this environment's Env tag are ever deleted; a
ledger entry is looked up and its tags verified first (a ledger is a file anyone could edit).
A rollback passes `only`: a test of (kind, id, tags) that holds for what this very process
created (provisioner.made_here), so nothing that was there before it is touched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from ..settings import Settings
from ..targets import Target
from ..waits import wait_with_waiter
from . import kinds, tags
from .ledger import Ledger


@dataclass
class Leftovers:
    items: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self):
        return bool(self.items)

    def lines(self) -> list[str]:
        return [f"{k} {i} LEFT BEHIND{kinds.cost_note(k)}" if k in kinds.BILLED else f"{k} {i} left behind"
                for k, i in kinds.billed_first(self.items)]


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


Only = Callable[[str, str, list[dict]], bool]


def find_env(ec2, env: str, ledger: Ledger, only: Only | None = None) -> dict[str, list[str]]:
    """Everything of the environment by kind: tagged Project and Env (checked on our side too, since
    moto ignores some tag filters), plus ledger entries whose own tags say they are ours."""
    found: dict[str, list[str]] = {k.name: [] for k in kinds.KINDS}
    keep = only or (lambda kind, rid, tag_list: True)
    for kind in kinds.KINDS:
        for rid, tag_list in kind.listing(ec2, tags.env_filter(env)):
            if tags.is_ours(tag_list, env) and keep(kind.name, rid, tag_list):
                found[kind.name].append(rid)
    for kind_name, rid in ledger.entries():
        if rid not in found[kind_name]:
            if any(tags.is_ours(t, env) and keep(kind_name, rid, t) for _, t in kinds.lookup(ec2, kind_name, rid)):
                found[kind_name].append(rid)
    return found


def down(target: Target, settings: Settings, progress=print, only: Only | None = None) -> Leftovers:
    """Remove the environment (or, with `only`, just those of its resources); returns what is left."""
    ec2 = target.ec2
    ledger = Ledger(settings.state_dir)
    found = find_env(ec2, settings.env, ledger, only)
    if not any(found.values()):
        progress(f"env {settings.env}: nothing to remove")
        if only is None:
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
    left = leftovers(target, settings, only)
    if only is None:
        # The hosts are gone: their pinned keys must not fail the next environment that gets the
        # same addresses (Elastic IPs and private IPs are reused).
        from ..hosts.ssh import forget_pins

        forget_pins(settings)
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


def leftovers(target: Target, settings: Settings, only: Only | None = None) -> Leftovers:
    found = find_env(target.ec2, settings.env, Ledger(settings.state_dir), only)
    return Leftovers([(k.name, i) for k in kinds.KINDS for i in found.get(k.name, [])])
