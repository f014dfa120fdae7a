"""The realism layer (emulator/realism/): plain boto3 against moto behind it meets EC2's answers.

For each rule: the AWS-like answer (EC2's error code and document, or the transitional state), the
count of injected answers going up, and the call succeeding once the (scaled-down) delay has passed.
Run: python3 -m pytest -c selftests/pytest.ini selftests/test_emulator_realism.py -q
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from emulator import realism
from selftests.moto_server import REGION, REPO, realism_rates, realism_timings

AMI = "ami-12c6146b"      # one of moto's stock images


@pytest.fixture(autouse=True)
def _layer_on(realistic_server):
    if not realistic_server.layer.enabled:
        pytest.skip("the realism layer is switched off (TWOTIER_EMULATOR_REALISM=off)")


# -- helpers ------------------------------------------------------------------------------------

def error_of(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def code(err: ClientError) -> str:
    return err.response["Error"]["Code"]


def until_ok(call, *args, timeout: float = 8.0, **kwargs):
    """Call until it succeeds (what well-behaved code does on EC2: retry with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call(*args, **kwargs)
        except ClientError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def until(predicate, timeout: float = 8.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def grew(before: dict, after: dict, rule: str) -> bool:
    return after[rule] > before[rule]


def raw_ec2(server, **params) -> tuple[int, bytes]:
    """One signed EC2 Query API call, answered as bytes (to see the document itself)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = urlencode({"Version": "2016-11-15", **params})
    request = AWSRequest(method="POST", url=server.url + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials("testing", "testing"), "ec2", REGION).add_auth(request)
    http = urllib.request.Request(server.url + "/", data=body.encode(), headers=dict(request.headers.items()),
                                  method="POST")
    try:
        with urllib.request.urlopen(http, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read()


@contextlib.contextmanager
def state_gate(server, reached, bound: float = 60.0):
    """The layer asks `reached` before it shows an instance's final state (as the lab's does); yields
    what the gate logged."""
    said: list[str] = []
    server.layer.hold_states_until(reached, bound=bound, log=said.append)
    try:
        yield said
    finally:
        server.layer.state_gate = None


def visible_vpc(ec2, cidr: str = "10.0.0.0/16") -> str:
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    until_ok(ec2.describe_vpcs, VpcIds=[vpc])
    return vpc


def visible_subnet(ec2, vpc: str, cidr: str, zone: str) -> str:
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
    until_ok(ec2.describe_subnets, SubnetIds=[subnet])
    return subnet


def instance_state(ec2, instance_id: str) -> str:
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def launch(ec2, subnet: str, **extra) -> str:
    params = dict(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=subnet)
    params.update(extra)
    instance = ec2.run_instances(**params)["Instances"][0]["InstanceId"]
    until_ok(ec2.describe_instances, InstanceIds=[instance])
    return instance


# -- a. eventual consistency -------------------------------------------------------------------------

def test_new_ids_are_not_found_until_they_propagate(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()

    with realistic_aws.paused():   # "immediately after", however loaded the machine
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        assert code(error_of(ec2.describe_vpcs, VpcIds=[vpc])) == "InvalidVpcID.NotFound"
    until_ok(ec2.describe_vpcs, VpcIds=[vpc])

    with realistic_aws.paused():
        igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        err = error_of(ec2.attach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
        assert code(err) == "InvalidInternetGatewayID.NotFound"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err.response["Error"]["Message"] == f"The internetGateway ID '{igw}' does not exist"

        sg = ec2.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
        rule = [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
        err = error_of(ec2.authorize_security_group_ingress, GroupId=sg, IpPermissions=rule)
        assert code(err) == "InvalidGroup.NotFound"

        rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
        assert code(error_of(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0",
                             GatewayId=igw)) == "InvalidRouteTableID.NotFound"

    # Once the IDs have propagated, the same calls succeed.
    until_ok(ec2.attach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
    until_ok(ec2.authorize_security_group_ingress, GroupId=sg, IpPermissions=rule)
    until_ok(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
    assert any(r.get("GatewayId") == igw for r in routes)

    # A route to a gateway that isn't visible yet: EC2's InvalidGatewayID.NotFound.
    rtb2 = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    until_ok(ec2.describe_route_tables, RouteTableIds=[rtb2])
    with realistic_aws.paused():
        igw2 = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
        assert code(error_of(ec2.create_route, RouteTableId=rtb2, DestinationCidrBlock="0.0.0.0/0",
                             GatewayId=igw2)) == "InvalidGatewayID.NotFound"

    after = realistic_aws.counts()
    assert grew(before, after, "eventual-consistency")
    assert realistic_aws.layer.counts.by_action()["eventual-consistency"].get("AttachInternetGateway")


def test_not_found_is_ec2s_error_document_and_lists_leave_the_id_out(realistic_aws):
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "probe"}]}]
    with realistic_aws.paused(), realism_rates(realistic_aws, listing_lag=1.0):
        instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                     SubnetId=subnet, TagSpecifications=tags)["Instances"][0]["InstanceId"]

        status, body = raw_ec2(realistic_aws, Action="DescribeInstances", **{"InstanceId.1": instance})
        assert status == 400
        root = ET.fromstring(body)
        assert root.tag == "Response"
        assert root.findtext("Errors/Error/Code") == "InvalidInstanceID.NotFound"
        assert root.findtext("Errors/Error/Message") == f"The instance ID '{instance}' does not exist"
        assert root.findtext("RequestID")

        by_tag = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["probe"]}])["Reservations"]
        assert by_tag == [], "a new instance is left out of Describe* lists until its ID propagates"
        # Terminating it too soon is "not found" as well: that doesn't mean it is gone.
        assert code(error_of(ec2.terminate_instances, InstanceIds=[instance])) == "InvalidInstanceID.NotFound"

    until_ok(ec2.describe_instances, InstanceIds=[instance])
    by_tag = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": ["probe"]}])["Reservations"]
    assert [i["InstanceId"] for r in by_tag for i in r["Instances"]] == [instance]


def test_a_nat_gateway_right_after_its_address_is_allocated_answers_invalid_elastic_ip_id(realistic_aws):
    """terraform-provider-aws #27087, amazon.aws #1872: CreateNatGateway right after AllocateAddress."""
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    before = realistic_aws.counts()
    with realistic_aws.paused():
        allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
        err = error_of(ec2.create_nat_gateway, SubnetId=subnet, AllocationId=allocation)
    assert code(err) == "InvalidElasticIpID.NotFound", err
    assert err.response["Error"]["Message"] == f"The elasticIp ID '{allocation}' does not exist"
    # Other calls naming the same allocation answer in its own terms.
    with realistic_aws.paused():
        allocation2 = ec2.allocate_address(Domain="vpc")["AllocationId"]
        assert code(error_of(ec2.describe_addresses, AllocationIds=[allocation2])) == "InvalidAllocationID.NotFound"
    nat = until_ok(ec2.create_nat_gateway, SubnetId=subnet, AllocationId=allocation)["NatGateway"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == allocation
    assert grew(before, realistic_aws.counts(), "eventual-consistency")
    assert realistic_aws.layer.counts.by_action()["eventual-consistency"].get("CreateNatGateway")


def test_a_nat_gateway_with_an_unknown_allocation_answers_ec2s_code_and_leaves_nothing(realistic_aws):
    """moto answers InvalidAllocationID.NotFound and leaves the gateway's interface behind; EC2
    answers InvalidElasticIpID.NotFound (the code amazon.aws retries) and makes nothing."""
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    before = realistic_aws.counts()
    unknown = "eipalloc-0123456789abcdef0"
    err = error_of(ec2.create_nat_gateway, SubnetId=subnet, AllocationId=unknown)
    assert code(err) == "InvalidElasticIpID.NotFound"
    assert err.response["Error"]["Message"] == f"The elasticIp ID '{unknown}' does not exist"
    enis = realistic_aws.truth().ec2().describe_network_interfaces(
        Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]
    assert enis == [], "a refused CreateNatGateway makes no network interface"
    assert grew(before, realistic_aws.counts(), "unknown-allocation")


def test_a_new_subnet_is_now_and_then_left_out_of_a_filtered_listing(realistic_aws):
    """amazon.aws's ec2_vpc_subnet lists the subnet it just made by vpc-id and cidr-block, without a
    retry; EC2 seldom leaves it out (rule listing-lag), while naming it by ID is "not found" for a
    moment every time (rule eventual-consistency)."""
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    before = realistic_aws.counts()

    def by_filter(cidr):
        return ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                             {"Name": "cidr-block", "Values": [cidr]}])["Subnets"]

    with realistic_aws.paused(), realism_rates(realistic_aws, listing_lag=1.0):
        lagging = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]
        assert by_filter("10.0.1.0/24") == [], "left out of the listing"
        assert code(error_of(ec2.describe_subnets, SubnetIds=[lagging["SubnetId"]])) == "InvalidSubnetID.NotFound"
    assert grew(before, realistic_aws.counts(), "listing-lag")
    until(lambda: by_filter("10.0.1.0/24"), what="the subnet listed")

    with realistic_aws.paused(), realism_rates(realistic_aws, listing_lag=0.0):
        listed = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]
        assert code(error_of(ec2.describe_subnets, SubnetIds=[listed["SubnetId"]])) == "InvalidSubnetID.NotFound"
        assert [s["SubnetId"] for s in by_filter("10.0.2.0/24")] == [listed["SubnetId"]], "listed at once"

    # At the default rate, few of many new IDs are left out.
    with realistic_aws.paused():
        made = [ec2.create_security_group(GroupName=f"g{n}", Description="g", VpcId=vpc)["GroupId"] for n in range(60)]
        shown = {g["GroupId"] for g in ec2.describe_security_groups(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]}
    left_out = [g for g in made if g not in shown]
    assert len(left_out) <= 0.3 * len(made), f"{len(left_out)} of {len(made)} left out at rate {realistic_aws.layer.rates}"


