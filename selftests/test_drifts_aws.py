"""Drifts on the aws target, against moto behind the realism layer (EC2's refusals): each applies as
EC2 allows it or is refused in one line, with nothing changed.

igw-detached: EC2 refuses DetachInternetGateway while the VPC has public addresses mapped
(DependencyViolation, emulator/realism/rules/igw_mapped_addresses.py). The drift unmaps the
instances' Elastic IPs first and maps them again on revert; a NAT gateway's address can't be
unmapped (only the gateway's deletion frees it), so while one lives the drift is refused.
"""
from __future__ import annotations

from selftests.moto_server import nothing_left, provision, stderr_lines, up_args


def _igw_and_web_address(server, env: str):
    ec2 = server.truth().ec2()
    tagged = [{"Name": "tag:Env", "Values": [env]}]
    igw = ec2.describe_internet_gateways(Filters=tagged)["InternetGateways"][0]
    web = next(i for r in ec2.describe_instances(Filters=tagged + [{"Name": "tag:Role", "Values": ["web"]}])[
        "Reservations"] for i in r["Instances"] if i["State"]["Name"] == "running")
    addresses = ec2.describe_addresses(Filters=tagged)["Addresses"]
    return igw, web, addresses


def test_igw_detached_unmaps_the_addresses_first_and_maps_them_again_on_revert(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("igw")).returncode == 0      # the last step: no NAT gateway
    applied = provision(aws, state, "drift", "igw-detached", "--env", "igw")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    igw, web, addresses = _igw_and_web_address(aws, "igw")
    assert not igw["Attachments"], igw
    assert not [a for a in addresses if a.get("AssociationId")], "the web server's Elastic IP unmapped first"

    reverted = provision(aws, state, "drift", "igw-detached", "--revert", "--env", "igw")
    assert reverted.returncode == 0, reverted.stdout[-2000:] + reverted.stderr[-2000:]
    igw, web, addresses = _igw_and_web_address(aws, "igw")
    assert [a["State"] for a in igw["Attachments"]] == ["available"], igw
    mapped = [a for a in addresses if a.get("InstanceId") == web["InstanceId"]]
    assert len(mapped) == 1, f"the web server's Elastic IP mapped again: {addresses}"
    assert not [t for a in addresses for t in a.get("Tags", []) if t["Key"].startswith("DriftUnmapped")], addresses
    assert provision(aws, state, "down", "--env", "igw").returncode == 0
    assert not nothing_left(aws), nothing_left(aws)


def test_igw_detached_while_a_nat_gateway_maps_its_address_is_refused_in_one_line(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("igwnat"), "--keep-nat").returncode == 0
    before = _igw_and_web_address(aws, "igwnat")
    refused = provision(aws, state, "drift", "igw-detached", "--env", "igwnat")
    assert refused.returncode != 0
    lines = stderr_lines(refused)
    assert len(lines) == 1 and "NAT gateway" in lines[0] and "Traceback" not in refused.stderr, refused.stderr
    igw, web, addresses = _igw_and_web_address(aws, "igwnat")
    assert igw["Attachments"] == before[0]["Attachments"], "nothing changed"
    assert sorted((a["AllocationId"], a.get("InstanceId"), a.get("NetworkInterfaceId")) for a in addresses) == sorted(
        (a["AllocationId"], a.get("InstanceId"), a.get("NetworkInterfaceId")) for a in before[2]), "nothing changed"
    assert provision(aws, state, "down", "--env", "igwnat").returncode == 0
    assert not nothing_left(aws), nothing_left(aws)


def test_a_drift_that_needs_the_nat_gateway_after_the_last_step_is_refused_in_one_line(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("nonat")).returncode == 0
    refused = provision(aws, state, "drift", "nat-gateway-deleted", "--env", "nonat")
    assert refused.returncode != 0
    lines = stderr_lines(refused)
    assert len(lines) == 1 and "NAT gateway" in lines[0] and "Traceback" not in refused.stderr, refused.stderr
    assert provision(aws, state, "down", "--env", "nonat").returncode == 0
