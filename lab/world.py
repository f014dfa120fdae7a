"""What the API holds, read once per converge pass into plain dataclasses (boto3 describe_* only).

Everything the data plane does is derived from this snapshot, so the AWS API stays the only
source of truth: a stop, a revoked rule or a deleted route reaches the machine through here.

It is also the one gate between the API and the machine: every id, address, CIDR, protocol and
port is checked here (ids by their AWS shape, addresses by `ipaddress`, protocols against a
whitelist) before it can reach an `ip` argument or an nft script. An object that fails is left out
of the snapshot and named in `World.rejected` (the daemon logs it); the rest of the pass goes on.
Leaving out a security-group rule only ever admits less.

The lab realises what its owner built, never the region's default VPC: the account comes with it
(AWS makes one per region, and so does moto), nothing the project builds goes there, and it is where
the realism layer's "other team" keeps a stopped instance tagged with our Env and Role but without
our Project tag (emulator/realism/, rule others-instances). Instances and NAT gateways in a default
VPC are left out of the snapshot (`World.default_vpcs` names the VPCs): no fabric, no namespace, no
container. An environment built by hand in a VPC of its own is realised whatever its tags, as before.

awsenv/discovery/snapshot.py reads the same API for the checks, and also resolves route tables and
rules. The two stay apart on purpose: that is the verifier, this is the thing verified. One shared
reader would carry a misreading into both, and the checks would agree with the emulator's mistake
instead of catching it. Don't merge them.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from .names import is_aws_id

# Security-group protocols the lab enforces: names, their numbers, and any other IP protocol number.
PROTOCOL_NAMES = {"tcp": "tcp", "6": "tcp", "udp": "udp", "17": "udp", "icmp": "icmp", "1": "icmp",
                  "icmpv6": "icmpv6", "58": "icmpv6", "-1": "-1", "all": "-1"}
HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
INSTANCE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")


class Invalid(ValueError):
    """A value from the API the lab will not act on."""


def _id(value, kind: str) -> str:
    if not is_aws_id(value, kind):
        raise Invalid(f"not a {kind} id: {str(value)[:40]!r}")
    return value


def _ipv4(value) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except (ValueError, TypeError):
        raise Invalid(f"not an IPv4 address: {str(value)[:40]!r}") from None


def _cidr(value) -> str:
    try:
        return str(ipaddress.IPv4Network(value, strict=False))
    except (ValueError, TypeError):
        raise Invalid(f"not an IPv4 CIDR: {str(value)[:40]!r}") from None


def _port(value, lo: int, hi: int, what: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not lo <= value <= hi:
        raise Invalid(f"{what} {str(value)[:20]!r} is not an integer in {lo}..{hi}")
    return value


def protocol(value) -> str:
    """The canonical protocol of a rule: tcp, udp, icmp, icmpv6, -1 (all) or a number 0-255."""
    text = str(value).lower() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if text in PROTOCOL_NAMES:
        return PROTOCOL_NAMES[text]
    if re.fullmatch(r"[0-9]{1,3}", text) and int(text) <= 255:
        return str(int(text))
    raise Invalid(f"security group protocol {str(value)[:40]!r} is not one of tcp, udp, icmp, icmpv6, -1 "
                  f"or a number 0-255")


def valid_rule(rule: Rule) -> Rule:
    """The rule with a whitelisted protocol and ports that are integers in range; else Invalid."""
    proto = protocol(rule.protocol)
    lo, hi = rule.from_port, rule.to_port
    if proto in ("tcp", "udp"):
        lo, hi = _port(lo, -1, 65535, "FromPort"), _port(hi, -1, 65535, "ToPort")
        if lo not in (None, -1) and hi not in (None, -1) and hi < lo:
            raise Invalid(f"port range {lo}-{hi} is empty")
    elif proto in ("icmp", "icmpv6"):
        lo, hi = _port(lo, -1, 255, "ICMP type"), _port(hi, -1, 255, "ICMP code")
    else:   # AWS ignores ports for other protocols
        lo = hi = None
    cidrs = tuple(_cidr(c) for c in rule.cidrs)
    groups = tuple(str(g) for g in rule.groups)   # only looked up (World.members), never written
    return Rule(proto, lo, hi, cidrs, groups)


@dataclass(frozen=True)
class Route:
    dest: str          # IPv4 CIDR
    kind: str          # "igw" | "nat" | "eni" | "instance" | "blackhole"
    target: str        # the target's id


@dataclass(frozen=True)
class Rule:
    protocol: str      # "-1", "tcp", "udp", "icmp" or a number
    from_port: int | None
    to_port: int | None
    cidrs: tuple[str, ...]
    groups: tuple[str, ...]


@dataclass
class SecurityGroup:
    id: str
    vpc_id: str
    ingress: list[Rule]
    egress: list[Rule]


@dataclass
class Subnet:
    id: str
    vpc_id: str
    cidr: str
    route_table: str | None

    @property
    def network(self):
        return ipaddress.ip_network(self.cidr)

    @property
    def gateway(self) -> str:
        return str(self.network.network_address + 1)


@dataclass
class Vpc:
    id: str
    cidrs: list[str]
    dns_hostnames: bool = False


@dataclass
class Instance:
    id: str
    state: str
    vpc_id: str
    subnet_id: str
    eni_id: str
    private_ip: str
    public_ip: str | None
    public_dns: str | None
    groups: tuple[str, ...]
    key_name: str | None
    private_dns: str | None = None     # ip-10-0-1-5.ec2.internal: the VPC resolver answers it

    @property
    def wants_running(self) -> bool:
        return self.state in ("pending", "running")

    @property
    def exists(self) -> bool:
        return self.state not in ("terminated", "shutting-down")


@dataclass
class NatGateway:
    id: str
    vpc_id: str
    subnet_id: str
    private_ip: str
    public_ip: str | None


@dataclass
class World:
    vpcs: dict[str, Vpc] = field(default_factory=dict)
    subnets: dict[str, Subnet] = field(default_factory=dict)
    route_tables: dict[str, list[Route]] = field(default_factory=dict)
    igw_of_vpc: dict[str, str] = field(default_factory=dict)      # vpc -> attached igw
    nat_gateways: dict[str, NatGateway] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    groups: dict[str, SecurityGroup] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)   # objects/rules left out, one line each
    default_vpcs: set[str] = field(default_factory=set)  # the account's own: never realised (see above)
    listed_instances: set[str] = field(default_factory=set)  # every instance ID the API listed, realised or not

    def realised_vpcs(self) -> list[str]:
        """VPCs that need a fabric: ones holding an instance or a NAT gateway (moto's default VPC doesn't)."""
        used = {i.vpc_id for i in self.instances.values() if i.exists}
        used |= {n.vpc_id for n in self.nat_gateways.values()}
        return sorted(v for v in used if v in self.vpcs)

    def default_route(self, subnet_id: str) -> Route | None:
        rtb = self.subnets[subnet_id].route_table
        return next((r for r in self.route_tables.get(rtb or "", []) if r.dest == "0.0.0.0/0"), None)

    def igw_routed(self, subnet_id: str) -> bool:
        """True when the subnet's effective route table sends 0.0.0.0/0 to the VPC's attached IGW."""
        sub = self.subnets.get(subnet_id)
        route = self.default_route(subnet_id) if sub else None
        return bool(sub and route and route.kind == "igw" and self.igw_of_vpc.get(sub.vpc_id) == route.target)

    def members(self, group_id: str) -> list[str]:
        """Private IPs of everything carrying the group (a source-group rule means these)."""
        return sorted(i.private_ip for i in self.instances.values() if i.exists and group_id in i.groups)


def _rule(perm: dict) -> Rule:
    return valid_rule(Rule(
        protocol=perm.get("IpProtocol", "-1"),
        from_port=perm.get("FromPort"),
        to_port=perm.get("ToPort"),
        cidrs=tuple(r["CidrIp"] for r in perm.get("IpRanges", []) if r.get("CidrIp")),
        groups=tuple(g["GroupId"] for g in perm.get("UserIdGroupPairs", []) if g.get("GroupId")),
    ))


def _route(r: dict) -> Route | None:
    dest = r.get("DestinationCidrBlock")
    state = r.get("State", "active")
    if not dest or r.get("GatewayId") == "local" or state not in ("active", "blackhole"):
        return None
    if state == "blackhole":    # the API says its target is gone: the packets go nowhere (fabric.py)
        return Route(_cidr(dest), "blackhole", "")
    # The target is only ever compared with ids read (and checked) elsewhere; the destination
    # becomes an `ip route` argument, so it must be a CIDR.
    for key, kind in (("GatewayId", "igw"), ("NatGatewayId", "nat"), ("NetworkInterfaceId", "eni"),
                      ("InstanceId", "instance")):
        if r.get(key):
            return Route(_cidr(dest), kind, str(r[key]))
    return None


def _hostname(value) -> str | None:
    if not value:
        return None
    name = str(value).lower()
    if not HOSTNAME.fullmatch(name):
        raise Invalid(f"not a DNS name: {name[:60]!r}")
    return name


class _Reader:
    """Collects what is rejected while the snapshot is read, so one bad object costs only itself."""

    def __init__(self, world: World):
        self.world = world

    def each(self, items, what, fn):
        for item in items:
            try:
                fn(item)
            except (Invalid, KeyError, TypeError, AttributeError, ValueError) as exc:
                ident = next((item.get(k) for k in ("VpcId", "SubnetId", "RouteTableId", "InternetGatewayId",
                                                     "NatGatewayId", "GroupId", "InstanceId")
                              if isinstance(item, dict) and item.get(k)), "?")
                reason = str(exc) if isinstance(exc, Invalid) else f"malformed ({type(exc).__name__}: {exc})"
                self.world.rejected.append(f"{what} {str(ident)[:40]}: {reason}"[:300].replace("\n", " "))


def read(ec2) -> World:
    """One snapshot of the region; about ten describe calls. Invalid objects go to `rejected`."""
    w = World()
    rd = _Reader(w)

    def vpc(v):
        cidrs = [a["CidrBlock"] for a in v.get("CidrBlockAssociationSet", [])
                 if a.get("CidrBlockState", {}).get("State", "associated") == "associated"] or [v["CidrBlock"]]
        w.vpcs[_id(v["VpcId"], "vpc")] = Vpc(v["VpcId"], [_cidr(c) for c in cidrs])
        if v.get("IsDefault"):
            w.default_vpcs.add(v["VpcId"])

    rd.each(ec2.describe_vpcs()["Vpcs"], "VPC", vpc)
    main_rtb = {}
    explicit = {}

    def route_table(rt):
        rtb = _id(rt["RouteTableId"], "rtb")
        routes = []
        for raw in rt.get("Routes", []):
            try:
                routes.append(_route(raw))
            except Invalid as exc:   # one bad route: the rest of the table still applies
                w.rejected.append(f"route table {rtb}: route {str(raw.get('DestinationCidrBlock'))[:40]!r}: {exc}")
        w.route_tables[rtb] = [x for x in routes if x]
        for a in rt.get("Associations", []):
            if a.get("Main"):
                main_rtb[rt["VpcId"]] = rtb
            elif a.get("SubnetId"):
                explicit[a["SubnetId"]] = rtb

    rd.each(ec2.describe_route_tables()["RouteTables"], "route table", route_table)

    def subnet(s):
        # A subnet without an explicit association follows its VPC's main route table.
        rtb = explicit.get(s["SubnetId"], main_rtb.get(s["VpcId"]))
        w.subnets[_id(s["SubnetId"], "subnet")] = Subnet(s["SubnetId"], _id(s["VpcId"], "vpc"), _cidr(s["CidrBlock"]),
                                                         rtb)

    rd.each(ec2.describe_subnets()["Subnets"], "subnet", subnet)

    def igw(g):
        for att in g.get("Attachments", []):
            if att.get("State") in ("available", "attached"):
                w.igw_of_vpc[_id(att["VpcId"], "vpc")] = _id(g["InternetGatewayId"], "igw")

    rd.each(ec2.describe_internet_gateways()["InternetGateways"], "internet gateway", igw)

    def nat(n):
        if n.get("State") not in ("available", "pending") or n.get("VpcId") in w.default_vpcs:
            return
        addrs = n.get("NatGatewayAddresses") or [{}]
        if not addrs[0].get("PrivateIp"):
            return
        public = addrs[0].get("PublicIp")
        w.nat_gateways[_id(n["NatGatewayId"], "nat")] = NatGateway(
            n["NatGatewayId"], _id(n["VpcId"], "vpc"), _id(n["SubnetId"], "subnet"), _ipv4(addrs[0]["PrivateIp"]),
            _ipv4(public) if public else None)

    rd.each(ec2.describe_nat_gateways()["NatGateways"], "NAT gateway", nat)

    def group(g):
        gid = _id(g["GroupId"], "sg")
        rules: dict[str, list[Rule]] = {}
        for direction, key in (("ingress", "IpPermissions"), ("egress", "IpPermissionsEgress")):
            rules[direction] = []
            for perm in g.get(key, []):
                try:
                    rules[direction].append(_rule(perm))
                except (Invalid, KeyError, TypeError, AttributeError) as exc:   # left out: admits less
                    w.rejected.append(f"security group {gid}: {direction} rule skipped: {exc}"[:300].replace("\n", " "))
        w.groups[gid] = SecurityGroup(gid, g.get("VpcId", ""), rules["ingress"], rules["egress"])

    rd.each(ec2.describe_security_groups()["SecurityGroups"], "security group", group)

    def instance(i):
        enis = sorted(i.get("NetworkInterfaces", []), key=lambda e: e.get("Attachment", {}).get("DeviceIndex", 0))
        if not enis or not i.get("SubnetId") or i.get("VpcId") in w.default_vpcs:
            return
        eni = enis[0]
        state = i["State"]["Name"]
        if state not in INSTANCE_STATES:
            raise Invalid(f"unknown state {str(state)[:20]!r}")
        public = eni.get("Association", {}).get("PublicIp") or i.get("PublicIpAddress")
        w.instances[_id(i["InstanceId"], "i")] = Instance(
            id=i["InstanceId"], state=state, vpc_id=_id(i["VpcId"], "vpc"), subnet_id=_id(i["SubnetId"], "subnet"),
            eni_id=_id(eni["NetworkInterfaceId"], "eni"),
            private_ip=_ipv4(eni.get("PrivateIpAddress") or i["PrivateIpAddress"]),
            public_ip=_ipv4(public) if public else None, public_dns=_hostname(i.get("PublicDnsName")),
            private_dns=_hostname(i.get("PrivateDnsName")),
            groups=tuple(_id(g["GroupId"], "sg") for g in eni.get("Groups", i.get("SecurityGroups", []))),
            key_name=i.get("KeyName"))

    listed = [i for res in ec2.describe_instances()["Reservations"] for i in res["Instances"]]
    w.listed_instances = {i["InstanceId"] for i in listed if is_aws_id(i.get("InstanceId"), "i")}
    rd.each(listed, "instance", instance)
    for vpc_id in w.realised_vpcs():
        attr = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
        w.vpcs[vpc_id].dns_hostnames = bool(attr.get("EnableDnsHostnames", {}).get("Value"))
    return w