def test_an_id_a_list_has_shown_is_found_by_id_from_then_on(realistic_aws):
    """Reads don't go back in time: once a list shows a new ID, a call naming it succeeds (a
    teardown that saw it listed takes a later NotFound for "gone")."""
    ec2 = realistic_aws.ec2()
    with realistic_aws.paused(), realism_rates(realistic_aws, listing_lag=0.0):
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        assert vpc in [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]]
        assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["VpcId"] == vpc
        other = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        assert code(error_of(ec2.describe_vpcs, VpcIds=[other])) == "InvalidVpcID.NotFound", "not listed yet"


# -- b. NAT gateway states ------------------------------------------------------------------------------

def test_nat_gateway_is_pending_then_available_and_deleting_then_deleted(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    until_ok(ec2.describe_addresses, AllocationIds=[allocation])

    with realistic_aws.paused():
        nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation)["NatGateway"]["NatGatewayId"]
        assert code(error_of(ec2.describe_nat_gateways, NatGatewayIds=[nat])) == "NatGatewayNotFound"
    gateway = until_ok(ec2.describe_nat_gateways, NatGatewayIds=[nat])["NatGateways"][0]
    assert gateway["State"] == "pending"      # the first answer that names it
    with realistic_aws.paused():
        available = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["available"]}])["NatGateways"]
        assert nat not in [n["NatGatewayId"] for n in available]
        pending = ec2.describe_nat_gateways(Filters=[{"Name": "state", "Values": ["pending"]}])["NatGateways"]
        assert nat in [n["NatGatewayId"] for n in pending]

    until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available",
          what="the NAT gateway to become available")

    with realistic_aws.paused():
        ec2.delete_nat_gateway(NatGatewayId=nat)
        assert ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleting"
    until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted",
          what="the NAT gateway to be deleted")
    assert grew(before, realistic_aws.counts(), "nat-gateway-states")


