"""`down` deletes what is ours by proof, and never says "nothing left" while something of ours is
left (DESIGN.md, "Trust"). Ours by proof: named by the environment's ledger, or tagged with the
RunId of an `up` the ledger knows; and each is deleted only while it still carries our Project and
Env tags. The aws target against moto in server mode (with EC2's answers) on 127.0.0.1.

Reproduced once: another team overwrote `Env` on our instances; `down` released the Elastic IP,
printed "env X: nothing left", exited 0 and deleted the ledger while both instances (in the
ledger) ran on. And `down` deleted another team's resources that carried our tags.
"""
from __future__ import annotations

import json

from selftests.moto_server import nothing_left, provision, up_args

# Tests spread over the workers (selftests/conftest.py): each builds in its own tmp state dir.
SPREAD_ACROSS_WORKERS = True


def _instances(ec2, env: str) -> list[str]:
    return [i["InstanceId"] for r in ec2.describe_instances(Filters=[
        {"Name": "tag:Env", "Values": [env]}, {"Name": "instance-state-name", "Values": ["pending", "running"]}])
        ["Reservations"] for i in r["Instances"]]


def _tags(env: str, **more) -> list[dict]:
    return [{"Key": "Project", "Value": "twotier"}, {"Key": "Env", "Value": env},
            *({"Key": k, "Value": v} for k, v in more.items())]


def test_down_never_says_nothing_left_while_a_ledger_resource_runs_under_another_tag(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("moved")).returncode == 0
    ec2 = aws.ec2()
    ours = _instances(ec2, "moved")
    assert len(ours) == 2
    ec2.create_tags(Resources=ours, Tags=[{"Key": "Env", "Value": "other-team"}])

    down = provision(aws, state, "down", "--env", "moved")
    assert down.returncode == 1, down.stdout[-2000:] + down.stderr[-2000:]
    assert "nothing left" not in down.stdout, down.stdout[-2000:]
    for iid in ours:
        assert f"instance {iid} LEFT BEHIND: this environment's ledger names it, but its Env tag is now other-team" \
               in down.stderr, down.stderr
    assert (state / "ledger.jsonl").exists(), "the ledger was dropped while its instances still run"
    assert sorted(_instances(ec2, "other-team")) == sorted(ours), "an instance that is not tagged ours was touched"

    # Its tags back: the next `down` removes them, and only then is nothing left.
    ec2.create_tags(Resources=ours, Tags=[{"Key": "Env", "Value": "moved"}])
    again = provision(aws, state, "down", "--env", "moved")
    assert again.returncode == 0 and "env moved: nothing left" in again.stdout, again.stdout[-2000:] + again.stderr
    assert not (state / "ledger.jsonl").exists()
    assert not nothing_left(aws), nothing_left(aws)


def _their_tagged_resources(ec2, env: str, run_id: str | None = None) -> dict[str, str]:
    """Another team's resources that carry our Project and Env tags (and maybe a RunId), not in our ledger."""
    extra = {"RunId": run_id} if run_id else {}
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16", TagSpecifications=[
        {"ResourceType": "vpc", "Tags": _tags(env, Role="vpc", **extra)}])["Vpc"]["VpcId"]
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": _tags(env, Role="web-eip", **extra)}])["AllocationId"]
    return {"vpc": vpc, "elastic-ip": eip}


def _exists(ec2, kind: str, rid: str) -> bool:
    if kind == "vpc":
        return bool(ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [rid]}])["Vpcs"])
    return bool(ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [rid]}])["Addresses"])


def test_resources_tagged_like_ours_but_not_ours_by_proof_are_listed_and_kept(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("shared")).returncode == 0
    ec2 = aws.truth().ec2()
    theirs = _their_tagged_resources(ec2, "shared")

    down = provision(aws, state, "down", "--env", "shared")
    assert down.returncode == 1 and "nothing left" not in down.stdout, down.stdout[-2000:] + down.stderr[-2000:]
    for kind, rid in theirs.items():
        assert _exists(ec2, kind, rid), f"{kind} {rid} (not ours by proof) was deleted"
        assert f"{kind} {rid} kept" in down.stderr and "`down --include-tagged` removes it too" in down.stderr, down.stderr
    assert not _instances(ec2, "shared"), "what was ours by proof was not removed"

    # Asked for: the tag rule alone, as `sweep` applies it.
    tagged = provision(aws, state, "down", "--env", "shared", "--include-tagged")
    assert tagged.returncode == 0 and "env shared: nothing left" in tagged.stdout, tagged.stdout[-2000:] + tagged.stderr
    assert not any(_exists(ec2, kind, rid) for kind, rid in theirs.items())
    assert not nothing_left(aws), nothing_left(aws)


def test_a_run_id_the_ledger_knows_is_proof_and_another_is_not(aws, tmp_path):
    """What an `up` made but never heard back about (an interrupt, a 5xx) carries its RunId: ours.
    The same tags with a RunId the ledger doesn't know: not ours."""
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("runs")).returncode == 0
    runs = [json.loads(line)["run"] for line in (state / "ledger.jsonl").read_text().splitlines() if '"run"' in line]
    assert len(runs) == 1, (state / "ledger.jsonl").read_text()
    ec2 = aws.truth().ec2()
    lost = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": _tags("runs", Role="web-eip", RunId=runs[0])}])["AllocationId"]
    stranger = ec2.allocate_address(Domain="vpc", TagSpecifications=[
        {"ResourceType": "elastic-ip", "Tags": _tags("runs", Role="web-eip", RunId="0123456789ab")}])["AllocationId"]

    down = provision(aws, state, "down", "--env", "runs")
    assert down.returncode == 1, down.stdout[-2000:] + down.stderr[-2000:]
    assert not _exists(ec2, "elastic-ip", lost), "an address carrying this environment's RunId was left"
    assert _exists(ec2, "elastic-ip", stranger) and f"elastic-ip {stranger} kept" in down.stderr, down.stderr
    ec2.release_address(AllocationId=stranger)
