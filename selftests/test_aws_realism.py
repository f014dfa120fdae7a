"""The aws target against EC2's answers (the realism layer, emulator/realism/): each rule fires
(its count of injected answers grows) and the code survives it.

A full up / check (with --allow-disruptive) / down against moto behind the layer; then, one by
one, the answers that used to leave things behind or fail: a NotFound right after a create taken
as "already gone", botocore's instance_terminated waiter failing on `pending`, an internet gateway
that won't detach while addresses are mapped, interfaces that linger, a teardown stopped by one
failure; the zone chosen among standard zones that offer the type; another team's instance with
our Env/Role tags (never touched, never realised by the lab); every partition's regions; polling
as a target decision.
Run: python3 -m pytest -c selftests/pytest.ini selftests/test_aws_realism.py -q -s (-s prints the counts)
"""
from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from awsenv import consistency, waits
from awsenv.errors import EnvError
from awsenv.provisioning import kinds, teardown
from awsenv.provisioning.provisioner import Provisioner
from awsenv.targets import make_target, target_class
from emulator import realism
from selftests.moto_server import (
    ADMIN,
    account_state,
    check_suite,
    nothing_left,
    provision,
    realism_rates,
    realism_timings,
    stderr_lines,
    up_args,
)
from selftests.test_aws_target import in_process_target

# Tests spread over the workers (selftests/conftest.py):
# each test builds on the worker's own realistic server (its timings are that worker's).
SPREAD_ACROSS_WORKERS = True


@pytest.fixture(autouse=True)
def _layer_on(realistic_server):
    if not realistic_server.layer.enabled:
        pytest.skip("the realism layer is switched off (TWOTIER_EMULATOR_REALISM=off)")


def grown(before: dict, after: dict) -> dict[str, int]:
    return {rule: after[rule] - before[rule] for rule in realism.RULES}


def until_ok(call, timeout: float = 10.0):
    """call() again while the emulated EC2 still answers that what the test just made doesn't exist (the
    test's own clients are plain boto3: the target's retries, awsenv/retries.py, are not on them)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError as exc:
            if consistency.error_code(exc) not in consistency.NOT_FOUND_AFTER_CREATE or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# -- the whole cycle ---------------------------------------------------------------------------------

def test_up_check_down_meet_every_rule_and_leave_nothing(aws, tmp_path):
    state = tmp_path / "state"
    counts: dict[str, dict[str, int]] = {}
    before = aws.counts()
    # The answers EC2 gives only now and then, given every time.
    with realism_rates(aws, listing_lag=1.0, nat_release_lag=1.0):
        up = provision(aws, state, *up_args("real"))
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
    counts["up"], before = grown(before, aws.counts()), aws.counts()

    checks = check_suite(aws, tmp_path, "--env", "real", "--state-dir", str(state), "--allow-disruptive")
    # 6 ("not checked") is what moto's loopback addresses leave: the site can't be probed from here.
    assert checks.returncode in (0, 6) and " 0 violated" in checks.stdout, checks.stdout[-4000:]
    assert "Traceback" not in checks.stdout + checks.stderr
    counts["check --allow-disruptive"], before = grown(before, aws.counts()), aws.counts()

    down = provision(aws, state, "down", "--env", "real")
    assert down.returncode == 0 and "nothing left" in down.stdout, down.stdout[-2000:] + down.stderr[-2000:]
    counts["down"] = grown(before, aws.counts())
    assert not nothing_left(aws), f"left after down (or another team's instance touched): {nothing_left(aws)}"

    counts["total"] = {rule: sum(c[rule] for c in counts.values()) for rule in realism.RULES}
    (tmp_path / "realism-counts.json").write_text(json.dumps(counts, indent=1))
    print("\ninjected answers by rule in one up / check --allow-disruptive / down:")
    for phase, by_rule in counts.items():
        print(f"  {phase:<26} " + ", ".join(f"{rule} {n}" for rule, n in by_rule.items()))
    total = counts["total"]
    # listing-lag, nat-gateway-eni and nat-gateway-eip fire only when a call falls in their short
    # windows: their own tests below meet them for certain.
    for rule in ("eventual-consistency", "nat-gateway-states", "route-blackhole", "instance-states", "zones",
                 "others-instances"):
        assert total[rule] > 0, f"expected the rule {rule} to fire in a full cycle: {counts}"
    assert counts["check --allow-disruptive"]["instance-states"] > 0, "expected stopping/pending in the stop/start check"


# -- eventual consistency: a NotFound right after a create is "not yet" ---------------------------------

def test_a_not_found_right_after_create_is_not_taken_as_already_gone(aws, monkeypatch, tmp_path):
    """A trial once left a VPC behind: a rollback right after a create looked the new ID up, got
    NotFound and took it as gone. Now the ID (this process made it) is retried until it shows."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    p = Provisioner(target, settings, progress=lambda m: None)
    p.check_inputs()
    p.ensure_vpc()
    with realism_timings(aws, consistency=2.0), realism_rates(aws, listing_lag=1.0):
        group = p._call("create security group", p.ec2.create_security_group, GroupName="fresh", Description="fresh",
                        VpcId=p.b.vpc_id, TagSpecifications=p._tags("security-group", settings.env, "web-sg"))
        p._made("security-group", group["GroupId"])
        with aws.paused():
            # What the old teardown saw: "not found", i.e. "already gone" (a plain client: the
            # target's own would wait for it to show).
            assert kinds.lookup(aws.ec2(), "security-group", group["GroupId"]) == []
        before = aws.counts()
        said: list[str] = []
        left = teardown.down(target, settings, progress=said.append, only=p.made_here)
    assert not left, left.lines()
    assert grown(before, aws.counts())["eventual-consistency"] > 0, "expected NotFound answers during the rollback"
    assert grown(before, aws.counts())["listing-lag"] > 0, "expected the new group left out of the listing"
    assert not nothing_left(aws), nothing_left(aws)