def nat_gateway(realistic_aws, ec2, subnet: str) -> tuple[str, dict]:
    """An available NAT gateway and its address."""
    allocation = ec2.allocate_address(Domain="vpc")
    until_ok(ec2.describe_addresses, AllocationIds=[allocation["AllocationId"]])
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation["AllocationId"])["NatGateway"]["NatGatewayId"]
    until(lambda: until_ok(ec2.describe_nat_gateways, NatGatewayIds=[nat])["NatGateways"][0]["State"] == "available",
          what="the NAT gateway available")
    return nat, allocation


def nat_interface(ec2, subnet: str) -> list[dict]:
    return ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"]


def test_a_nat_gateways_interface_is_ec2s_and_outlives_it_holding_the_subnet(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    nat, _ = nat_gateway(realistic_aws, ec2, subnet)
    (eni,) = nat_interface(ec2, subnet)
    assert eni["InterfaceType"] == "nat_gateway" and eni["RequesterManaged"] is True
    assert eni["Status"] == "in-use" and eni["Description"] == f"Interface for NAT Gateway {nat}"
    err = error_of(ec2.delete_subnet, SubnetId=subnet)
    assert code(err) == "DependencyViolation", "a subnet holding a NAT gateway can't be deleted"
    with realistic_aws.paused():
        ec2.delete_nat_gateway(NatGatewayId=nat)
        assert [e["Status"] for e in nat_interface(ec2, subnet)] == ["in-use"], "in use while deleting"
    until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted",
          what="the NAT gateway deleted")
    with realistic_aws.paused():
        assert [e["Status"] for e in nat_interface(ec2, subnet)] == ["available"], "it outlives the gateway"
        err = error_of(ec2.delete_subnet, SubnetId=subnet)
        assert code(err) == "DependencyViolation"
        assert err.response["Error"]["Message"] == f"The subnet '{subnet}' has dependencies and cannot be deleted."
        assert code(error_of(ec2.delete_vpc, VpcId=vpc)) == "DependencyViolation"
    # What terraform-provider-aws does: retry DependencyViolation until the interface is gone.
    until_ok(ec2.delete_subnet, SubnetId=subnet)
    assert eni["NetworkInterfaceId"] not in {e["NetworkInterfaceId"] for e in
                                             realistic_aws.truth().ec2().describe_network_interfaces()["NetworkInterfaces"]}
    until_ok(ec2.delete_vpc, VpcId=vpc)
    by_action = realistic_aws.layer.counts.by_action()["nat-gateway-eni"]
    assert {"DescribeNetworkInterfaces", "DeleteSubnet", "DeleteVpc"} <= set(by_action), by_action
    assert grew(before, realistic_aws.counts(), "nat-gateway-eni")


