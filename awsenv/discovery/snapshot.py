"""The environment, read once per run into plain typed records that checks look at.

Roles are derived from the instances and the routes, never from CIDR values or our own tags, so
environments built by Terraform, CloudFormation or by hand are read the same way as ours.
About a dozen API calls whatever the number of checks; refresh only after something changed.

lab/world.py reads the same API for the local data plane, and resolves route tables and rules too.
The two are kept apart on purpose: this is the verifier, that is the thing verified. A shared
reader would carry one misreading into both, and the checks would then agree with the emulator's
mistake instead of catching it. Don't merge them.

Free text from the API (tags, security group names, key pair names) is written by whoever may tag
or name a resource; it reaches the terminal, the report and junit through every message that quotes
it. So the snapshot holds it as display text (common/display.py): one line, no control or bidi
characters, capped. IDs, addresses and states are AWS's own structured values.
"""
from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from common.display import for_terminal

from ..errors import EnvError
from ..install import provision_command
from . import roles
from .rules import WORLD, Admits, Judge, Permission, flatten, prefix_list_ids

__all__ = ["WORLD", "Admits", "Permission", "Snapshot"]     # Permission lives in rules.py, read here
LIVE_NAT_STATES = ("pending", "available")
PROJECT_TAG = "twotier"     # the Project tag provisioning puts on everything (provisioning/tags.py)


@dataclass(frozen=True)
class Route:
    destination: str | None       # None for prefix-list routes (VPC endpoints)
    target: str                   # "local", igw-..., nat-..., vpce-..., eni-...
    state: str

    @property
    def kind(self) -> str:
        # The target ID's prefix names its kind (igw, nat, vpce, eni, pcx, tgw ...); the VPC's own
        # route has the target "local", which is its own kind.
        return self.target.split("-", 1)[0]

    def row(self) -> str:
        note = " (target gone)" if self.state == "blackhole" else ""
        return f"{self.destination or '(prefix list)':<18} -> {self.target:<24} {self.state}{note}"


@dataclass(frozen=True)
class RouteTable:
    id: str
    main: bool
    routes: tuple[Route, ...]
    subnet_ids: tuple[str, ...]

    def default_route(self) -> Route | None:
        return next((r for r in self.routes if r.destination == WORLD), None)

    @property
    def label(self) -> str:
        """How messages name it: "route table rtb-..." and whether it is the VPC's main one."""
        return roles.table_label(self)

    def rows(self) -> list[str]:
        return [r.row() for r in self.routes]


@dataclass(frozen=True)
class Subnet:
    id: str
    cidr: str
    az: str
    map_public_ip: bool
    route_table_id: str | None    # effective: explicit association, else the VPC's main table
    explicit_association: bool

    @property
    def label(self) -> str:
        """How messages name it: ID and CIDR."""
        return roles.label(self)


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
    vpc_id: str
    ingress: tuple[Permission, ...]
    egress: tuple[Permission, ...]

    def rows(self) -> list[str]:
        return [p.row() for p in self.ingress]


@dataclass(frozen=True)
class Instance:
    id: str
    role: str                     # "web" or "db"
    state: str
    instance_type: str
    image_id: str
    subnet_id: str | None
    private_ip: str | None
    public_ip: str | None
    public_dns: str
    key_name: str | None
    group_ids: tuple[str, ...]
    http_tokens: str              # "required" means IMDSv2 only
    eni_ids: tuple[str, ...]
    private_ips: tuple[str, ...] = ()          # every private address of every interface
    launch_time: dt.datetime | None = None


@dataclass(frozen=True)
class ElasticIp:
    allocation_id: str
    public_ip: str
    association_id: str | None
    instance_id: str | None
    eni_id: str | None
    private_ip: str | None
    role: str | None = None       # our Role tag (nat-eip, web-eip), where provision.py made it


@dataclass(frozen=True)
class InternetGateway:
    id: str
    attachments: tuple[tuple[str, str], ...]    # (vpc_id, state)

    def state_for(self, vpc_id: str) -> str | None:
        return next((s for v, s in self.attachments if v == vpc_id), None)


@dataclass(frozen=True)
class NatGateway:
    id: str
    subnet_id: str
    state: str
    connectivity: str
    public_ips: tuple[str, ...]
    allocation_ids: tuple[str, ...]
    private_ip: str | None
    create_time: dt.datetime | None = None
    delete_time: dt.datetime | None = None
    role: str | None = None       # our Role tag ("nat" for the article's own), where provision.py made it

    @property
    def live(self) -> bool:
        return self.state in LIVE_NAT_STATES


