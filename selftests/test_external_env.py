"""Environments built outside the project (plain boto3, CloudFormation) are checked through
--vpc-id/--web/--db: roles come from the instances and routes, not from our tags or CIDRs.

This one differs from ours in ways that are not defects: other CIDRs and sizes, the private
subnet listed first and routed by the VPC's main table, a shared "client" group through which the
web server is granted access, and a VPC endpoint route without a destination CIDR.
"""
import subprocess
import sys

import boto3
import pytest

from selftests.moto_server import REPO
from selftests.suite_runner import run_suite

AMI_PARAM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def build_by_hand(server) -> dict:
    ec2 = server.ec2()
    ami = boto3.client("ssm", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing").get_parameter(Name=AMI_PARAM)["Parameter"]["Value"]
    vpc = ec2.create_vpc(CidrBlock="172.20.0.0/20")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="172.20.0.0/26")["Subnet"]["SubnetId"]
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="172.20.8.0/25")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=public)
    eip_nat = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=public, AllocationId=eip_nat)["NatGateway"]["NatGatewayId"]
    main = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                              {"Name": "association.main", "Values": ["true"]}])["RouteTables"][0]
    ec2.create_route(RouteTableId=main["RouteTableId"], DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat)
    ec2.create_vpc_endpoint(VpcId=vpc, ServiceName="com.amazonaws.us-east-1.s3", VpcEndpointType="Gateway",
                            RouteTableIds=[main["RouteTableId"]])
    front = ec2.create_security_group(GroupName="frontend", Description="web", VpcId=vpc)["GroupId"]
    clients = ec2.create_security_group(GroupName="db-clients", Description="may use the db", VpcId=vpc)["GroupId"]
    dbsg = ec2.create_security_group(GroupName="database", Description="db", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=front, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/28"}]}])
    ec2.authorize_security_group_ingress(GroupId=dbsg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": [{"GroupId": clients}]},
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": [{"GroupId": clients}]},
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": clients}]}])
    ec2.create_key_pair(KeyName="ops", KeyType="ed25519")
    common = dict(ImageId=ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, KeyName="ops",
                  MetadataOptions={"HttpTokens": "required"})
    web = ec2.run_instances(SubnetId=public, SecurityGroupIds=[front, clients],
                            TagSpecifications=[{"ResourceType": "instance",
                                                "Tags": [{"Key": "Name", "Value": "frontend-1"}]}],
                            **common)["Instances"][0]["InstanceId"]
    db = ec2.run_instances(SubnetId=private, SecurityGroupIds=[dbsg], **common)["Instances"][0]["InstanceId"]
    ec2.associate_address(AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"], InstanceId=web)
    return {"vpc": vpc, "web": web, "db": db, "dbsg": dbsg, "ec2": ec2}


def check(tmp_path, server, built, web_selector="tag:Name=frontend-1"):
    # API checks only: on moto the "public" addresses are 127.x and must never be contacted.
    args = ["--target", "aws", "--vpc-id", built["vpc"], "--web", web_selector, "--db", built["db"],
            "--state-dir", str(tmp_path), "-m", "api"]
    return run_suite(tmp_path, *args, env=server.env())


def test_environment_built_by_hand_passes(tmp_path, aws):
    built = build_by_hand(aws)
    v = check(tmp_path, aws, built)
    assert not v.failed, f"expected a correct environment to pass, found failures {sorted(v.failed)}\n{v.output[-3000:]}"
    assert len(v.passed) >= 20
    assert v.skipped == {"test_teardown_leaves_nothing"}, sorted(v.skipped)


def test_environment_built_by_hand_fails_exactly_where_wrong(tmp_path, aws):
    built = build_by_hand(aws)
    built["ec2"].authorize_security_group_ingress(GroupId=built["dbsg"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    v = check(tmp_path, aws, built)
    assert v.failed == {"test_db_allows_only_the_web_server[mariadb]", "test_db_allows_nothing_else",
                        "test_db_port_not_exposed_to_internet[3306]"}, sorted(v.failed)
    assert v.returncode == 1


@pytest.mark.parametrize("args,message", [
    (["--vpc-id", "vpc-0123456789abcdef0", "--web", "i-0123456789abcdef0", "--db", "i-0123456789abcdef1"],
     "does not exist"),
    (["--vpc-id", "VPC", "--web", "tag:Name=nothing", "--db", "DB"], "no instance matches --web tag:Name=nothing"),
    (["--vpc-id", "VPC", "--web", "tag:Role=both", "--db", "DB"], "2 instances match --web tag:Role=both"),
    (["--vpc-id", "VPC", "--web", "frontend", "--db", "DB"], "bad selector 'frontend'"),
    (["--vpc-id", "VPC"], "--vpc-id, --web and --db go together"),
])
def test_bad_selectors_are_one_line_errors(tmp_path, aws, args, message):
    built = build_by_hand(aws)
    built["ec2"].create_tags(Resources=[built["web"], built["db"]], Tags=[{"Key": "Role", "Value": "both"}])
    args = [a.replace("VPC", built["vpc"]).replace("DB", built["db"]) for a in args]
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "-q", "-o",
                           "addopts=", "-m", "api", "--target", "aws", "--state-dir", str(tmp_path), *args],
                          capture_output=True, text=True, env=aws.env(), cwd=REPO)
    out = proc.stdout + proc.stderr
    assert message in out, out[-2000:]
    assert "Traceback" not in out
    assert proc.returncode in (4, 6), proc.returncode
