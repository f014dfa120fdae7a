"""What a scheduled compliance job sees (examples/scheduled-compliance.yml), and the sweep behind it.

Check-only runs on the aws target: a good environment exits 0, a drifted one 1 (out of
compliance), one that can't be found 6 (could not check), so a scheduler can tell "fix the
environment" from "fix the job". A check-only run proves the finished stage by default (the NAT
gateway deleted, as `up` leaves it); one still running is a finding with its cost, unless the run
says --stage installing. `provision.py sweep --older-than` removes what runs left behind.
"""
from __future__ import annotations

import datetime as dt

import pytest

from awsenv.errors import EnvError
from awsenv.provisioning.sweep import parse_duration
from selftests.moto_server import check_suite, nothing_left, provision, up_args

# Tests spread over the workers (selftests/conftest.py):
# each test builds in its own tmp state dir on the worker's own moto server.
SPREAD_ACROSS_WORKERS = True


def test_check_only_exit_status_tells_drift_from_could_not_check(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("sched")).returncode == 0

    good = check_suite(aws, tmp_path, "--env", "sched", "--state-dir", str(state))
    assert good.returncode == 0, good.stdout[-2000:]

    missing = check_suite(aws, tmp_path, "--env", "nosuchenv", "--state-dir", str(tmp_path / "none"))
    assert missing.returncode == 6, f"expected 6 (could not check), found {missing.returncode}\n{missing.stdout[-2000:]}"
    assert "could not check: no instance matches tag Env=nosuchenv" in missing.stdout

    drift = provision(aws, state, "drift", "public-default-route-removed", "--env", "sched")
    assert drift.returncode == 0, drift.stderr
    drifted = check_suite(aws, tmp_path, "--env", "sched", "--state-dir", str(state))
    assert drifted.returncode == 1, f"expected 1 (out of compliance), found {drifted.returncode}\n{drifted.stdout[-2000:]}"
    # Check-only never changes the environment: the drift is still there, nothing torn down.
    again = check_suite(aws, tmp_path, "--env", "sched", "--state-dir", str(state))
    assert again.returncode == 1
    assert provision(aws, state, "down", "--env", "sched").returncode == 0
    assert not nothing_left(aws)


def test_a_nat_gateway_left_running_is_a_finding_unless_the_stage_is_installing(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("stay"), "--keep-nat").returncode == 0
    finished = check_suite(aws, tmp_path, "--env", "stay", "--state-dir", str(state))
    assert finished.returncode == 1, finished.stdout[-2000:]
    assert "expected no NAT gateway alive after the article's last step" in finished.stdout
    assert "$0.045/hour" in finished.stdout, finished.stdout[-2000:]
    installing = check_suite(aws, tmp_path, "--env", "stay", "--state-dir", str(state), "--stage", "installing")
    assert installing.returncode == 0, installing.stdout[-2000:]
    assert provision(aws, state, "down", "--env", "stay").returncode == 0


def test_hardening_is_advisory_unless_enforced(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("hard")).returncode == 0
    assert provision(aws, state, "drift", "imdsv1-allowed", "--env", "hard").returncode == 0
    advisory = check_suite(aws, tmp_path, "--env", "hard", "--state-dir", str(state))
    assert advisory.returncode == 0, advisory.stdout[-2000:]
    assert "advisory" in advisory.stdout and "expected IMDSv2 required" in advisory.stdout
    enforced = check_suite(aws, tmp_path, "--env", "hard", "--state-dir", str(state), "--hardening=enforce")
    assert enforced.returncode == 1, enforced.stdout[-2000:]
    assert provision(aws, state, "down", "--env", "hard").returncode == 0


@pytest.mark.parametrize("text,expected", [("30m", dt.timedelta(minutes=30)), ("2h", dt.timedelta(hours=2)),
                                           ("1d", dt.timedelta(days=1)), ("1h30m", dt.timedelta(minutes=90))])
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "2", "2x", "h", "-1h", "1.5h"])
def test_bad_durations(text):
    with pytest.raises(EnvError, match="bad --older-than"):
        parse_duration(text)


