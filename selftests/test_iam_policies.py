"""examples/iam/: every API action the project makes is allowed by the policy for that job, and the
check-only policy allows no change at all.

Each command runs as a user runs it, against moto server (behind the realism layer) on 127.0.0.1,
with the test-only recorder (selftests/faults.py, loaded through selftests/faultsite only in these
processes) logging every API call at botocore's before-call: a full `up`, a check-only run, a check
with --allow-disruptive (the web server stopped and started), `down`, and `sweep`. The policies'
Allow statements are then evaluated for each action (IAM's action matching: case-insensitive, `*`
and `?` wildcards). Conditions and resources are not evaluated here (moto doesn't enforce IAM):
examples/iam/README.md says which statements are narrowed by tags, and why not the others.
"""
from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import botocore.session
import pytest

from selftests.moto_server import REPO, check_suite, nothing_left, provision, up_args

POLICIES = REPO / "examples" / "iam"
READ_ONLY = ("Describe", "Get", "List")
# Actions a policy lists that the recorded runs don't make, and when the project does make them.
NOT_RECORDED = {
    "provisioning.json": {
        "ec2:ReplaceRoute": "up of an environment whose default route points elsewhere (a drift repaired)",
        "ec2:CreateTags": "tag-on-create: EC2 authorizes the TagSpecifications of every create call with it",
    },
    "sweep.json": {
        "ec2:DeleteNatGateway": "an environment whose up never reached the article's last step (NAT gateway deleted)",
    },
    "check-only.json": {},
    "security-hub.json": {
        "securityhub:BatchUpdateFindings": "a finding that existed before its waiver (suppressed), or whose waiver "
                                           "expired (reopened); moto lacks the call, test_results_security_hub.py "
                                           "proves it with botocore's Stubber",
    },
}
# Calls IAM never refuses, so no policy names them.
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}


def policy(name: str) -> dict:
    return json.loads((POLICIES / name).read_text())


def allowed(doc: dict, action: str) -> bool:
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow", "the examples only allow"
        patterns = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns):
            return True
    return False


def listed(doc: dict) -> list[str]:
    return [a for s in doc["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]


def actions(log: Path) -> set[str]:
    """IAM action names of every API call in a recorder log ("service.Operation" -> "service:Operation")."""
    found = set()
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "call":
            service, _, operation = parts[3].partition(".")
            found.add(f"{service}:{operation}")
    return found


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, realistic_server):
    """{job: set of actions} from one run of each command (one account, reset first)."""
    aws = realistic_server
    aws.reset()
    tmp = tmp_path_factory.mktemp("iam")
    state, logs = tmp / "state", {}

    def rec(name: str) -> dict:
        logs[name] = tmp / f"{name}.log"
        return {"log": str(logs[name])}

    up = provision(aws, state, *up_args("iam"), faults=rec("up"))
    assert up.returncode == 0, up.stderr[-3000:]
    check = check_suite(aws, tmp, "--env", "iam", "--state-dir", str(state), faults=rec("check-only"))
    assert "Traceback" not in check.stdout + check.stderr and check.returncode in (0, 1, 6), check.stdout[-3000:]
    # --stage installing: the NAT gateway's checks are violated (up deleted it), so there are findings to import.
    hub = check_suite(aws, tmp, "--env", "iam", "--state-dir", str(state), "--security-hub", "--stage", "installing",
                      faults=rec("check --security-hub"))
    assert "Traceback" not in hub.stdout + hub.stderr and "findings imported" in hub.stdout, hub.stdout[-3000:]
    disruptive = check_suite(aws, tmp, "--env", "iam", "--state-dir", str(state), "--allow-disruptive",
                             faults=rec("check --allow-disruptive"))
    assert "Traceback" not in disruptive.stdout and disruptive.returncode in (0, 1, 6), disruptive.stdout[-3000:]
    # A fleet run that assumes each member's check-only role (here the same account's, as moto's STS has it).
    fleet = tmp / "iam.fleet.yml"
    fleet.write_text(f"- env: iam\n  region: us-east-1\n  role_arn: {FLEET_MEMBER_ROLE}\n")
    member = check_suite(aws, tmp, f"--fleet={fleet}", faults=rec("fleet check-only, assuming a role"))
    assert "Traceback" not in member.stdout and member.returncode in (0, 1), member.stdout[-3000:]
    down = provision(aws, state, "down", "--env", "iam", faults=rec("down"))
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
    assert provision(aws, tmp / "old", *up_args("iamold")).returncode == 0
    sweep = provision(aws, tmp / "old", "sweep", "--older-than", "0m", faults=rec("sweep"))
    assert sweep.returncode == 0 and "env iamold: removed" in sweep.stdout, sweep.stdout[-2000:] + sweep.stderr[-2000:]
    assert not nothing_left(aws), nothing_left(aws)
    found = {name: actions(path) for name, path in logs.items()}
    for name, acts in found.items():
        assert acts, f"nothing recorded for {name}"
    return found


# Every API drift, in an order one environment survives: the NAT gateway's own while it lives, the
# ones that can't be reverted after, igw-detached once the NAT gateway (whose address EC2 can't
# unmap) is gone.
NEED_THE_NAT = ("nat-gateway-deleted",)
LAST = ("igw-detached", "db-in-public-subnet", "private-subnet-replaced", "foreign-subnet-blocks-teardown")


@pytest.fixture(scope="module")
def drifts_recorded(tmp_path_factory, realistic_server) -> set[str]:
    """The actions of every API drift applied (and reverted, where it can be) on the aws target."""
    from awsenv.environment import Environment
    from awsenv.provisioning import drifts
    from awsenv.provisioning.provisioner import Provisioner
    from selftests.test_aws_target import in_process_target

    aws = realistic_server
    aws.reset()
    api = [d for d in drifts.CATALOGUE if not d.needs_hosts]
    order = ([d for d in api if d.revert and d.name not in LAST] + [d for d in api if d.name in NEED_THE_NAT]
             + [d for d in api if not d.revert and d.name not in LAST + NEED_THE_NAT]
             + [drifts.BY_NAME[name] for name in LAST])
    assert sorted(d.name for d in order) == sorted(d.name for d in api)
    with pytest.MonkeyPatch.context() as mp:
        target, settings = in_process_target(aws, mp, tmp_path_factory.mktemp("drifts"), env="iamdrift")
        Provisioner(target, settings, progress=lambda m: None).up()        # the NAT gateway kept
        target.api_calls.clear()
        env = Environment(target)
        for drift in order:
            drifts.apply_drift(drift.name, env)
            if drift.revert:
                drifts.revert_drift(drift.name, env)
        made = {k.replace(".", ":", 1) for k in target.api_calls}
        # The foreign subnet is nobody's: it goes by hand, then the environment by `down`.
        ec2 = aws.truth().ec2()
        for sn in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [env.snapshot().vpc.id]}])["Subnets"]:
            if not sn.get("Tags"):
                ec2.delete_subnet(SubnetId=sn["SubnetId"])
        from awsenv.provisioning import teardown

        assert not teardown.down(target, settings, progress=lambda m: None)
    assert not nothing_left(aws), nothing_left(aws)
    return made


