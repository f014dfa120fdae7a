"""The one retry primitive (awsenv/retries.py), on a target's own client, with EC2's answers stubbed at
botocore's before-send (nothing is sent anywhere): what is retried, for how long, what each retry
says, and the target's memory of what it made (created, seen, in doubt)."""
from __future__ import annotations

import time

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError

from awsenv.targets import make_target

FRESH_VPC = "vpc-0123456789abcdef0"
OLD_VPC = "vpc-0fedcba9876543210"


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def _error(code: str, message: str = "injected", status: int = 400) -> tuple[int, bytes]:
    return status, (f'<?xml version="1.0"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>'
                    "</Error></Errors><RequestID>test</RequestID></Response>").encode()


OK = {
    "DescribeVpcs": '<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><vpcSet/></DescribeVpcsResponse>',
    "StartInstances": '<StartInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><instancesSet/>'
                      '</StartInstancesResponse>',
    "DeleteSubnet": '<DeleteSubnetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><return>true</return>'
                    '</DeleteSubnetResponse>',
    "CreateVpc": f'<CreateVpcResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><vpc><vpcId>{FRESH_VPC}</vpcId>'
                 '</vpc></CreateVpcResponse>',
    "ReleaseAddress": '<ReleaseAddressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><return>true</return>'
                      '</ReleaseAddressResponse>',
    "DescribeAddresses": '<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><addressesSet>'
                         '<item><allocationId>eipalloc-0123456789abcdef0</allocationId></item></addressesSet>'
                         '</DescribeAddressesResponse>',
}