@dataclass(frozen=True)
class Vpc:
    id: str
    cidr: str
    dns_support: bool
    dns_hostnames: bool
    is_default: bool
    name: str = ""                # its Name tag
    owner_id: str = ""            # the account that owns it (results.json, ASFF findings)


@dataclass(frozen=True)
class Snapshot:
    region: str
    vpc: Vpc
    web: Instance
    db: Instance
    subnets: dict[str, Subnet]
    route_tables: dict[str, RouteTable]
    internet_gateways: tuple[InternetGateway, ...]
    nat_gateways: tuple[NatGateway, ...]
    security_groups: dict[str, SecurityGroup]
    addresses: tuple[ElasticIp, ...]
    eni_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)   # private ip -> group ids
    key_pairs: tuple[str, ...] = ()
    # The CIDRs the user stated for the subnets (--public-cidr, --private-cidr): they name their
    # subnets outright. Otherwise the routes and the instances do (roles.py).
    stated_cidrs: tuple[str | None, str | None] = (None, None)

    # -- roles --------------------------------------------------------------------------
    @functools.cached_property
    def subnet_roles(self) -> roles.SubnetRoles:
        """The public and the private subnet, each with how it was found."""
        return roles.find(self, *self.stated_cidrs)

    @property
    def public_subnet(self) -> Subnet | None:
        return self.subnet_roles.public

    @property
    def private_subnet(self) -> Subnet | None:
        return self.subnet_roles.private

    def subnet_of(self, instance: Instance) -> Subnet | None:
        return self.subnets.get(instance.subnet_id) if instance.subnet_id else None

    def route_table_of(self, subnet: Subnet | None) -> RouteTable | None:
        return self.route_tables.get(subnet.route_table_id) if subnet and subnet.route_table_id else None

    @property
    def attached_igw(self) -> InternetGateway | None:
        return next((g for g in self.internet_gateways if g.state_for(self.vpc.id) == "available"), None)

    @property
    def live_nat_gateways(self) -> tuple[NatGateway, ...]:
        return tuple(n for n in self.nat_gateways if n.live)

    @property
    def gone_nat_gateways(self) -> tuple[NatGateway, ...]:
        """Deleted or deleting NAT gateways the API still lists (EC2 keeps them for about an hour)."""
        return tuple(n for n in self.nat_gateways if not n.live)

    def groups_of(self, instance: Instance) -> list[SecurityGroup]:
        return [self.security_groups[g] for g in instance.group_ids if g in self.security_groups]

    def group_contains_web(self, group_id: str) -> bool:
        # A source group counts as "the web server" when the web server is a member of it,
        # whatever its name (shared "client" groups are common in real environments).
        return group_id in self.web.group_ids

    def eip_of(self, instance: Instance) -> ElasticIp | None:
        return next((a for a in self.addresses if a.instance_id == instance.id), None)

    def ingress_to(self, instance: Instance) -> list[tuple[SecurityGroup, Permission]]:
        return [(g, p) for g in self.groups_of(instance) for p in g.ingress]

    def judge(self) -> Judge:
        members: dict[str, list[str]] = {}
        for ip, groups in self.eni_groups.items():
            for g in groups:
                members.setdefault(g, []).append(ip)
        names = {self.public_subnet.cidr if self.public_subnet else "": "the public subnet",
                 self.private_subnet.cidr if self.private_subnet else "": "the private subnet"}
        subnets = {s.cidr: names.get(s.cidr, s.id) for s in self.subnets.values()}
        subnets[self.vpc.cidr] = "the whole VPC"
        return Judge(self.web.private_ips or tuple(filter(None, [self.web.private_ip])), self.web.group_ids,
                     {g: tuple(ips) for g, ips in members.items()},
                     {g.id: g.name for g in self.security_groups.values()}, subnets)

    def admitted_to(self, instance: Instance) -> list[tuple[SecurityGroup, Admits]]:
        """Every ingress source of the instance's groups, with what it admits."""
        judge = self.judge()
        return [(g, judge.admits(p)) for g, p in self.ingress_to(instance)]

    def resources(self) -> list[tuple[str, str, str]]:
        """(kind, id, detail) for the report's inventory."""
        rows = [("vpc", self.vpc.id, self.vpc.cidr)]
        rows += [("subnet", s.id, f"{s.cidr} ({s.az})") for s in self.subnets.values()]
        rows += [("route-table", t.id, "main" if t.main else ", ".join(t.subnet_ids)) for t in self.route_tables.values()]
        rows += [("internet-gateway", g.id, ", ".join(f"{v}:{s}" for v, s in g.attachments)) for g in self.internet_gateways]
        rows += [("nat-gateway", n.id, f"{n.state} {', '.join(n.public_ips)}".strip()) for n in self.nat_gateways]
        rows += [("security-group", g.id, g.name) for g in self.security_groups.values()]
        for i in (self.web, self.db):
            rows.append((f"instance ({i.role})", i.id,
                         f"{i.state} private {i.private_ip} public {i.public_ip or '-'} {i.public_dns}".strip()))
        rows += [("elastic-ip", a.allocation_id, f"{a.public_ip} -> {a.instance_id or a.eni_id or 'unassociated'}")
                 for a in self.addresses]
        return rows