def test_a_nat_gateways_address_is_in_use_until_the_gateway_is_deleted_then_may_lag(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    with realism_rates(realistic_aws, nat_release_lag=1.0):
        nat, allocation = nat_gateway(realistic_aws, ec2, subnet)
        alloc_id, ip = allocation["AllocationId"], allocation["PublicIp"]
        err = error_of(ec2.release_address, AllocationId=alloc_id)
        assert code(err) == "InvalidIPAddress.InUse" and err.response["Error"]["Message"] == f"Address {ip} is in use."
        with realistic_aws.paused():
            ec2.delete_nat_gateway(NatGatewayId=nat)
            assert code(error_of(ec2.release_address, AllocationId=alloc_id)) == "InvalidIPAddress.InUse"
            address = ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]
            assert address.get("AssociationId"), "still on the gateway while it is deleting"
        until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted",
              what="the NAT gateway deleted")
        with realistic_aws.paused():
            address = ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"][0]
            assert not address.get("AssociationId") and not address.get("NetworkInterfaceId"), \
                "EC2 disassociates a deleted NAT gateway's address"
            answers = [error_of(ec2.release_address, AllocationId=alloc_id).response["Error"] for _ in range(2)]
        assert [a["Code"] for a in answers] == ["AuthFailure", "InvalidNetworkInterfaceID.NotFound"], answers
        assert answers[0]["Message"] == "You do not have permission to access the specified resource."
        assert answers[1]["Message"].startswith("The networkInterface ID 'eni-")
        # The address is still there (billed): neither answer means it is gone.
        assert ec2.describe_addresses(AllocationIds=[alloc_id])["Addresses"]
        until_ok(ec2.release_address, AllocationId=alloc_id)
    assert not realistic_aws.truth().ec2().describe_addresses()["Addresses"]
    assert grew(before, realistic_aws.counts(), "nat-gateway-eip")


def test_a_nat_gateways_address_is_released_at_once_when_it_does_not_lag(realistic_aws):
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    with realism_rates(realistic_aws, nat_release_lag=0.0):
        nat, allocation = nat_gateway(realistic_aws, ec2, subnet)
        ec2.delete_nat_gateway(NatGatewayId=nat)
        until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted",
              what="the NAT gateway deleted")
        ec2.release_address(AllocationId=allocation["AllocationId"])


def test_a_nat_gateway_ec2_does_not_know_is_not_found(realistic_aws):
    """EC2 answers NatGatewayNotFound (boto3's NatGatewayDeleted waiter takes it for success); moto
    answered an empty list and, for DeleteNatGateway, an internal error."""
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    unknown = "nat-0123456789abcdef0"
    for call, kwargs in ((ec2.describe_nat_gateways, {"NatGatewayIds": [unknown]}),
                         (ec2.delete_nat_gateway, {"NatGatewayId": unknown})):
        err = error_of(call, **kwargs)
        assert code(err) == "NatGatewayNotFound" and err.response["Error"]["Message"] == f"NAT gateway {unknown} was not found"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert realistic_aws.counts()["nat-gateway-not-found"] == before["nat-gateway-not-found"] + 2