def test_every_action_the_drifts_make_is_allowed_by_the_drifts_policy(drifts_recorded):
    doc = policy("drifts.json")
    refused = sorted(a for a in drifts_recorded if a not in ALWAYS_ALLOWED and not allowed(doc, a))
    assert not refused, f"drifts.json does not allow what the drifts call: {refused}"
    mutations = {a for a in drifts_recorded if not a.split(":")[1].startswith(READ_ONLY)}
    assert {"ec2:DeleteRoute", "ec2:ModifyInstanceMetadataOptions", "ec2:ModifyInstanceAttribute",
            "ec2:CreateTags", "ec2:DisassociateAddress", "ec2:DetachInternetGateway"} <= mutations, sorted(mutations)


def test_the_drifts_policy_lists_only_what_the_drifts_make(drifts_recorded):
    unused = [a for a in listed(policy("drifts.json")) if "*" not in a and a not in drifts_recorded]
    assert not unused, f"drifts.json names actions no drift makes: {unused}"


JOBS = [("up", "provisioning.json"), ("check --allow-disruptive", "provisioning.json"), ("down", "provisioning.json"),
        ("check-only", "check-only.json"), ("sweep", "sweep.json"),
        ("check --security-hub", "check-only.json+security-hub.json"),
        ("fleet check-only, assuming a role", "fleet-scanner.json+check-only.json")]
FLEET_MEMBER_ROLE = "arn:aws:iam::123456789012:role/twotier-check-only"


@pytest.mark.parametrize("job,names", JOBS, ids=[j for j, _ in JOBS])
def test_every_action_a_job_makes_is_allowed_by_its_policy(recorded, job, names):
    docs = [policy(n) for n in names.split("+")]
    refused = sorted(a for a in recorded[job] if a not in ALWAYS_ALLOWED and not any(allowed(d, a) for d in docs))
    assert not refused, f"{names} does not allow what `{job}` calls: {refused}"


def test_the_security_hub_job_imports_and_reads_back_and_changes_no_environment(recorded):
    made = recorded["check --security-hub"]
    assert {"securityhub:GetFindings", "securityhub:BatchImportFindings"} <= made, sorted(made)
    assert {a for a in made if a.startswith("ec2:")} <= recorded["check-only"], "--security-hub made other EC2 calls"


def test_the_security_hub_policy_allows_findings_only():
    doc = policy("security-hub.json")
    assert all(a.startswith("securityhub:") and "*" not in a for a in listed(doc)), listed(doc)
    resources = {s["Resource"] for s in doc["Statement"]}
    assert resources == {"arn:aws:securityhub:*:*:product/*/default", "arn:aws:securityhub:*:*:hub/default"}


