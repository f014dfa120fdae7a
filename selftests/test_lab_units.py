"""The lab's pure parts, without root: moto's address patches, security group rules, route tables."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from emulator import server as api_server
from lab import gateways, names, security_groups
from lab.world import Instance, Route, Rule, SecurityGroup, Subnet, Vpc, World, read


@pytest.fixture
def ec2():
    api_server.patch()
    try:
        with mock_aws():
            yield boto3.client("ec2", region_name="us-east-1")
    finally:
        api_server.unpatch()


def test_public_addresses_are_unique_and_from_the_lab_block(ec2):
    ips = [ec2.allocate_address(Domain="vpc")["PublicIp"] for _ in range(20)]
    assert len(set(ips)) == 20
    for ip in ips:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network("198.51.100.0/24")
        assert int(ip.rsplit(".", 1)[1]) >= 16, f"{ip} is one of the lab's own internet hosts"


def test_auto_public_ip_and_nat_gateway_private_ip(ec2):
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, NetworkInterfaces=[
        {"DeviceIndex": 0, "SubnetId": sub, "AssociatePublicIpAddress": True}])["Instances"][0]
    public = ec2.describe_instances(InstanceIds=[inst["InstanceId"]])["Reservations"][0]["Instances"][0]
    assert public["PublicIpAddress"].startswith("198.51.100.")
    alloc = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=sub, AllocationId=alloc)["NatGateway"]
    private = nat["NatGatewayAddresses"][0]["PrivateIp"]
    assert ipaddress.ip_address(private) in ipaddress.ip_network("10.0.1.0/24")
    assert int(private.rsplit(".", 1)[1]) >= 4, "AWS reserves .0-.3"
    assert private != inst["PrivateIpAddress"]


def test_unpatch_restores_moto():
    api_server.patch()
    api_server.unpatch()
    from moto.ec2.models import elastic_ip_addresses

    assert elastic_ip_addresses.random_ip is not api_server.lab_public_ip


def _world() -> World:
    w = World()
    w.vpcs["vpc-1"] = Vpc("vpc-1", ["10.0.0.0/16"])
    w.subnets["subnet-pub"] = Subnet("subnet-pub", "vpc-1", "10.0.1.0/24", "rtb-pub")
    w.subnets["subnet-priv"] = Subnet("subnet-priv", "vpc-1", "10.0.2.0/24", "rtb-main")
    w.route_tables = {"rtb-pub": [Route("0.0.0.0/0", "igw", "igw-1")], "rtb-main": []}
    w.igw_of_vpc["vpc-1"] = "igw-1"
    w.groups["sg-web"] = SecurityGroup("sg-web", "vpc-1", [Rule("tcp", 22, 22, ("198.51.100.0/28",), ())],
                                       [Rule("-1", None, None, ("0.0.0.0/0",), ())])
    w.groups["sg-db"] = SecurityGroup("sg-db", "vpc-1", [Rule("tcp", 3306, 3306, (), ("sg-web",)),
                                                         Rule("icmp", -1, -1, (), ("sg-web",))], [])
    w.instances["i-web"] = Instance("i-web", "running", "vpc-1", "subnet-pub", "eni-0a1", "10.0.1.4",
                                    "198.51.100.16", None, ("sg-web",), "k")
    w.instances["i-db"] = Instance("i-db", "running", "vpc-1", "subnet-priv", "eni-0b2", "10.0.2.4",
                                   None, None, ("sg-db",), "k")
    return w


def test_source_group_rules_expand_to_member_addresses():
    w = _world()
    script = security_groups.ruleset(w, list(w.instances.values()))
    assert "ip saddr { 10.0.1.4 } meta l4proto tcp th dport 3306 accept" in script
    assert "ip saddr { 10.0.1.4 } meta l4proto icmp accept" in script
    assert "ip saddr { 198.51.100.0/28 } meta l4proto tcp th dport 22 accept" in script


def test_no_egress_rule_means_everything_out_is_dropped():
    w = _world()
    script = security_groups.ruleset(w, list(w.instances.values()))
    db_egress = script.split("chain eg_0b2 {")[1].split("}")[0]
    assert db_egress.split() == ["drop"]


def test_a_group_with_no_members_matches_nothing():
    w = _world()
    w.instances["i-web"].groups = ()
    script = security_groups.ruleset(w, list(w.instances.values()))
    assert "3306" not in script


def test_only_igw_routed_subnets_are_translated():
    w = _world()
    assert w.igw_routed("subnet-pub") and not w.igw_routed("subnet-priv")
    w.instances["i-db"].public_ip = "198.51.100.17"
    assert gateways.translations(w, "vpc-1") == {"198.51.100.16": "10.0.1.4"}
    w.route_tables["rtb-pub"] = []  # the public route table lost its default route
    assert gateways.translations(w, "vpc-1") == {}


def test_subnet_without_association_follows_the_main_route_table():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
        main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["RouteTables"][0]
        ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
        w = read(ec2)
        assert w.subnets[sub].route_table == main["RouteTableId"]
        assert w.igw_routed(sub)


def test_interface_names_fit_linux():
    for kind in "egxnp":
        assert len(names.link(kind, "eni-0123456789abcdef0")) <= 15
    assert names.tag("a") != names.tag("b")


def test_the_api_may_show_a_state_only_once_the_machine_is_so():
    """lab/power.py: what the converge loop notes of each instance is what the lab's API may show."""
    from types import SimpleNamespace

    from lab.converge import Converger

    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        ours = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=sub)["Instances"][0]["InstanceId"]
        theirs = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]  # default VPC
        w = read(ec2)
        conv = Converger("labunits", Path("/nonexistent"), ec2=ec2, base=Path("/nonexistent"),
                         repo=Path("/nonexistent"))
    assert w.listed_instances == {ours, theirs} and set(w.instances) == {ours}
    never_read = "i-0123456789abcdef0"
    power = conv.power

    def shows(iid):
        return {s for s in ("running", "stopped", "terminated") if power.reached(iid, s, "us-east-1")}

    assert shows(never_read) == set(), "an instance no pass has read yet has got nowhere"
    assert {s for s in ("running", "stopped") if power.reached(never_read, s, "eu-west-1")} == {"running", "stopped"}, \
        "the lab realises only its own region"
    conv._note_power(w)
    assert shows(theirs) == {"running", "stopped", "terminated"}, "the lab leaves the default VPC alone"
    assert shows(ours) == {"stopped", "terminated"}, "no container, disk or namespace of it here"
    # (its process runs, it has become systemd-nspawn, its link is up) -> what the API may show
    for running, launched, link_up, states in ((True, True, True, {"running"}), (True, False, True, set()),
                                               (False, False, True, set()), (False, False, False, {"stopped"})):
        conv.hosts[ours] = SimpleNamespace(running=running, launched=launched, link_up=link_up)  # type: ignore[assignment]
        conv._note_power(w)
        assert shows(ours) == states, (running, launched, link_up)