# ---------------------------------------------------------------------------------------------
# Reading

def find_env_instances(ec2, env: str) -> tuple[dict, dict]:
    """The web and db instances of an environment built by provision.py (tags Env and Role)."""
    found = {}
    for role in ("web", "db"):
        # Project too: Env and Role are common tag keys, and another team's "Env=dev Role=web"
        # must not be taken for ours.
        found[role] = _one_instance(ec2, [{"Name": "tag:Env", "Values": [env]},
                                          {"Name": "tag:Role", "Values": [role]},
                                          {"Name": "tag:Project", "Values": [PROJECT_TAG]}],
                                    f"tag Env={env} Role={role} Project={PROJECT_TAG}", env_hint=True)
    return found["web"], found["db"]


def find_selected_instances(ec2, vpc_id: str, web: str, db: str) -> tuple[dict, dict]:
    """The web and db instances of any environment, by VPC plus one selector per role."""
    try:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"]
    except ec2.exceptions.ClientError as exc:
        raise EnvError(f"cannot read VPC {vpc_id}: {exc.response['Error']['Message']}") from None
    if not vpcs:
        raise EnvError(f"VPC {vpc_id} does not exist in this account and region")
    return (_one_instance(ec2, [{"Name": "vpc-id", "Values": [vpc_id]}, *_selector(web)], f"--web {web}"),
            _one_instance(ec2, [{"Name": "vpc-id", "Values": [vpc_id]}, *_selector(db)], f"--db {db}"))


def check_selector(text: str, option: str = "selector") -> str:
    """An instance ID (i-...) or tag:KEY=VALUE; anything else is a usage error, said in one line."""
    if re.fullmatch(r"i-[0-9a-f]{8,17}", text) or re.fullmatch(r"tag:[^=\s]+=.+", text, flags=re.S):
        return text
    raise EnvError(f"bad {option} {text!r}: an instance ID (i-...) or tag:KEY=VALUE")


def _selector(text: str) -> list[dict]:
    check_selector(text)
    if text.startswith("i-"):
        return [{"Name": "instance-id", "Values": [text]}]
    key, value = text[4:].split("=", 1)
    return [{"Name": f"tag:{key}", "Values": [value]}]


def _one_instance(ec2, filters, what: str, env_hint: bool = False) -> dict:
    filters = filters + [{"Name": "instance-state-name",
                          "Values": ["pending", "running", "stopping", "stopped"]}]
    found = [i for r in _paged(ec2, "describe_instances", "Reservations", Filters=filters) for i in r["Instances"]]
    if not found:
        hint = f" (provision it with `{provision_command('up')}`, or check --target/--region)" if env_hint else ""
        raise EnvError(f"no instance matches {what}{hint}")
    if len(found) > 1:
        raise EnvError(f"{len(found)} instances match {what} ({', '.join(i['InstanceId'] for i in found)}); "
                       "the selector must match exactly one")
    return found[0]


def _paged(client, op: str, key: str, **kwargs) -> list:
    out = []
    for page in client.get_paginator(op).paginate(**kwargs):
        out.extend(page[key])
    return out