def test_the_disruptive_check_stops_and_starts(recorded):
    assert {"ec2:StopInstances", "ec2:StartInstances"} <= recorded["check --allow-disruptive"]
    assert not {"ec2:StopInstances", "ec2:StartInstances"} & recorded["check-only"]


@pytest.mark.parametrize("name", sorted(NOT_RECORDED))
def test_each_policy_lists_only_what_is_used(recorded, name):
    """Least privilege: every action a policy names (wildcards aside) is one its jobs make."""
    jobs = {"provisioning.json": ("up", "check --allow-disruptive", "down"), "sweep.json": ("sweep",),
            "check-only.json": ("check-only",), "security-hub.json": ("check --security-hub",)}[name]
    used = set().union(*(recorded[j] for j in jobs))
    unused = [a for a in listed(policy(name)) if "*" not in a and a not in used and a not in NOT_RECORDED[name]]
    assert not unused, f"{name} names actions none of {jobs} makes: {unused}"


def test_the_check_only_policy_allows_no_mutation():
    doc = policy("check-only.json")
    for action in listed(doc):
        service, _, op = action.partition(":")
        assert op.startswith(READ_ONLY), f"check-only.json names {action}: only Describe*/Get*/List* belong there"
    # And no action of EC2 or SSM that changes anything matches any of its patterns.
    session = botocore.session.get_session()
    for service in ("ec2", "ssm"):
        for op in session.get_service_model(service).operation_names:
            if not op.startswith(READ_ONLY):
                assert not allowed(doc, f"{service}:{op}"), f"check-only.json allows {service}:{op}"


def test_mutations_of_instances_are_limited_to_our_tag():
    for name in ("provisioning.json", "sweep.json", "drifts.json"):
        for statement in policy(name)["Statement"]:
            actions_ = statement["Action"]
            if {"ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"} & set(actions_):
                assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/Project": "twotier"}}, statement


def test_the_scheduled_workflow_names_the_check_only_policy():
    text = (REPO / "examples" / "scheduled-compliance.yml").read_text()
    assert "examples/iam/check-only.json" in text


def test_the_probe_instance_is_allowed_by_its_policy_beside_check_only(aws, tmp_path, monkeypatch):
    """--probe-instance (a check-only run that launches, reaches and removes a probe instance): what the
    probe instance's launch and removal call is allowed by check-only.json + probe-instance.json, and
    probe-instance.json names nothing they don't call. Recorded in-process (selftests/test_negative_probes.py
    drives the probe instance as the plugin does, the emulated EC2 having no hosts to log in to)."""
    from selftests.test_negative_probes import probe_lifecycle

    target, _, left, _ = probe_lifecycle(aws, tmp_path, monkeypatch)
    assert not left, left.lines()
    made = {name.replace(".", ":", 1) for name in target.api_calls}
    docs = [policy("check-only.json"), policy("probe-instance.json")]
    refused = sorted(a for a in made if a not in ALWAYS_ALLOWED and not any(allowed(d, a) for d in docs))
    assert not refused, f"check-only.json + probe-instance.json do not allow what --probe-instance calls: {refused}"
    unused = [a for a in listed(policy("probe-instance.json"))
              if a not in made and a != "ec2:CreateTags"]     # tag-on-create: authorized with each create call
    assert not unused, f"probe-instance.json names actions --probe-instance doesn't make: {unused}"


def test_the_probe_instance_policy_touches_only_what_carries_the_probes_tags():
    for statement in policy("probe-instance.json")["Statement"]:
        acts = set(statement["Action"])
        if acts & {"ec2:TerminateInstances", "ec2:DeleteSecurityGroup", "ec2:AuthorizeSecurityGroupIngress"}:
            assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/Project": "twotier",
                                                               "aws:ResourceTag/Role": "probe"}}, statement
        if acts == {"ec2:RunInstances"} and statement["Resource"] == "arn:*:ec2:*:*:instance/*":
            assert statement["Condition"] == {"StringEquals": {"aws:RequestTag/Project": "twotier",
                                                               "aws:RequestTag/Role": "probe"}}, statement


def test_the_fleet_scanner_may_only_assume_the_members_check_only_role(recorded):
    """The identity a fleet starts from assumes each member's role and does nothing else itself; the
    member's trust policy lets that identity (and only it) assume the role."""
    assert "sts:AssumeRole" in recorded["fleet check-only, assuming a role"]
    scanner = policy("fleet-scanner.json")
    assert listed(scanner) == ["sts:AssumeRole"], listed(scanner)
    resources = [s["Resource"] for s in scanner["Statement"]]
    assert all(fnmatch.fnmatchcase(FLEET_MEMBER_ROLE, r) for r in resources), resources
    assert not any(fnmatch.fnmatchcase(FLEET_MEMBER_ROLE.replace("check-only", "admin"), r) for r in resources)
    trust = policy("fleet-member-trust.json")
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRole" and statement["Principal"]["AWS"].endswith(":role/twotier-fleet-scanner")