def test_a_route_to_a_deleted_nat_gateway_is_a_blackhole(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    nat, _ = nat_gateway(realistic_aws, ec2, subnet)
    rtb = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    until_ok(ec2.create_route, RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)

    def state() -> str:
        routes = ec2.describe_route_tables(RouteTableIds=[rtb])["RouteTables"][0]["Routes"]
        return next(r["State"] for r in routes if r.get("NatGatewayId") == nat)

    assert state() == "active"
    ec2.delete_nat_gateway(NatGatewayId=nat)
    assert state() == "blackhole"
    until(lambda: ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted",
          what="the NAT gateway deleted")
    assert state() == "blackhole"
    assert grew(before, realistic_aws.counts(), "route-blackhole")


def test_tags_name_an_elastic_ip_and_a_nat_gateway_as_ec2_does(realistic_aws):
    """DescribeTags: `elastic-ip` and `natgateway` (moto: vpc-elastic-ip, nat-gateway), and the
    resource-type filter takes EC2's names (amazon.aws reads a NAT gateway's tags that way)."""
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    tag = [{"Key": "Role", "Value": "nat-eip"}]
    allocation = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": tag}])
    until_ok(ec2.describe_addresses, AllocationIds=[allocation["AllocationId"]])
    nat = ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation["AllocationId"], TagSpecifications=[
        {"ResourceType": "natgateway", "Tags": [{"Key": "Role", "Value": "nat"}]}])["NatGateway"]["NatGatewayId"]

    def tags(*filters):
        return {(t["ResourceId"], t["ResourceType"]) for t in ec2.describe_tags(
            Filters=[{"Name": n, "Values": v} for n, v in filters])["Tags"]}

    assert tags(("resource-id", [allocation["AllocationId"]])) == {(allocation["AllocationId"], "elastic-ip")}
    assert tags(("resource-type", ["elastic-ip"])) == {(allocation["AllocationId"], "elastic-ip")}
    assert tags(("resource-id", [nat]), ("resource-type", ["natgateway"])) == {(nat, "natgateway")}
    assert tags(("resource-type", ["vpc-elastic-ip"])) == set(), "moto's name is not EC2's"
    assert grew(before, realistic_aws.counts(), "tag-resource-types")


# -- c. instance states ---------------------------------------------------------------------------------

def test_instance_states_follow_ec2s_order(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    until_ok(ec2.describe_addresses, AllocationIds=[allocation])
    instance = ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                                 SubnetId=subnet)["Instances"][0]["InstanceId"]
    first = until_ok(ec2.describe_instances, InstanceIds=[instance])     # the first answer that names it
    assert first["Reservations"][0]["Instances"][0]["State"] == {"Code": 0, "Name": "pending"}
    with realistic_aws.paused():
        running = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
        assert instance not in [i["InstanceId"] for r in running["Reservations"] for i in r["Instances"]]
        pending = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["pending"]}])
        assert instance in [i["InstanceId"] for r in pending["Reservations"] for i in r["Instances"]]
        assert ec2.describe_instance_status(InstanceIds=[instance])["InstanceStatuses"] == []
        statuses = ec2.describe_instance_status(InstanceIds=[instance], IncludeAllInstances=True)
        assert statuses["InstanceStatuses"][0]["InstanceState"]["Name"] == "pending"
        err = error_of(ec2.stop_instances, InstanceIds=[instance])
        assert code(err) == "IncorrectInstanceState" and "never reached the 'running' state" in str(err)

        # An address can't go to a pending instance (terraform-provider-aws's associateEIP retries this).
        err = error_of(ec2.associate_address, AllocationId=allocation, InstanceId=instance)
        assert code(err) == "InvalidInstanceID" and "pending instance" in err.response["Error"]["Message"], err

    until(lambda: instance_state(ec2, instance) == "running", what="running")
    ec2.associate_address(AllocationId=allocation, InstanceId=instance)
    running = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
    assert instance in [i["InstanceId"] for r in running["Reservations"] for i in r["Instances"]]

    with realistic_aws.paused():
        stopping = ec2.stop_instances(InstanceIds=[instance])["StoppingInstances"][0]
        assert stopping["CurrentState"]["Name"] == "stopping" and stopping["PreviousState"]["Name"] == "running"
        assert instance_state(ec2, instance) == "stopping"
        assert code(error_of(ec2.start_instances, InstanceIds=[instance])) == "IncorrectInstanceState"
    until(lambda: instance_state(ec2, instance) == "stopped", what="stopped")

    with realistic_aws.paused():
        ec2.start_instances(InstanceIds=[instance])
        assert instance_state(ec2, instance) == "pending"
    until(lambda: instance_state(ec2, instance) == "running", what="running again")

    with realistic_aws.paused():
        ec2.terminate_instances(InstanceIds=[instance])
        assert instance_state(ec2, instance) == "shutting-down"
    until(lambda: instance_state(ec2, instance) == "terminated", what="terminated")
    assert grew(before, realistic_aws.counts(), "instance-states")


SHORT_INSTANCE_WINDOWS = dict(instance_pending=0.1, instance_stopping=0.1, instance_shutting_down=0.1)


