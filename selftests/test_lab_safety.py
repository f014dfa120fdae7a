"""The lab belongs to its owner and nothing from its API reaches a shell or an nft script unchecked.

Without root: the SigV4 gate on a bare emulated API (right credentials in, wrong key, wrong secret,
no signature and moto's control paths out), the protocol whitelist, a hostile rule left out of the
nft script, env names refused before any path is built, /proc/self/mounts escapes.
As root (marker `local`): a lab in a state dir holding a quote and a space, a hostile IpProtocol in
one VPC while a second VPC's objects are realised, no `evil` table anywhere, the control paths
refused with the environment still there, and stop leaving no mount.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from emulator import auth
from emulator import server as api_server
from lab import daemon, instances, names, netns, security_groups
from lab import world as world_mod
from lab.converge import Converger
from lab.errors import LabError, LabPrerequisiteError
from lab.world import Instance, Rule, SecurityGroup, Subnet, Vpc, World
from selftests.by_hand import clean_env


@pytest.fixture(scope="module", autouse=True)
def _plain_api(plain_lab_api):
    """This module's labs serve plain moto (see selftests/conftest.py: plain_lab_api)."""

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.xdist_group("safety")     # one lab shared by the module
ENV = "safety"
EVIL = "tcp\n}\ntable inet evil { chain x { type filter hook input priority 0; policy accept; } }"


def ec2_client(endpoint: str, key_id: str, secret: str, region: str = "us-east-1"):
    return boto3.client("ec2", endpoint_url=endpoint, region_name=region, aws_access_key_id=key_id,
                        aws_secret_access_key=secret)


def refused(call) -> str:
    """The error code of a call the API must refuse (fails the test if it was accepted)."""
    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, info.value.response
    return info.value.response["Error"]["Code"]


def http_status(url: str, method: str = "GET", data: bytes | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=data), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


# --- the gate, on a bare emulated API (no root) -------------------------------------------------
@pytest.fixture
def gated():
    key_id, secret = auth.new_credentials()
    srv = api_server.serve(0, access_key_id=key_id, secret_access_key=secret)
    try:
        yield srv, key_id, secret
    finally:
        srv.stop()
        api_server.unpatch()


def test_credentials_look_like_aws_and_are_fresh_each_time():
    (k1, s1), (k2, s2) = auth.new_credentials(), auth.new_credentials()
    assert k1.startswith("AKIA") and len(k1) == 20 and k1.isalnum() and k1.isupper()
    assert len(s1) == 40 and k1 != k2 and s1 != s2


def test_only_the_owners_signature_is_accepted(gated):
    srv, key_id, secret = gated
    owner = ec2_client(srv.endpoint, key_id, secret)
    vpc = owner.create_vpc(CidrBlock="10.3.0.0/16")["Vpc"]["VpcId"]
    assert refused(lambda: ec2_client(srv.endpoint, key_id, "not-the-secret").describe_vpcs()) == "AuthFailure"
    assert refused(lambda: ec2_client(srv.endpoint, "AKIAIOSFODNN7EXAMPLE", secret).describe_vpcs()) == "AuthFailure"
    assert refused(lambda: ec2_client(srv.endpoint, "testing", "testing").create_vpc(CidrBlock="10.4.0.0/16")) \
        == "AuthFailure"
    unsigned = boto3.client("ec2", endpoint_url=srv.endpoint, region_name="us-east-1",
                            config=Config(signature_version=UNSIGNED))
    assert refused(unsigned.describe_vpcs) == "AuthFailure"
    assert http_status(srv.endpoint + "/", "POST", b"Action=CreateVpc&CidrBlock=10.5.0.0/16&Version=2016-11-15") == 403
    # Nothing a refused call asked for was made; the owner's VPC is there.
    cidrs = {v["CidrBlock"] for v in owner.describe_vpcs()["Vpcs"]}
    assert "10.3.0.0/16" in cidrs and not cidrs & {"10.4.0.0/16", "10.5.0.0/16"}, cidrs
    assert owner.describe_vpcs(VpcIds=[vpc])["Vpcs"]
    ssm = boto3.client("ssm", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                       aws_secret_access_key=secret)
    assert ssm.get_parameter(Name="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64")
    with pytest.raises(ClientError) as info:
        boto3.client("ssm", endpoint_url=srv.endpoint, region_name="us-east-1", aws_access_key_id=key_id,
                     aws_secret_access_key="wrong").get_parameter(Name="/x")
    assert info.value.response["Error"]["Code"] == "AuthFailure"