@pytest.fixture
def target(monkeypatch, tmp_path):
    """An aws target whose client never sends: `script[Operation]` lists its answers, in turn (an error
    code, or "ok"; an empty list answers ok), and `sent` counts the attempts."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    t = make_target({"target": "aws", "region": "us-east-1", "state_dir": str(tmp_path)})
    t.retry_first, t.poll_delay = 0.02, 0.05
    t.script, t.sent, t.said = {}, [], []
    t.retries.say = t.said.append

    def send(request, event_name, **_):
        op = event_name.rsplit(".", 1)[1]
        t.sent.append(op)
        answers = t.script.get(op, [])
        answer = answers.pop(0) if answers else "ok"
        if answer == "ok":
            return AWSResponse(request.url, 200, {}, _Raw(OK[op].encode()))
        status, body = _error(*answer) if isinstance(answer, tuple) else _error(answer)
        return AWSResponse(request.url, status, {}, _Raw(body))

    t.ec2.meta.events.register("before-send.ec2", send)
    return t


def test_a_not_found_for_a_just_created_id_is_retried_until_the_deadline_each_retry_said(target):
    target.recent.created(FRESH_VPC)
    target.consistency_timeout = 0.5
    target.script["DescribeVpcs"] = [("InvalidVpcID.NotFound", f"The vpc ID '{FRESH_VPC}' does not exist")] * 1000
    start = time.monotonic()
    with pytest.raises(ClientError, match="InvalidVpcID.NotFound"):
        target.ec2.describe_vpcs(VpcIds=[FRESH_VPC])
    assert 0.5 <= time.monotonic() - start < 1.5
    assert len(target.sent) >= 5
    # One line per retry, naming what it waits for and when it gives up.
    assert len(target.said) == len(target.sent) - 1, target.said
    assert f"DescribeVpcs: InvalidVpcID.NotFound, waiting for {FRESH_VPC} to propagate" in target.said[0]
    assert "gives up" in target.said[0]


def test_a_just_created_id_that_shows_is_seen_and_its_not_found_is_then_an_answer(target):
    target.recent.created(FRESH_VPC)
    target.script["DescribeVpcs"] = ["InvalidVpcID.NotFound", "InvalidVpcID.NotFound", "ok"]
    target.ec2.describe_vpcs(VpcIds=[FRESH_VPC])
    assert target.sent == ["DescribeVpcs"] * 3
    assert not target.recent.is_fresh(FRESH_VPC), "named by a call that succeeded: it has propagated"
    target.script["DescribeVpcs"] = ["InvalidVpcID.NotFound"]
    with pytest.raises(ClientError, match="InvalidVpcID.NotFound"):
        target.ec2.describe_vpcs(VpcIds=[FRESH_VPC])
    assert len(target.sent) == 4


@pytest.mark.parametrize("vpc,code", [(OLD_VPC, "InvalidVpcID.NotFound"), (FRESH_VPC, "UnauthorizedOperation")])
def test_any_other_answer_is_final_at_once(target, vpc, code):
    target.recent.created(FRESH_VPC)
    target.script["DescribeVpcs"] = [(code, f"The vpc ID '{vpc}' does not exist")] * 10
    with pytest.raises(ClientError, match=code):
        target.ec2.describe_vpcs(VpcIds=[vpc, FRESH_VPC])
    assert target.sent == ["DescribeVpcs"] and not target.said


def test_an_instance_mid_state_change_is_waited_out_for_start_and_stop_only(target):
    target.script["StartInstances"] = ["IncorrectInstanceState", "IncorrectInstanceState", "ok"]
    target.ec2.start_instances(InstanceIds=["i-0123456789abcdef0"])
    assert target.sent == ["StartInstances"] * 3
    target.state_change_timeout = 0.2
    target.script["StartInstances"] = ["IncorrectInstanceState"] * 1000
    with pytest.raises(ClientError, match="IncorrectInstanceState"):
        target.ec2.start_instances(InstanceIds=["i-0123456789abcdef0"])
    target.script["DeleteSubnet"] = ["IncorrectInstanceState"]
    with pytest.raises(ClientError, match="IncorrectInstanceState"):
        target.ec2.delete_subnet(SubnetId="subnet-0123456789abcdef0")
    assert target.sent[-1:] == ["DeleteSubnet"] and target.sent.count("DeleteSubnet") == 1


def test_still_in_use_is_waited_out_only_inside_a_dependency_scope_with_one_deadline(target):
    target.script["DeleteSubnet"] = ["DependencyViolation"]
    with pytest.raises(ClientError, match="DependencyViolation"):
        target.ec2.delete_subnet(SubnetId="subnet-0123456789abcdef0")
    assert target.sent == ["DeleteSubnet"], "outside a teardown, DependencyViolation is an answer"
    target.script["DeleteSubnet"] = ["DependencyViolation"] * 2
    with target.retries.waiting_out_dependencies(5):
        target.ec2.delete_subnet(SubnetId="subnet-0123456789abcdef0")
    assert target.sent.count("DeleteSubnet") == 4
    # One deadline for the whole scope: the second call gets what is left of it, not a new one.
    target.script["DeleteSubnet"] = ["DependencyViolation"] * 1000
    start = time.monotonic()
    with target.retries.waiting_out_dependencies(0.6):
        with pytest.raises(ClientError):
            target.ec2.delete_subnet(SubnetId="subnet-0123456789abcdef0")
        with pytest.raises(ClientError):
            target.ec2.delete_subnet(SubnetId="subnet-0123456789abcdef0")
    assert 0.6 <= time.monotonic() - start < 1.4


def test_a_release_refused_while_the_address_is_held_or_still_listed_is_retried(target):
    target.script["ReleaseAddress"] = ["InvalidIPAddress.InUse", "AuthFailure", "InvalidNetworkInterfaceID.NotFound",
                                       "InvalidAllocationID.NotFound"]
    with target.retries.waiting_out_dependencies(5):
        target.ec2.release_address(AllocationId="eipalloc-0123456789abcdef0")
    assert target.sent == ["ReleaseAddress"] * 4 + ["DescribeAddresses", "ReleaseAddress"], target.sent


def test_create_calls_are_in_doubt_until_answered_and_what_they_made_is_fresh(target):
    target.ec2.create_vpc(CidrBlock="10.0.0.0/16")
    assert target.recent.is_fresh(FRESH_VPC) and target.recent.in_doubt_since() is None
    # A 5xx then the answer: the first attempt may have made something its answer doesn't name.
    target.script["CreateVpc"] = [("InternalError", "injected", 500), "ok"]
    target.ec2.create_vpc(CidrBlock="10.0.0.0/16")
    assert target.recent.in_doubt_since() is not None


def test_a_filtered_describe_that_succeeds_does_not_make_an_id_seen(target):
    """A filter never answers NotFound (it lists nothing): its success says nothing of calls naming the
    ID. A teardown once read its DescribeSecurityGroups by group-id as "propagated", then took
    DeleteSecurityGroup's InvalidGroup.NotFound as "already gone" and left the group."""
    target.recent.created(FRESH_VPC)
    target.ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [FRESH_VPC]}])
    assert target.recent.is_fresh(FRESH_VPC)