def read_snapshot(ec2, region: str, web_raw: dict, db_raw: dict, env: str | None = None,
                  stated_cidrs: tuple[str | None, str | None] = (None, None)) -> Snapshot:
    vpc_id = web_raw.get("VpcId") or db_raw.get("VpcId")
    if not vpc_id:
        raise EnvError(f"instance {web_raw['InstanceId']} is in no VPC")
    vpc_raw = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    attr = lambda name, key: ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=name)[key]["Value"]  # noqa: E731
    vpc = Vpc(vpc_id, vpc_raw["CidrBlock"], attr("enableDnsSupport", "EnableDnsSupport"),
              attr("enableDnsHostnames", "EnableDnsHostnames"), vpc_raw.get("IsDefault", False),
              _tag(vpc_raw, "Name") or "", vpc_raw.get("OwnerId", ""))
    in_vpc = [{"Name": "vpc-id", "Values": [vpc_id]}]

    # NAT gateways first: a route to one that is gone is a blackhole, whatever the API's state field
    # says (EC2 says "blackhole"; moto keeps "active").
    nats_raw = _paged(ec2, "describe_nat_gateways", "NatGateways", Filter=in_vpc)
    nats = tuple(
        NatGateway(n["NatGatewayId"], n["SubnetId"], n["State"], n.get("ConnectivityType", "public"),
                   tuple(a["PublicIp"] for a in n.get("NatGatewayAddresses", []) if a.get("PublicIp")),
                   tuple(a["AllocationId"] for a in n.get("NatGatewayAddresses", []) if a.get("AllocationId")),
                   next((a.get("PrivateIp") for a in n.get("NatGatewayAddresses", [])), None),
                   _time(n.get("CreateTime")), _time(n.get("DeleteTime")), _tag(n, "Role") if env else None)
        for n in nats_raw)
    live_nats = {n.id for n in nats if n.live}

    tables_raw = _paged(ec2, "describe_route_tables", "RouteTables", Filters=in_vpc)
    main_id = next((t["RouteTableId"] for t in tables_raw
                    if any(a.get("Main") for a in t.get("Associations", []))), None)
    explicit = {a["SubnetId"]: t["RouteTableId"] for t in tables_raw for a in t.get("Associations", [])
                if a.get("SubnetId")}
    route_tables = {}
    for t in tables_raw:
        routes = tuple(_route(r, live_nats) for r in t.get("Routes", []) if "DestinationIpv6CidrBlock" not in r)
        route_tables[t["RouteTableId"]] = RouteTable(
            t["RouteTableId"], t["RouteTableId"] == main_id, routes,
            tuple(a["SubnetId"] for a in t.get("Associations", []) if a.get("SubnetId")))

    subnets = {}
    for s in _paged(ec2, "describe_subnets", "Subnets", Filters=in_vpc):
        sid = s["SubnetId"]
        subnets[sid] = Subnet(sid, s["CidrBlock"], s.get("AvailabilityZone", ""), s.get("MapPublicIpOnLaunch", False),
                              explicit.get(sid, main_id), sid in explicit)

    # Attached to the VPC, plus (for our own environments) any tagged with the env that was detached:
    # a detached gateway must show up as such, not vanish.
    igw_filters = [[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]]
    if env:
        igw_filters.append([{"Name": "tag:Env", "Values": [env]}])
    igws = {}
    for f in igw_filters:
        for g in _paged(ec2, "describe_internet_gateways", "InternetGateways", Filters=f):
            igws[g["InternetGatewayId"]] = InternetGateway(
                g["InternetGatewayId"], tuple((a["VpcId"], a["State"]) for a in g.get("Attachments", [])))

    groups_raw = _paged(ec2, "describe_security_groups", "SecurityGroups", Filters=in_vpc)
    prefix_lists = _prefix_lists(ec2, prefix_list_ids(groups_raw))
    groups = {g["GroupId"]: SecurityGroup(g["GroupId"], for_terminal(g["GroupName"]), g.get("VpcId", ""),
                                          flatten(g.get("IpPermissions", []), prefix_lists),
                                          flatten(g.get("IpPermissionsEgress", []), prefix_lists))
              for g in groups_raw}

    enis = _paged(ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=in_vpc)
    # A NAT gateway's ENI is AWS-managed and carries no security group on AWS (moto gives it the
    # default group): it is not a member of any group for our purposes.
    nat_enis = {a.get("NetworkInterfaceId") for n in nats_raw for a in n.get("NatGatewayAddresses", [])}
    eni_groups = {}
    for e in enis:
        if e["NetworkInterfaceId"] in nat_enis or e.get("InterfaceType") == "nat_gateway":
            continue
        gids = tuple(g["GroupId"] for g in e.get("Groups", []))
        for p in e.get("PrivateIpAddresses", []):
            eni_groups[p["PrivateIpAddress"]] = gids

    raw_addresses = {a["AllocationId"]: a for a in ec2.describe_addresses(
        Filters=[{"Name": "domain", "Values": ["vpc"]}])["Addresses"] if _address_in_scope(a, env, enis)}
    # The Elastic IPs of NAT gateways that are gone: still allocated means still billed (5.1).
    gone_allocations = sorted({a for n in nats if not n.live for a in n.allocation_ids} - set(raw_addresses))
    if gone_allocations:
        for a in ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": gone_allocations}])["Addresses"]:
            raw_addresses[a["AllocationId"]] = a
    addresses = tuple(ElasticIp(a["AllocationId"], a["PublicIp"], a.get("AssociationId"), a.get("InstanceId") or None,
                                a.get("NetworkInterfaceId"), a.get("PrivateIpAddress"),
                                _tag(a, "Role") if env else None)
                      for a in raw_addresses.values())
    keys = tuple(for_terminal(k["KeyName"]) for k in ec2.describe_key_pairs()["KeyPairs"])

    return Snapshot(region, vpc, _instance(web_raw, "web"), _instance(db_raw, "db"), subnets, route_tables,
                    tuple(igws.values()), nats, groups, addresses, eni_groups, keys, stated_cidrs)