def test_moto_control_paths_are_refused_even_to_the_owner(gated):
    srv, key_id, secret = gated
    owner = ec2_client(srv.endpoint, key_id, secret)
    owner.create_key_pair(KeyName="kept", KeyType="ed25519")
    vpc = owner.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
    for path, method in (("/moto-api/data.json", "GET"), ("/moto-api/reset", "POST"), ("/moto-api/", "GET"),
                         ("/moto-api/seed?a=42", "POST"), ("/%6doto-api/reset", "POST")):
        assert http_status(srv.endpoint + path, method, b"" if method == "POST" else None) == 403, path
    assert owner.describe_vpcs(VpcIds=[vpc])["Vpcs"], "the environment is gone after /moto-api/reset"
    assert owner.describe_key_pairs(KeyNames=["kept"])["KeyPairs"]


def test_the_aws_cli_works_with_the_labs_credentials(gated):
    srv, key_id, secret = gated
    assert shutil.which("aws"), "the AWS CLI is missing: pip install -r requirements.txt (it pins awscli)"
    ec2_client(srv.endpoint, key_id, secret).create_vpc(CidrBlock="10.8.0.0/16")
    # AWS_DEFAULT_REGION too: this botocore's CLI reads it, not AWS_REGION.
    env = clean_env(AWS_ENDPOINT_URL=srv.endpoint, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret,
                    AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
    cmd = ["aws", "ec2", "describe-vpcs", "--query", "Vpcs[].CidrBlock", "--output", "text"]
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "10.8.0.0/16" in ok.stdout, ok.stderr
    env["AWS_SECRET_ACCESS_KEY"] = "wrong"
    bad = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "AuthFailure" in bad.stderr, bad.stderr


def test_a_signature_from_another_time_is_refused():
    import datetime

    environ = {"HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 Credential=AKIAX/20200101/us-east-1/ec2/aws4_request, "
                                     "SignedHeaders=host;x-amz-date, Signature=00",
               "HTTP_HOST": "127.0.0.1:1", "HTTP_X_AMZ_DATE": "20200101T000000Z", "REQUEST_METHOD": "POST",
               "PATH_INFO": "/"}
    with pytest.raises(auth.AuthError, match="expired"):
        auth.verify(environ, b"", "AKIAX", "s", now=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))


# --- validation (no root) -----------------------------------------------------------------------
@pytest.mark.parametrize("value,want", [("tcp", "tcp"), ("TCP", "tcp"), ("6", "tcp"), ("udp", "udp"), ("17", "udp"),
                                        ("icmp", "icmp"), ("1", "icmp"), ("icmpv6", "icmpv6"), ("58", "icmpv6"),
                                        ("-1", "-1"), ("all", "-1"), (-1, "-1"), ("47", "47"), ("0", "0"),
                                        ("255", "255")])
def test_protocol_whitelist_accepts(value, want):
    assert world_mod.protocol(value) == want


@pytest.mark.parametrize("value", [EVIL, "tcp\n", "256", "-2", "sctp", "tcp; drop", "", None, True, "1e2", "0x6",
                                   "٣"])
def test_protocol_whitelist_refuses(value):
    with pytest.raises(world_mod.Invalid):
        world_mod.protocol(value)


@pytest.mark.parametrize("rule", [Rule("tcp", 70000, 70000, ("0.0.0.0/0",), ()), Rule("tcp", 22, 10, ("0.0.0.0/0",), ()),
                                  Rule("tcp", "22", "22", ("0.0.0.0/0",), ()), Rule("icmp", 300, -1, ("0.0.0.0/0",), ()),
                                  Rule("tcp", 22, 22, ("10.0.0.0/8 } accept",), ()), Rule(EVIL, 1, 2, ("0.0.0.0/0",), ())])
def test_bad_rules_are_invalid(rule):
    with pytest.raises(world_mod.Invalid):
        world_mod.valid_rule(rule)


def _world_with(rule: Rule) -> World:
    w = World()
    w.vpcs["vpc-1"] = Vpc("vpc-1", ["10.0.0.0/16"])
    w.subnets["subnet-1"] = Subnet("subnet-1", "vpc-1", "10.0.1.0/24", None)
    w.groups["sg-1"] = SecurityGroup("sg-1", "vpc-1", [rule, Rule("tcp", 22, 22, ("198.51.100.0/28",), ())], [])
    w.instances["i-1"] = Instance("i-1", "running", "vpc-1", "subnet-1", "eni-0a1", "10.0.1.4", None, None,
                                  ("sg-1",), None)
    return w