def test_a_state_gate_holds_each_transitional_state_until_the_machine_is_there(realistic_aws):
    """The lab's API: `running`, `stopped`, `terminated` only once the server's machine is so, however
    long after the window; a terminated instance's interfaces linger from when it shows terminated."""
    ec2 = realistic_aws.ec2()
    machine: dict[str, str] = {}
    asked: list[tuple] = []

    def reached(instance_id, state, region):
        asked.append((instance_id, state, region))
        return machine.get(instance_id) == state

    with realism_timings(realistic_aws, **SHORT_INSTANCE_WINDOWS, eni_linger=0.3), state_gate(realistic_aws, reached) as said:
        vpc = visible_vpc(ec2)
        subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
        sg = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
        until_ok(ec2.describe_security_groups, GroupIds=[sg])
        instance = launch(ec2, subnet, SecurityGroupIds=[sg])
        time.sleep(0.4)
        assert instance_state(ec2, instance) == "pending", "running before its machine runs"
        assert (instance, "running", REGION) in asked
        machine[instance] = "running"
        assert instance_state(ec2, instance) == "running"

        ec2.stop_instances(InstanceIds=[instance])
        time.sleep(0.4)
        assert instance_state(ec2, instance) == "stopping", "stopped before its machine is off"
        assert code(error_of(ec2.start_instances, InstanceIds=[instance])) == "IncorrectInstanceState"
        machine[instance] = "stopped"
        assert instance_state(ec2, instance) == "stopped"

        ec2.start_instances(InstanceIds=[instance])
        time.sleep(0.4)
        assert instance_state(ec2, instance) == "pending"
        machine[instance] = "running"
        assert instance_state(ec2, instance) == "running"

        ec2.terminate_instances(InstanceIds=[instance])
        time.sleep(0.6)   # past shutting-down's window and the interface's linger after it
        assert instance_state(ec2, instance) == "shutting-down", "terminated before its machine is gone"
        assert code(error_of(ec2.delete_security_group, GroupId=sg)) == "DependencyViolation"
        machine[instance] = "terminated"
        assert instance_state(ec2, instance) == "terminated"
        assert code(error_of(ec2.delete_security_group, GroupId=sg)) == "DependencyViolation", \
            "the interface went with `terminated`: it lingers after it"
        until_ok(ec2.delete_security_group, GroupId=sg)
    assert said == [], f"expected nothing logged, found {said}"


def test_a_state_gate_gives_way_after_its_bound_and_says_so_once(realistic_aws):
    """A machine that never gets there (a crashed container) can't make the API lie for ever."""
    ec2 = realistic_aws.ec2()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    with realism_timings(realistic_aws, **SHORT_INSTANCE_WINDOWS), \
            state_gate(realistic_aws, lambda *_: False, bound=4.0) as said:
        # The bound leaves room for a loaded machine between the launch and the read (a full CI run).
        instance = launch(ec2, subnet)
        time.sleep(0.4)
        assert instance_state(ec2, instance) == "pending"
        assert said == []
        until(lambda: instance_state(ec2, instance) == "running", what="running after the bound")
        assert instance_state(ec2, instance) == "running"
        assert len(said) == 1 and instance in said[0] and "4s after the call" in said[0], said

    def broken(*_):
        raise RuntimeError("the record is gone")

    with realism_timings(realistic_aws, **SHORT_INSTANCE_WINDOWS), state_gate(realistic_aws, broken) as said:
        instance = launch(ec2, subnet)
        # Well before the default 60 s bound: the broken gate is not waited out.
        until(lambda: instance_state(ec2, instance) == "running", timeout=10, what="running despite the gate")
        assert instance_state(ec2, instance) == "running"
        assert len(said) == 1 and "the record is gone" in said[0], said


# -- d. lingering network interfaces -----------------------------------------------------------------