def _route(r: dict, live_nats: set[str]) -> Route:
    target = (r.get("GatewayId") or r.get("NatGatewayId") or r.get("NetworkInterfaceId")
              or r.get("VpcPeeringConnectionId") or r.get("TransitGatewayId") or "?")
    state = r.get("State", "active")
    if r.get("NatGatewayId") and r["NatGatewayId"] not in live_nats:
        state = "blackhole"
    return Route(r.get("DestinationCidrBlock"), target, state)


def _prefix_lists(ec2, ids: set[str]) -> dict[str, tuple[str, ...] | None]:
    """Each prefix list's CIDRs; None where they can't be read (a rule that can't be read by meaning
    is reported as such, never taken for harmless)."""
    out: dict[str, tuple[str, ...] | None] = {}
    for pl in sorted(ids):
        try:
            out[pl] = tuple(e["Cidr"] for e in _paged(ec2, "get_managed_prefix_list_entries", "Entries",
                                                      PrefixListId=pl))
        except ClientError:
            out[pl] = None
    return out


def _tag(raw: dict, key: str) -> str | None:
    value = next((t["Value"] for t in raw.get("Tags", []) or [] if t.get("Key") == key), None)
    return None if value is None else for_terminal(value)


def _time(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return None


def _address_in_scope(a: dict, env: str | None, enis: list[dict]) -> bool:
    eni_ids = {e["NetworkInterfaceId"] for e in enis}
    tags = {t["Key"]: t["Value"] for t in a.get("Tags", [])}
    return a.get("NetworkInterfaceId") in eni_ids or (env is not None and tags.get("Env") == env)


def _instance(raw: dict, role: str) -> Instance:
    enis = raw.get("NetworkInterfaces", [])
    group_ids = tuple(dict.fromkeys([g["GroupId"] for g in raw.get("SecurityGroups", [])]
                                    + [g["GroupId"] for e in enis for g in e.get("Groups", [])]))
    return Instance(
        id=raw["InstanceId"], role=role, state=raw["State"]["Name"], instance_type=raw.get("InstanceType", ""),
        image_id=raw.get("ImageId", ""), subnet_id=raw.get("SubnetId"), private_ip=raw.get("PrivateIpAddress"),
        public_ip=raw.get("PublicIpAddress"), public_dns=raw.get("PublicDnsName", "") or "",
        key_name=for_terminal(raw["KeyName"]) if raw.get("KeyName") else None, group_ids=group_ids,
        http_tokens=raw.get("MetadataOptions", {}).get("HttpTokens", "optional"),
        eni_ids=tuple(e["NetworkInterfaceId"] for e in enis),
        private_ips=tuple(dict.fromkeys([p["PrivateIpAddress"] for e in enis for p in e.get("PrivateIpAddresses", [])
                                         if p.get("PrivateIpAddress")] + ([raw["PrivateIpAddress"]]
                                                                          if raw.get("PrivateIpAddress") else []))),
        launch_time=_time(raw.get("LaunchTime")))