def test_calls_naming_a_new_id_are_retried_and_others_are_not(aws, monkeypatch, tmp_path):
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    p = Provisioner(target, settings, progress=lambda m: None)
    p.check_inputs()
    p.ensure_vpc()
    before = aws.counts()
    with realism_timings(aws, consistency=1.0):
        p.ensure_subnets()
        p.ensure_internet_gateway()       # attach: the new gateway's ID, retried until it shows
        p.ensure_public_route_table()     # route and association: the new table's ID
        p.ensure_security_groups()        # ingress rules: the new groups' IDs
    assert grown(before, aws.counts())["eventual-consistency"] > 0
    # A NotFound for an ID this process didn't just create is an answer, raised at once.
    start = time.monotonic()
    with pytest.raises(EnvError, match="InvalidInternetGatewayID.NotFound"):
        p._call("attach", p.ec2.attach_internet_gateway, InternetGatewayId="igw-0123456789abcdef0", VpcId=p.b.vpc_id)
    assert time.monotonic() - start < 2
    teardown.down(target, settings, progress=lambda m: None)
    assert not nothing_left(aws), nothing_left(aws)


def test_a_nat_gateway_whose_address_has_not_propagated_is_retried(aws, monkeypatch, tmp_path):
    """CreateNatGateway right after AllocateAddress answers InvalidElasticIpID.NotFound
    (terraform-provider-aws #27087): the allocation is this process's own, so `up` retries it
    instead of rolling the whole build back."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    p = Provisioner(target, settings, progress=lambda m: None)
    p.check_inputs()
    for step in (p.ensure_vpc, p.ensure_subnets, p.ensure_internet_gateway):
        step()
    before = aws.layer.counts.by_action()["eventual-consistency"].get("CreateNatGateway", 0)
    with realism_timings(aws, consistency=1.0):
        p.ensure_nat_gateway()
    assert aws.layer.counts.by_action()["eventual-consistency"].get("CreateNatGateway", 0) > before
    assert p.b.nat_id.startswith("nat-")
    assert not teardown.down(target, settings, progress=lambda m: None)
    assert not nothing_left(aws), nothing_left(aws)


def test_a_nat_gateway_deleted_right_after_its_create_call_is_deleted_not_taken_as_gone(aws, monkeypatch, tmp_path):
    """A rollback right after CreateNatGateway: the gateway shows in a tag listing while DeleteNatGateway
    naming it still answers NatGatewayNotFound (EC2's reads and writes propagate apart). The teardown
    took the listing as "propagated", the NotFound as "already gone", and left the gateway running
    (billed by the hour) while it waited for it to be deleted."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    p = Provisioner(target, settings, progress=lambda m: None)
    p.check_inputs()
    for step in (p.ensure_vpc, p.ensure_subnets, p.ensure_internet_gateway, p.ensure_nat_gateway):
        step()
    monkeypatch.setattr(kinds, "NAT_TIMEOUT", 15.0)
    target.dependency_timeout = 5.0     # what a running gateway holds won't go: fail in seconds, not minutes
    with realism_timings(aws, consistency=3.0):
        said: list[str] = []
        left = teardown.down(target, settings, progress=said.append, only=p.made_here)
    assert not any("timed out" in line for line in said), said
    assert not left and not nothing_left(aws), (left.lines(), nothing_left(aws))


# -- the article's last step: a NAT gateway's address, a blackhole, an interface that lingers ----------

def test_up_and_down_meet_every_nat_gateway_answer_at_a_high_rate(aws, tmp_path):
    """Every deleted NAT gateway's address refuses release for a moment (AuthFailure, then
    InvalidNetworkInterfaceID.NotFound: terraform-provider-aws #13763, #49299), its interface holds
    the subnet after it is gone, the private route shows `blackhole`: `up` (its last step) and `down`
    retry each within their deadline; nothing is left, nothing made twice."""
    state = tmp_path / "state"
    before = aws.counts()
    with realism_rates(aws, nat_release_lag=1.0), realism_timings(aws, eip_release_lag=1.5, nat_eni_linger=6.0):
        up = provision(aws, state, *up_args("natlag"))
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        assert "released Elastic IP" in up.stdout
        made = {k: len(v) for k, v in account_state(aws).items()}
        assert made["nat-gateway"] == 0 and made["elastic-ip"] == 1, made     # the web server's address only
        nats = aws.truth().ec2().describe_nat_gateways()["NatGateways"]
        assert len(nats) == 1, f"one NAT gateway ever made, found {[n['NatGatewayId'] for n in nats]}"
        down = provision(aws, state, "down", "--env", "natlag")
        assert down.returncode == 0 and "nothing left" in down.stdout, down.stdout[-2000:] + down.stderr[-2000:]
    fired = grown(before, aws.counts())
    assert fired["nat-gateway-eip"] > 0 and fired["nat-gateway-eni"] > 0 and fired["route-blackhole"] > 0, fired
    assert not nothing_left(aws), nothing_left(aws)


def test_a_release_not_found_that_describe_addresses_contradicts_is_not_gone(aws, monkeypatch, tmp_path):
    """teardown once took ReleaseAddress's InvalidNetworkInterfaceID.NotFound for "gone": the
    address stayed, billed. A NotFound counts only when DescribeAddresses agrees."""
    target, _ = in_process_target(aws, monkeypatch, tmp_path)
    ec2 = target.ec2
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    ec2.describe_addresses(AllocationIds=[allocation])
    answered = answers(ec2, "ReleaseAddress", ["InvalidAllocationID.NotFound", "InvalidNetworkInterfaceID.NotFound",
                                               "AuthFailure"])
    with target.retries.waiting_out_dependencies(10):
        kinds.release_address(target, allocation)
    assert answered == [], "each refusal retried"
    assert not aws.truth().ec2().describe_addresses()["Addresses"], "released, not taken for gone"
    # Truly gone (DescribeAddresses agrees): InvalidAllocationID.NotFound is an answer, at once.
    start = time.monotonic()
    with target.retries.waiting_out_dependencies(10):
        kinds.release_address(target, allocation)
    assert time.monotonic() - start < 2


def answers(client, operation: str, codes: list[str]) -> list[str]:
    """The next calls of `operation` on this client are answered with these EC2 error codes, in turn,
    before anything is sent (then the server answers again); returns the list, emptied as they go."""
    from botocore.awsrequest import AWSResponse

    left = list(codes)

    class Raw:
        def __init__(self, body):
            self.body = body

        def stream(self, **_):
            yield self.body

    def send(request, **_):
        if not left:
            return None
        body = (f"<?xml version=\"1.0\"?><Response><Errors><Error><Code>{left.pop(0)}</Code><Message>injected"
                "</Message></Error></Errors><RequestID>test</RequestID></Response>").encode()
        return AWSResponse(request.url, 400, {}, Raw(body))

    client.meta.events.register(f"before-send.ec2.{operation}", send)
    return left


def test_a_failed_last_step_keeps_the_build_names_what_is_left_and_up_completes_it(aws, tmp_path):
    """The article's last step fails hard (the release of the NAT gateway's address raises, as a
    broken network would) after a full build: the environment stays as built, what is left is named
    with its hourly cost, the exit status says it failed; `up` again completes the step without
    building anything again; `down` removes it all."""
    state = tmp_path / "state"
    up = provision(aws, state, *up_args("laststep"), faults={"raise": "OSError", "at": "ec2.ReleaseAddress#1"})
    assert up.returncode == 2 and "Traceback" not in up.stderr, up.stdout[-2000:] + up.stderr[-3000:]
    lines = stderr_lines(up)
    assert lines[0].startswith("error: the article's last step failed ([Errno 113] injected: No route to host); the "
                               "environment is kept as built"), lines
    assert any(line.startswith("elastic-ip eipalloc-") and line.endswith("still there (about $0.005/hour in us-east-1)")
               for line in lines), lines
    assert "removing what this attempt made" not in up.stderr
    kept = {k: len(v) for k, v in account_state(aws).items()}
    assert kept["instance"] == 2 and kept["vpc"] == 1 and kept["elastic-ip"] == 2 and kept["nat-gateway"] == 0, kept

    again = provision(aws, state, *up_args("laststep"))
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "the article's last step was left unfinished: completing it" in again.stdout
    assert "released Elastic IP" in again.stdout
    done = {k: len(v) for k, v in account_state(aws).items()}
    assert done == {**kept, "elastic-ip": 1}, done
    assert len(aws.truth().ec2().describe_nat_gateways()["NatGateways"]) == 1, "no NAT gateway made again"

    down = provision(aws, state, "down", "--env", "laststep")
    assert down.returncode == 0 and "nothing left" in down.stdout, down.stdout[-2000:] + down.stderr[-2000:]
    assert not nothing_left(aws), nothing_left(aws)


def test_pytest_provisions_failed_last_step_is_said_and_its_teardown_still_runs(aws, monkeypatch, tmp_path):
    """pytest --provision (in process: on moto the suite has no hosts to install): the last step fails
    hard, the run says so (the finished stage's checks are "not checked"), and the teardown at the
    end removes everything, as always."""
    from awsenv.environment import Environment
    from awsenv.lifecycle import Lifecycle
    from fixtures.lifecycle import PluginState

    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    lifecycle = Lifecycle(Environment(target, built_here=True), provision=True, progress=lambda m: None)
    Provisioner(target, settings, progress=lambda m: None).up()
    real, calls = target.ec2.release_address, []

    def broken_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OSError(113, "injected: No route to host")
        return real(**kwargs)

    monkeypatch.setattr(target.ec2, "release_address", broken_once)
    state = PluginState(lifecycle=lifecycle, stages=("installing", "finished"), stage="installing")
    state.enter_finished()
    assert state.last_step_error and "the environment is kept as built" in state.last_step_error, state
    assert state.stage == "installing"
    assert account_state(aws)["instance"], "kept as built until the teardown at the end"
    lifecycle.end()
    assert lifecycle.torn_down and not nothing_left(aws), nothing_left(aws)


# -- waiters: only "not yet" is polled; an up interrupted right after RunInstances --------------------

def test_waiter_errors_other_than_not_yet_are_fatal_at_once(aws, monkeypatch, tmp_path):
    target, _ = in_process_target(aws, monkeypatch, tmp_path)
    ec2 = target.ec2
    # An error no acceptor matches (vpc_available has none for InvalidVpcID.NotFound, which a VPC
    # created a moment ago still answers): failed at once, not polled until the deadline.
    step = waits.waiter_step(ec2, "vpc_available", "the VPC available", VpcIds=["vpc-0123456789abcdef0"])
    start = time.monotonic()
    with pytest.raises(EnvError, match="the VPC available: failed .InvalidVpcID.NotFound"):
        waits.wait_for({"the VPC available": (step, 600)}, lambda m: None, delay=5)
    assert time.monotonic() - start < 2, "a fatal waiter error must not be polled until the deadline"
    # A failure acceptor (a terminated instance will never run): failed at once too.
    vpc = until_ok(lambda: ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}]))["Vpcs"][0]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                           {"Name": "availability-zone", "Values": ["us-east-1b"]}])["Subnets"][0]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    gone = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                             SubnetId=subnet["SubnetId"])["Instances"][0]["InstanceId"]
    until_ok(lambda: ec2.terminate_instances(InstanceIds=[gone]))
    with pytest.raises(EnvError, match="failed"):
        waits.waiter_step(ec2, "instance_running", "running", InstanceIds=[gone])()
    # The waiter's own "retry" acceptor (an ID not known yet) is "not yet".
    assert waits.waiter_step(ec2, "instance_running", "x", InstanceIds=["i-0123456789abcdef0"])() is False
    # api_check: only the named codes are "not yet".
    bad = ClientError({"Error": {"Code": "AuthFailure", "Message": "no"}}, "DescribeVpcs")
    with pytest.raises(EnvError, match="AuthFailure"):
        waits.api_check(lambda: (_ for _ in ()).throw(bad), "x", consistency.NOT_FOUND_AFTER_CREATE)()
    nf = ClientError({"Error": {"Code": "InvalidVpcID.NotFound", "Message": "no"}}, "DescribeVpcs")
    assert waits.api_check(lambda: (_ for _ in ()).throw(nf), "x", consistency.NOT_FOUND_AFTER_CREATE)() is None