def test_a_hostile_rule_never_reaches_the_nft_script():
    w = _world_with(Rule(EVIL, 1, 2, ("0.0.0.0/0",), ()))
    problems: list[str] = []
    script = security_groups.ruleset(w, list(w.instances.values()), problems)
    assert "evil" not in script and "policy accept; } }" not in script
    assert "ip saddr { 198.51.100.0/28 } meta l4proto tcp th dport 22 accept" in script, "the good rule was lost"
    assert len(problems) == 1 and "rule skipped" in problems[0], problems


def test_world_read_leaves_out_a_hostile_rule_and_keeps_the_group():
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        sg = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
            {"IpProtocol": EVIL, "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 70000, "ToPort": -5, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]},
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        w = world_mod.read(ec2)
    assert [(r.protocol, r.from_port) for r in w.groups[sg].ingress] == [("tcp", 80)]
    assert len([r for r in w.rejected if sg in r]) == 2, w.rejected


def test_a_failing_step_is_logged_once_and_skipped():
    lines = []
    conv = Converger(ENV, Path("/nonexistent"), ec2=None, base=Path("/nonexistent"), repo=Path("/nonexistent"),
                     log=lines.append)

    def boom():
        raise LabError("ip: RTNETLINK answers: Invalid argument")

    assert conv._step("VPC vpc-1: route tables", boom) is False
    assert conv._step("VPC vpc-1: route tables", boom) is False
    assert conv._step("VPC vpc-2: route tables", lambda: None) is True
    assert len(lines) == 1 and "vpc-1" in lines[0] and "skipped" in lines[0], lines
    assert list(conv.failures) == ["VPC vpc-1: route tables"]


@pytest.mark.parametrize("env", ["../../etc", "..", "safety\n", "Safety", "a/b", "", "-x", "a" * 32, "a b", "ok."])
def test_env_names_that_could_make_a_path_are_refused(env):
    with pytest.raises(LabError, match="invalid env name"):
        names.check_env(env)
    with pytest.raises(LabError):
        names.run_dir(env)


@pytest.mark.parametrize("cmd", ["stop", "start", "status"])
def test_daemon_cli_refuses_env_traversal(cmd, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lab.daemon", cmd, "--env", "../../etc", "--state-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid env name" in lines[0], proc.stderr
    assert os.path.isdir("/etc/apt") and list(tmp_path.iterdir()) == []


def test_mount_paths_with_escapes_are_decoded():
    assert netns._unescape_mount_field(r"/tmp/it's\040a\011lab\012x\134y") == "/tmp/it's a\tlab\nx\\y"


# --- a real lab (root) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    try:
        daemon.check_prerequisites()
    except LabPrerequisiteError as exc:
        pytest.skip(str(exc))
    state_dir = tmp_path_factory.mktemp("safety") / "it's a lab"
    try:
        api = daemon.start(ENV, state_dir, "us-east-1", progress=print)
        yield state_dir, api
    finally:
        daemon.stop(ENV, state_dir, progress=print)


def _vpc_with_instance(ec2, cidr: str, rules: list[dict]) -> tuple[str, str, str]:
    vpc = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr.replace(".0.0/16", ".1.0/24"))["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"g-{vpc}", Description="g", VpcId=vpc)["GroupId"]
    for rule in rules:   # one call each: moto takes the hostile one as it is
        ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[rule])
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    inst = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=sub,
                             SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    return vpc, sg, inst


def _tables(ns: str) -> str:
    return netns.run("ip", "netns", "exec", ns, "nft", "list", "tables", check=False)


@pytest.mark.local
def test_lab_credentials_are_its_own_and_kept_private(lab):
    state_dir, api = lab
    mode = stat.S_IMODE((state_dir / daemon.STATE_FILE).stat().st_mode)
    assert mode == 0o600, f"lab.json is {oct(mode)}"
    assert api.access_key_id.startswith("AKIA") and api.secret_access_key not in repr(api)
    assert daemon.attach(ENV, state_dir) == api
    assert api.secret_access_key not in (state_dir / daemon.LOG_FILE).read_text()
    owner = ec2_client(api.endpoint, api.access_key_id, api.secret_access_key)
    before = len(owner.describe_vpcs()["Vpcs"])
    assert refused(lambda: ec2_client(api.endpoint, "testing", "testing").create_vpc(CidrBlock="10.9.0.0/16")) \
        == "AuthFailure"
    assert refused(lambda: ec2_client(api.endpoint, api.access_key_id, "wrong").describe_vpcs()) == "AuthFailure"
    assert refused(lambda: ec2_client(api.endpoint, "AKIAIOSFODNN7EXAMPLE", api.secret_access_key)
                   .describe_vpcs()) == "AuthFailure"
    assert http_status(api.endpoint + "/", "POST", b"Action=DescribeVpcs&Version=2016-11-15") == 403
    assert len(owner.describe_vpcs()["Vpcs"]) == before


@pytest.mark.local
def test_hostile_protocol_is_skipped_and_the_other_vpc_is_realised(lab):
    state_dir, api = lab
    ec2 = ec2_client(api.endpoint, api.access_key_id, api.secret_access_key)
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/28"}]}
    vpc_a, sg_a, inst_a = _vpc_with_instance(ec2, "10.21.0.0/16", [
        {"IpProtocol": EVIL, "FromPort": 1, "ToPort": 2, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, ssh])
    vpc_b, sg_b, inst_b = _vpc_with_instance(ec2, "10.22.0.0/16", [
        {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "IpRanges": [{"CidrIp": "10.22.0.0/16"}]}])
    perms = ec2.describe_security_groups(GroupIds=[sg_a])["SecurityGroups"][0]["IpPermissions"]
    if not any(p["IpProtocol"] == EVIL for p in perms):
        pytest.skip("the API itself refused the hostile protocol (nothing for the lab to skip)")
    daemon.wait_settled(state_dir, timeout=60)
    passes = json.loads((state_dir / "converge.json").read_text())
    assert passes["error"] is None, passes
    assert any(sg_a in line and "not one of tcp" in line for line in passes["skipped"]), passes["skipped"]
    assert set(passes["boot_seconds"]) >= {inst_a, inst_b}, "an instance was not booted"
    log = (state_dir / daemon.LOG_FILE).read_text()
    assert f"skipped: security group {sg_a}" in log
    assert "evil" not in "".join(_tables(ns) for ns in netns.list_ns(names.netns_prefix(ENV)))
    rules_b = netns.run("ip", "netns", "exec", names.vpc_ns(ENV, vpc_b), "nft", "list", "table", "inet", "lab_sg")
    assert "dport 3306 accept" in rules_b and "10.22.0.0/16" in rules_b, rules_b
    rules_a = netns.run("ip", "netns", "exec", names.vpc_ns(ENV, vpc_a), "nft", "list", "table", "inet", "lab_sg")
    assert "dport 22 accept" in rules_a and "198.51.100.0/28" in rules_a, "VPC A lost its good rule"
    # Both disks sit in the state dir with a quote and a space; /proc/self/mounts escapes the space.
    mounts = netns.mounts_under(state_dir / "instances")
    assert {str(state_dir / "instances" / i / "root") for i in (inst_a, inst_b)} <= set(mounts), mounts
    assert instances.nspawn_pids_of(ENV)


@pytest.mark.local
def test_control_paths_refused_and_the_environment_still_there(lab):
    state_dir, api = lab
    ec2 = ec2_client(api.endpoint, api.access_key_id, api.secret_access_key)
    vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    assert http_status(api.endpoint + "/moto-api/data.json") == 403
    assert http_status(api.endpoint + "/moto-api/reset", "POST", b"") == 403
    assert {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]} == vpcs
    daemon.wait_settled(state_dir, timeout=30)
    assert instances.nspawn_pids_of(ENV), "the containers went away"


@pytest.mark.local
def test_stop_leaves_no_mount_namespace_or_container(lab):
    state_dir, _ = lab
    (state_dir / "notes.txt").write_text("a file the lab did not write\n")
    daemon.stop(ENV, state_dir, progress=print)
    assert not netns.mounts_under(state_dir)
    assert not netns.list_ns(names.netns_prefix(ENV))
    assert not instances.nspawn_pids_of(ENV)
    assert daemon.status(ENV, state_dir) is None
    assert (state_dir / "notes.txt").exists(), "stop deleted a file it did not make"
    assert not (state_dir / daemon.STATE_FILE).exists()