def test_a_terminated_instances_interface_holds_its_group_subnet_and_vpc_for_a_while(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    sg = ec2.create_security_group(GroupName="db", Description="db", VpcId=vpc)["GroupId"]
    until_ok(ec2.describe_security_groups, GroupIds=[sg])
    instance = launch(ec2, subnet, SecurityGroupIds=[sg])
    until(lambda: instance_state(ec2, instance) == "running", what="running")

    with realistic_aws.paused():
        ec2.terminate_instances(InstanceIds=[instance])
        err = error_of(ec2.delete_security_group, GroupId=sg)
        assert code(err) == "DependencyViolation"
        assert err.response["Error"]["Message"] == f"resource {sg} has a dependent object"
        err = error_of(ec2.delete_subnet, SubnetId=subnet)
        assert code(err) == "DependencyViolation"
        assert err.response["Error"]["Message"] == f"The subnet '{subnet}' has dependencies and cannot be deleted."
        assert code(error_of(ec2.delete_vpc, VpcId=vpc)) == "DependencyViolation"
    by_action = realistic_aws.layer.counts.by_action()["lingering-enis"]
    assert {"DeleteSecurityGroup", "DeleteSubnet", "DeleteVpc"} <= set(by_action)

    # What terraform-provider-aws does: retry DependencyViolation until the interface is gone.
    until_ok(ec2.delete_security_group, GroupId=sg)
    until_ok(ec2.delete_subnet, SubnetId=subnet)
    until_ok(ec2.delete_vpc, VpcId=vpc)
    assert instance_state(ec2, instance) == "terminated"
    assert grew(before, realistic_aws.counts(), "lingering-enis")


# -- e. mapped public addresses ---------------------------------------------------------------------

def test_the_internet_gateway_stays_while_public_addresses_are_mapped(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    web_subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    until_ok(ec2.attach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
    web = launch(ec2, web_subnet)
    web_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    until_ok(ec2.associate_address, AllocationId=web_eip, InstanceId=web)
    nat_eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
    until_ok(ec2.describe_addresses, AllocationIds=[nat_eip])
    nat = ec2.create_nat_gateway(SubnetId=web_subnet, AllocationId=nat_eip)["NatGateway"]["NatGatewayId"]

    err = error_of(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
    assert code(err) == "DependencyViolation"
    assert err.response["Error"]["Message"] == (
        f"Network {vpc} has some mapped public address(es). Please unmap those public address(es) before "
        f"detaching the gateway.")

    # The web server's address goes with it; the NAT gateway's once it is deleted.
    until(lambda: instance_state(ec2, web) in ("running",), what="running")
    until_ok(ec2.describe_nat_gateways, NatGatewayIds=[nat])
    with realistic_aws.paused():
        ec2.terminate_instances(InstanceIds=[web])
        ec2.delete_nat_gateway(NatGatewayId=nat)
        err = error_of(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
        assert code(err) == "DependencyViolation", "still mapped while shutting down and deleting"
    until_ok(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=vpc)
    assert ec2.describe_nat_gateways(NatGatewayIds=[nat])["NatGateways"][0]["State"] == "deleted"
    assert instance_state(ec2, web) == "terminated"
    assert grew(before, realistic_aws.counts(), "igw-mapped-addresses")


# -- f. zones -----------------------------------------------------------------------------------------

def test_zones_include_a_local_zone_and_not_every_zone_offers_t2_micro(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    zones = ec2.describe_availability_zones()["AvailabilityZones"]
    names = [z["ZoneName"] for z in zones]
    assert names == sorted(names)
    local = zones[0]
    assert local["ZoneName"] == "us-east-1-bos-1a" and local["ZoneType"] == "local-zone"
    assert local["OptInStatus"] == "opted-in" and local["GroupName"] == "us-east-1-bos-1"
    assert local["ParentZoneName"] == "us-east-1a"
    assert all(z["ZoneType"] == "availability-zone" for z in zones[1:])

    def zone_names(*filters):
        answer = ec2.describe_availability_zones(Filters=[{"Name": n, "Values": v} for n, v in filters])
        return [z["ZoneName"] for z in answer["AvailabilityZones"]]

    assert zone_names(("zone-type", ["local-zone"])) == ["us-east-1-bos-1a"]
    assert "us-east-1-bos-1a" not in zone_names(("zone-type", ["availability-zone"]))
    assert zone_names(("opt-in-status", ["opted-in"])) == ["us-east-1-bos-1a"]
    assert zone_names(("zone-name", ["us-east-1-*"]), ("zone-type", ["local-zone"])) == ["us-east-1-bos-1a"]
    standard = zone_names(("zone-type", ["availability-zone"]), ("opt-in-status", ["opt-in-not-required"]))
    assert standard[0] == "us-east-1a"

    offers = ec2.describe_instance_type_offerings(
        LocationType="availability-zone",
        Filters=[{"Name": "instance-type", "Values": ["t2.micro"]}])["InstanceTypeOfferings"]
    offered_in = {o["Location"] for o in offers}
    assert "us-east-1a" not in offered_in and "us-east-1b" in offered_in
    assert "us-east-1-bos-1a" not in offered_in

    vpc = visible_vpc(ec2)
    first = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1a")
    err = error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro", SubnetId=first)
    assert code(err) == "Unsupported"
    assert err.response["Error"]["Message"].startswith(
        "Your requested instance type (t2.micro) is not supported in your requested Availability Zone (us-east-1a). "
        "Please retry your request by not specifying an Availability Zone or choosing us-east-1b, ")

    # A subnet in the Local Zone exists, but t2.micro isn't offered there either; t3.medium is.
    local_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.9.0/24", AvailabilityZone="us-east-1-bos-1a")["Subnet"]
    assert local_subnet["AvailabilityZone"] == "us-east-1-bos-1a"
    until_ok(ec2.describe_subnets, SubnetIds=[local_subnet["SubnetId"]])
    assert code(error_of(ec2.run_instances, ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t2.micro",
                         SubnetId=local_subnet["SubnetId"])) == "Unsupported"
    assert launch(ec2, local_subnet["SubnetId"], InstanceType="t3.medium")

    # Where it is offered, the same launch succeeds.
    second = visible_subnet(ec2, vpc, "10.0.2.0/24", "us-east-1b")
    assert launch(ec2, second)
    assert grew(before, realistic_aws.counts(), "zones")


# -- g. another team's instances -----------------------------------------------------------------------

def test_another_team_runs_a_stopped_instance_with_the_same_env_and_role(realistic_aws):
    ec2 = realistic_aws.ec2()
    before = realistic_aws.counts()
    vpc = visible_vpc(ec2)
    subnet = visible_subnet(ec2, vpc, "10.0.1.0/24", "us-east-1b")
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Env", "Value": "demo"}, {"Key": "Role", "Value": "web"},
                                                  {"Key": "Project", "Value": "twotier"}]}]
    ours = launch(ec2, subnet, TagSpecifications=tags)

    def by_env_role():
        answer = ec2.describe_instances(Filters=[{"Name": "tag:Env", "Values": ["demo"]},
                                                 {"Name": "tag:Role", "Values": ["web"]}])
        return [i for r in answer["Reservations"] for i in r["Instances"]]

    found = by_env_role()
    assert len(found) == 2, "looking up by Env/Role alone finds another team's instance too"
    theirs = next(i for i in found if i["InstanceId"] != ours)
    their_tags = {t["Key"]: t["Value"] for t in theirs["Tags"]}
    assert their_tags["Env"] == "demo" and their_tags["Role"] == "web" and "Project" not in their_tags
    assert theirs["State"]["Name"] == "stopped"
    default_vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert theirs["VpcId"] == default_vpc
    ours_only = [i["InstanceId"] for i in found
                 if {"Key": "Project", "Value": "twotier"} in i.get("Tags", [])]
    assert ours_only == [ours], "the Project tag tells ours apart"

    # Once per (Env, Role): a second launch with the same tags brings no one else along.
    second = launch(ec2, subnet, TagSpecifications=tags)
    assert sorted(i["InstanceId"] for i in by_env_role()) == sorted([ours, second, theirs["InstanceId"]])
    assert realistic_aws.counts()["others-instances"] == before["others-instances"] + 1


# -- the counts, and the switch ---------------------------------------------------------------------------

def test_counts_are_readable_from_another_process(realistic_aws):
    ec2 = realistic_aws.ec2()
    with realistic_aws.paused():
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        error_of(ec2.describe_vpcs, VpcIds=[vpc])
    in_process = realistic_aws.counts()
    assert in_process["eventual-consistency"] > 0
    reader = ("import json, sys; from emulator.realism import read_counts; "
              "print(json.dumps(read_counts(sys.argv[1])))")
    out = subprocess.run([sys.executable, "-c", reader, str(realistic_aws.counts_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(out) == in_process
    assert set(in_process) == set(realism.RULES)


def test_the_switch_turns_the_layer_into_plain_moto(monkeypatch, tmp_path):
    assert realism.rules_from_env("") == frozenset(realism.RULES)
    assert realism.rules_from_env("zones, instance-states") == {"zones", "instance-states"}
    with pytest.raises(ValueError):
        realism.rules_from_env("zones,no-such-rule")

    monkeypatch.setenv(realism.ENV_SWITCH, "off")
    server = realism.RealisticMotoServer("127.0.0.1", 0, counts_path=tmp_path / "counts.json").start()
    try:
        assert not server.layer.enabled
        import boto3

        host, port = server.get_host_and_port()
        ec2 = boto3.client("ec2", endpoint_url=f"http://{host}:{port}", region_name=REGION,
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        assert ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["VpcId"] == vpc   # moto: visible at once
        zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
        assert "us-east-1-bos-1a" not in zones
        assert sum(realism.read_counts(tmp_path / "counts.json").values()) == 0
        ec2.delete_vpc(VpcId=vpc)
    finally:
        server.stop()

    with pytest.raises(ValueError):
        realism.RealisticMotoServer("0.0.0.0", 0)