def test_rollback_right_after_run_instances_does_not_use_the_waiter_that_fails_on_pending(aws, monkeypatch, tmp_path):
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    p = Provisioner(target, settings, progress=lambda m: None)
    with realism_timings(aws, instance_pending=6.0):
        p.check_inputs()
        for step in (p.ensure_key_pair, p.ensure_vpc, p.ensure_subnets, p.ensure_internet_gateway,
                     p.ensure_public_route_table, p.ensure_security_groups, p.ensure_web_instance):
            step()
        state = until_ok(lambda: target.ec2.describe_instances(InstanceIds=[p.b.web_id]))
        assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "pending"
        # botocore's instance_terminated waiter has a failure acceptor for `pending`:
        with pytest.raises(EnvError, match="failed"):
            waits.waiter_step(target.ec2, "instance_terminated", "terminated", InstanceIds=[p.b.web_id])()
        before = aws.counts()
        said: list[str] = []
        left = teardown.down(target, settings, progress=said.append, only=p.made_here)
    assert not left, left.lines() + said
    assert grown(before, aws.counts())["instance-states"] > 0
    assert not nothing_left(aws), nothing_left(aws)


# -- teardown: mapped addresses, lingering interfaces, one failure ---------------------------------------

def test_internet_gateway_detach_refused_while_addresses_are_mapped_is_retried(aws, monkeypatch, tmp_path):
    """The instances take longer to terminate than the teardown's wait for them: the wait is reported
    and the teardown carries on; the internet gateway refuses to detach while the web server's
    address is still mapped, and the groups, subnets and VPC while the interfaces linger: each is
    retried until it goes, and nothing is left."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    Provisioner(target, settings, progress=lambda m: None).up()
    monkeypatch.setattr(kinds, "INSTANCE_TIMEOUT", 0.2)
    before = aws.counts()
    said: list[str] = []
    # The instances shut down for long enough that the gateway's detach still meets their mapped
    # addresses on a loaded machine (a full CI run once got there after 2.5 s), and the interfaces
    # linger well past that, so the groups' deletes meet them too.
    with realism_timings(aws, instance_shutting_down=6.0, eni_linger=10.0):
        left = teardown.down(target, settings, progress=said.append)
    assert not left, left.lines() + said
    assert any("timed out" in line for line in said), said
    fired = grown(before, aws.counts())
    assert fired["igw-mapped-addresses"] > 0 and fired["lingering-enis"] > 0, fired
    assert not nothing_left(aws), nothing_left(aws)


def test_teardown_carries_on_past_one_failure_and_says_exactly_what_is_left(aws, monkeypatch, tmp_path):
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    built = Provisioner(target, settings, progress=lambda m: None).up()
    ec2 = target.ec2
    ec2.modify_instance_attribute(InstanceId=built.db_id, DisableApiTermination={"Value": True})
    target.dependency_timeout = 2.0
    said: list[str] = []
    left = teardown.down(target, settings, progress=said.append)
    assert ("instance", built.db_id) in left.items, left.lines()
    assert any(f"could not terminate instance {built.db_id}" in line for line in said), said
    # Everything else that could go went: the web server, the NAT gateway, both addresses, the
    # public side; what is reported left is exactly what the API still lists of ours.
    for kind, rid in (("instance", built.web_id), ("nat-gateway", built.nat_id), ("internet-gateway", built.igw_id),
                      ("route-table", built.public_rt_id), ("security-group", built.web_sg_id),
                      ("subnet", built.public_subnet_id)):
        assert (kind, rid) not in left.items, f"{kind} {rid} should be gone: {left.lines()}"
    assert sorted(left.items) == sorted(teardown.leftovers(target, settings).items)
    assert all(kinds.lookup(ec2, kind, rid) for kind, rid in left.items), left.lines()
    assert any(line.startswith(f"instance {built.db_id} left behind") for line in left.lines())

    ec2.modify_instance_attribute(InstanceId=built.db_id, DisableApiTermination={"Value": False})
    assert not teardown.down(target, settings, progress=said.append)
    assert not nothing_left(aws), nothing_left(aws)


def test_teardown_walks_the_kinds_table_so_a_new_row_is_deleted(aws, monkeypatch, tmp_path):
    """teardown once named each kind in its own code: a row added to kinds.KINDS was found (and
    listed as left) but never deleted. A new row (network interfaces, before subnets) is deleted
    with nothing but the row."""
    from awsenv.provisioning import tags
    from awsenv.provisioning.ledger import Ledger

    def enis(ec2, **kw):
        return [(n["NetworkInterfaceId"], n.get("TagSet", []))
                for n in ec2.describe_network_interfaces(**kw)["NetworkInterfaces"]]
    row = kinds.Kind("network-interface", lambda ec2, f: enis(ec2, Filters=f),
                     lambda ec2, i: enis(ec2, NetworkInterfaceIds=[i]),
                     kinds.deleting("deleting network interface {}", "delete network interface {}",
                                     "delete_network_interface", "NetworkInterfaceId"))
    table = list(kinds.KINDS)
    table.insert([k.name for k in table].index("subnet"), row)
    monkeypatch.setattr(kinds, "KINDS", tuple(table))
    monkeypatch.setitem(kinds.BY_NAME, row.name, row)
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    ec2, ledger = target.ec2, Ledger(settings.state_dir)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=tags.spec("vpc", settings.env, "vpc"))["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24",
                               TagSpecifications=tags.spec("subnet", settings.env, "public"))["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet, TagSpecifications=tags.spec(
        "network-interface", settings.env, "extra"))["NetworkInterface"]["NetworkInterfaceId"]
    for kind, rid in (("vpc", vpc), ("subnet", subnet), ("network-interface", eni)):
        ledger.record(kind, rid)
    said: list[str] = []
    left = teardown.down(target, settings, progress=said.append)
    assert f"deleting network interface {eni}" in said, said
    assert not left, left.lines()
    assert not aws.truth().ec2().describe_network_interfaces(NetworkInterfaceIds=[])["NetworkInterfaces"]


def test_instances_interfaces_go_with_them(aws, monkeypatch, tmp_path):
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    built = Provisioner(target, settings, progress=lambda m: None).up()
    found = target.ec2.describe_instances(InstanceIds=[built.web_id, built.db_id])["Reservations"]
    for i in (i for r in found for i in r["Instances"]):
        assert [n["Attachment"]["DeleteOnTermination"] for n in i["NetworkInterfaces"]] == [True], i["InstanceId"]
    assert not teardown.down(target, settings, progress=lambda m: None)


# -- zones ------------------------------------------------------------------------------------------------

def test_zone_is_a_standard_zone_that_offers_the_type(aws, monkeypatch, tmp_path):
    before = aws.counts()
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    zones = [z["ZoneName"] for z in target.ec2.describe_availability_zones()["AvailabilityZones"]]
    assert zones[:2] == ["us-east-1-bos-1a", "us-east-1a"], zones      # a Local Zone first, then 1a
    assert Provisioner(target, settings, progress=lambda m: None)._first_az() == "us-east-1b"   # 1a: no t2.micro
    target, settings = in_process_target(aws, monkeypatch, tmp_path, instance_type="t3.micro")
    assert Provisioner(target, settings, progress=lambda m: None)._first_az() == "us-east-1a"
    assert grown(before, aws.counts())["zones"] > 0


def test_an_instance_type_no_zone_offers_is_one_line_before_anything_is_made(aws, tmp_path):
    up = provision(aws, tmp_path / "state", *up_args("nozone"), "--instance-type", "zz9.micro")
    lines = stderr_lines(up)
    assert up.returncode == 2 and "Traceback" not in up.stderr, up.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: instance type zz9.micro is not offered in any "
                                                   "Availability Zone of us-east-1 ("), lines
    assert "types of that size offered there: " in lines[0] and "t3.micro" in lines[0], lines[0]
    assert "us-east-1-bos-1a" not in lines[0], "a Local Zone is not a zone to build in"
    assert not nothing_left(aws) and not (tmp_path / "state" / "id_ed25519").exists()


# -- another team's instance ---------------------------------------------------------------------------------

def test_another_teams_instance_with_our_env_and_role_is_never_ours(aws, monkeypatch, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("shared")).returncode == 0
    theirs = aws.others_instances()
    assert len(theirs) == 2, "expected another team's web and db instance (Env=shared, Role=web/db, stopped)"
    again = provision(aws, state, *up_args("shared"))     # finds ours by Project+Env+Role, starts nothing
    assert again.returncode == 0 and "instance" in again.stdout, again.stderr[-2000:]
    assert not any(iid in again.stdout for iid in theirs), again.stdout
    assert provision(aws, state, "down", "--env", "shared").returncode == 0
    assert not nothing_left(aws), nothing_left(aws)       # theirs still there, still stopped
    target, settings = in_process_target(aws, monkeypatch, tmp_path, env="shared")
    assert not Provisioner(target, settings, progress=lambda m: None).exists(), "their instances are not ours"


def test_the_lab_does_not_realise_another_teams_instance(aws):
    """lab/world.py: instances and NAT gateways in the region's default VPC are not realised (that is
    where another team's instance sits); one built by hand in a VPC of its own is, whatever its tags."""
    from lab import world

    ec2 = aws.ec2()
    vpc = ec2.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
    subnet = until_ok(lambda: ec2.create_subnet(VpcId=vpc, CidrBlock="10.5.1.0/24",
                                                AvailabilityZone="us-east-1b"))["Subnet"]["SubnetId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tagged = [{"ResourceType": "instance", "Tags": [{"Key": "Env", "Value": "hand"}, {"Key": "Role", "Value": "web"}]}]
    mine = until_ok(lambda: ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                              SubnetId=subnet, TagSpecifications=tagged))["Instances"][0]["InstanceId"]
    until_ok(lambda: ec2.describe_instances(InstanceIds=[mine]))
    (theirs,) = aws.others_instances()
    w = world.read(ec2)
    assert mine in w.instances and theirs not in w.instances, sorted(w.instances)
    assert w.realised_vpcs() == [vpc]
    default = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    assert default in w.default_vpcs and default not in w.realised_vpcs()