def _retag(aws, env, key, value):
    ec2 = aws.ec2()
    ids = [v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "tag:Env", "Values": [env]}])["Vpcs"]]
    ec2.create_tags(Resources=ids, Tags=[{"Key": key, "Value": value}])


def test_sweep_removes_old_and_expired_environments_only(aws, tmp_path):
    for env in ("old", "expired", "fresh"):
        # --keep-nat: the billed NAT gateway and its Elastic IP stay, so the sweep must name them first.
        assert provision(aws, tmp_path / env, *up_args(env), "--keep-nat").returncode == 0
    now = dt.datetime.now(dt.UTC)
    _retag(aws, "old", "CreatedAt", (now - dt.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _retag(aws, "expired", "ExpiresAt", (now - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    # Not ours: same Env tag style, no Project tag. The sweep must never touch it.
    foreign = aws.ec2().create_vpc(CidrBlock="10.8.0.0/16", TagSpecifications=[{
        "ResourceType": "vpc", "Tags": [{"Key": "Env", "Value": "old"}, {"Key": "CreatedAt", "Value": "2000-01-01T00:00:00Z"}]}])
    foreign_id = foreign["Vpc"]["VpcId"]

    swept = provision(aws, tmp_path / "fresh", "sweep", "--older-than", "2h")
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    out = swept.stdout
    assert "env old: created 3h00m ago" in out and "env expired: expired at" in out, out
    assert "env fresh: kept (not due yet)" in out, out
    for env in ("old", "expired"):
        block = out.split(f"env {env}: ")[1]
        listed = [line.split()[0] for line in block.splitlines()[1:] if line.startswith("  ") and
                  line.split()[0] in ("nat-gateway", "elastic-ip", "instance", "vpc")]
        assert listed[:3] == ["nat-gateway", "elastic-ip", "elastic-ip"], f"expected NAT and EIPs first: {listed}"
        assert "$0.045/hour" in block and "$0.005/hour" in block
        assert f"env {env}: removed 14 resources" in out

    left_vpcs = {v["VpcId"]: {t["Key"]: t["Value"] for t in v.get("Tags", [])}
                 for v in aws.ec2().describe_vpcs()["Vpcs"] if not v.get("IsDefault")}
    assert foreign_id in left_vpcs, "the sweep removed a VPC that is not ours"
    assert sorted(t.get("Env") for t in left_vpcs.values()) == ["fresh", "old"], left_vpcs
    assert provision(aws, tmp_path / "fresh", "down", "--env", "fresh").returncode == 0


def test_scheduled_compliance_workflow_is_check_only():
    import yaml

    from selftests.moto_server import REPO

    text = (REPO / "examples" / "scheduled-compliance.yml").read_text()
    wf = yaml.safe_load(text)
    on = wf.get("on", wf.get(True))
    assert on["schedule"][0]["cron"], "expected a cron schedule"
    assert wf["jobs"]["check"]["permissions"]["id-token"] == "write", "expected OIDC (id-token: write)"
    steps = wf["jobs"]["check"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("aws-actions/configure-aws-credentials") for u in uses)
    assert any(u.startswith("actions/upload-artifact") and s["with"]["path"] == "reports/" and s["if"] == "always()"
               for u, s in zip(uses, steps, strict=True))
    run = next(s["run"] for s in steps if s.get("id") == "check")
    assert "--provision" not in run and "--allow-disruptive" not in run and "not disruptive" in run
    assert "--hardening=enforce" in run, "expected the scheduled job to count hardening findings"
    assert "1)" in run and "6)" in run, "expected the summary to tell out of compliance (1) from could not check (6)"
    # History: the results of earlier runs come from the cache and go back to it, even after a failure.
    assert "--history=.compliance-history" in run
    restore = next(s for u, s in zip(uses, steps, strict=True) if u.startswith("actions/cache/restore"))
    save = next(s for u, s in zip(uses, steps, strict=True) if u.startswith("actions/cache/save"))
    assert restore["with"]["path"] == save["with"]["path"] == ".compliance-history" and save["if"] == "always()"
    assert steps.index(restore) < steps.index(next(s for s in steps if s.get("id") == "check")) < steps.index(save)
