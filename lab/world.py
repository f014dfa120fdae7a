"""What the API holds, read once per converge pass into plain dataclasses (boto3 describe_* only).

Everything the data plane does is derived from this snapshot, so the AWS API stays the only
source of truth: a stop, a revoked rule or a deleted route reaches the machine through here.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Route:
    dest: str          # IPv4 CIDR
    kind: str          # "igw" | "nat" | "eni" | "instance"
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

    def realised_vpcs(self) -> list[str]:
        """VPCs that need a fabric: ones holding an instance or a NAT gateway (moto's default VPC doesn't)."""
        used = {i.vpc_id for i in self.instances.values() if i.exists}
        used |= {n.vpc_id for n in self.nat_gateways.values()}
        return sorted(v for v in used if v in self.vpcs)

    def default_route(self, subnet_id: str) -> Route | None:
        rtb = self.subnets[subnet_id].route_table
        return next((r for r in self.route_tables.get(rtb, []) if r.dest == "0.0.0.0/0"), None)

    def igw_routed(self, subnet_id: str) -> bool:
        """True when the subnet's effective route table sends 0.0.0.0/0 to the VPC's attached IGW."""
        sub = self.subnets.get(subnet_id)
        route = self.default_route(subnet_id) if sub else None
        return bool(route and route.kind == "igw" and self.igw_of_vpc.get(sub.vpc_id) == route.target)

    def members(self, group_id: str) -> list[str]:
        """Private IPs of everything carrying the group (a source-group rule means these)."""
        return sorted(i.private_ip for i in self.instances.values() if i.exists and group_id in i.groups)


def _rule(perm: dict) -> Rule:
    return Rule(
        protocol=str(perm.get("IpProtocol", "-1")),
        from_port=perm.get("FromPort"),
        to_port=perm.get("ToPort"),
        cidrs=tuple(r["CidrIp"] for r in perm.get("IpRanges", []) if r.get("CidrIp")),
        groups=tuple(g["GroupId"] for g in perm.get("UserIdGroupPairs", []) if g.get("GroupId")),
    )


def _route(r: dict) -> Route | None:
    dest = r.get("DestinationCidrBlock")
    if not dest or r.get("GatewayId") == "local" or r.get("State", "active") != "active":
        return None
    for key, kind in (("GatewayId", "igw"), ("NatGatewayId", "nat"), ("NetworkInterfaceId", "eni"),
                      ("InstanceId", "instance")):
        if r.get(key):
            return Route(dest, kind, r[key])
    return None


def read(ec2) -> World:
    """One snapshot of the region; about ten describe calls."""
    w = World()
    for v in ec2.describe_vpcs()["Vpcs"]:
        cidrs = [a["CidrBlock"] for a in v.get("CidrBlockAssociationSet", [])
                 if a.get("CidrBlockState", {}).get("State", "associated") == "associated"] or [v["CidrBlock"]]
        w.vpcs[v["VpcId"]] = Vpc(v["VpcId"], cidrs)
    main_rtb = {}
    explicit = {}
    for rt in ec2.describe_route_tables()["RouteTables"]:
        w.route_tables[rt["RouteTableId"]] = [x for x in map(_route, rt.get("Routes", [])) if x]
        for a in rt.get("Associations", []):
            if a.get("Main"):
                main_rtb[rt["VpcId"]] = rt["RouteTableId"]
            elif a.get("SubnetId"):
                explicit[a["SubnetId"]] = rt["RouteTableId"]
    for s in ec2.describe_subnets()["Subnets"]:
        # A subnet without an explicit association follows its VPC's main route table.
        rtb = explicit.get(s["SubnetId"], main_rtb.get(s["VpcId"]))
        w.subnets[s["SubnetId"]] = Subnet(s["SubnetId"], s["VpcId"], s["CidrBlock"], rtb)
    for igw in ec2.describe_internet_gateways()["InternetGateways"]:
        for att in igw.get("Attachments", []):
            if att.get("State") in ("available", "attached"):
                w.igw_of_vpc[att["VpcId"]] = igw["InternetGatewayId"]
    for n in ec2.describe_nat_gateways()["NatGateways"]:
        if n.get("State") not in ("available", "pending"):
            continue
        addrs = n.get("NatGatewayAddresses") or [{}]
        if not addrs[0].get("PrivateIp"):
            continue
        w.nat_gateways[n["NatGatewayId"]] = NatGateway(n["NatGatewayId"], n["VpcId"], n["SubnetId"],
                                                       addrs[0]["PrivateIp"], addrs[0].get("PublicIp"))
    for g in ec2.describe_security_groups()["SecurityGroups"]:
        w.groups[g["GroupId"]] = SecurityGroup(g["GroupId"], g.get("VpcId", ""),
                                               [_rule(p) for p in g.get("IpPermissions", [])],
                                               [_rule(p) for p in g.get("IpPermissionsEgress", [])])
    for res in ec2.describe_instances()["Reservations"]:
        for i in res["Instances"]:
            enis = sorted(i.get("NetworkInterfaces", []), key=lambda e: e.get("Attachment", {}).get("DeviceIndex", 0))
            if not enis or not i.get("SubnetId"):
                continue
            eni = enis[0]
            public = eni.get("Association", {}).get("PublicIp") or i.get("PublicIpAddress")
            w.instances[i["InstanceId"]] = Instance(
                id=i["InstanceId"], state=i["State"]["Name"], vpc_id=i["VpcId"], subnet_id=i["SubnetId"],
                eni_id=eni["NetworkInterfaceId"], private_ip=eni.get("PrivateIpAddress") or i["PrivateIpAddress"],
                public_ip=public or None, public_dns=i.get("PublicDnsName") or None,
                groups=tuple(g["GroupId"] for g in eni.get("Groups", i.get("SecurityGroups", []))),
                key_name=i.get("KeyName"))
    for vpc_id in w.realised_vpcs():
        attr = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")
        w.vpcs[vpc_id].dns_hostnames = bool(attr.get("EnableDnsHostnames", {}).get("Value"))
    return w