def test_the_labs_data_plane_follows_a_blackhole_route(aws):
    """lab/world.py reads the API's `blackhole` (rule route-blackhole) as a route to nowhere, which
    the fabric writes as a blackhole (the packets don't fall through to another route)."""
    from lab import world

    ec2 = aws.ec2()
    vpc = until_ok(lambda: ec2.create_vpc(CidrBlock="10.6.0.0/16"))["Vpc"]["VpcId"]
    subnet = until_ok(lambda: ec2.create_subnet(VpcId=vpc, CidrBlock="10.6.1.0/24",
                                                AvailabilityZone="us-east-1b"))["Subnet"]["SubnetId"]
    allocation = until_ok(lambda: ec2.allocate_address(Domain="vpc"))["AllocationId"]
    nat = until_ok(lambda: ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation))["NatGateway"]["NatGatewayId"]
    rtb = until_ok(lambda: ec2.create_route_table(VpcId=vpc))["RouteTable"]["RouteTableId"]
    until_ok(lambda: ec2.create_route(RouteTableId=rtb, DestinationCidrBlock="0.0.0.0/0", NatGatewayId=nat))
    assert world.read(ec2).route_tables[rtb] == [world.Route("0.0.0.0/0", "nat", nat)]
    until_ok(lambda: ec2.delete_nat_gateway(NatGatewayId=nat))
    w = world.read(ec2)
    assert w.route_tables[rtb] == [world.Route("0.0.0.0/0", "blackhole", "")] and nat not in w.nat_gateways


# -- decisions of the target -------------------------------------------------------------------------------

@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1", "cn-north-1", "cn-northwest-1", "us-gov-west-1",
                                    "us-gov-east-1"])
def test_every_partition_passes_region_validation(region, tmp_path):
    make_target({"target": "aws", "region": region, "admin_cidr": ADMIN, "state_dir": str(tmp_path)}).check_region()


def test_an_unknown_region_is_refused(tmp_path):
    with pytest.raises(EnvError, match="unknown region 'mars-east-1'"):
        make_target({"target": "aws", "region": "mars-east-1", "state_dir": str(tmp_path)}).check_region()


def test_polling_and_retry_windows_are_the_targets(aws, monkeypatch, tmp_path):
    assert target_class("aws").poll_delay == 5.0
    assert target_class("local").poll_delay == 0.5 and target_class("moto").poll_delay == 0.5
    for name in ("aws", "local", "moto"):
        cls = target_class(name)
        assert 0 < cls.retry_first <= cls.poll_delay and cls.consistency_timeout > 0 and cls.dependency_timeout > 0
    # The provisioner's waits back off up to the target's poll_delay (here: a new instance, pending
    # for a second, is seen running in about a second and a half, not at the next 5 s poll).
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    monkeypatch.setattr(target, "poll_delay", 0.5)
    start = time.monotonic()
    Provisioner(target, settings, progress=lambda m: None).up()
    assert time.monotonic() - start < 30
    assert not teardown.down(target, settings, progress=lambda m: None)


def test_start_right_after_an_interrupted_stop_is_retried_until_stopped(aws, monkeypatch, tmp_path):
    """EC2 refuses to start an instance that is still stopping (IncorrectInstanceState); the target's
    client retries that with backoff, so the disruptive check's `finally` still starts the server."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    built = Provisioner(target, settings, progress=lambda m: None).up()
    ec2 = target.ec2
    before = aws.counts()
    with realism_timings(aws, instance_stopping=1.5):
        ec2.stop_instances(InstanceIds=[built.web_id])
        ec2.start_instances(InstanceIds=[built.web_id])      # refused while stopping, retried
    assert grown(before, aws.counts())["instance-states"] > 0
    states = ec2.describe_instances(InstanceIds=[built.web_id])["Reservations"][0]["Instances"][0]["State"]
    assert states["Name"] in ("pending", "running"), states
    assert not teardown.down(target, settings, progress=lambda m: None)
