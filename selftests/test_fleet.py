"""`pytest --fleet`: many environments in one run, against moto in server mode on 127.0.0.1.

The fleet of 20 (module fixture `world`): five built by this project (`provision.py up`), one of
them in another region; twelve built by hand with plain boto3 and one with the AWS CLI
(selftests/handmade/article_by_cli.sh, left in the installing stage); one in another account,
reached through a role to assume (moto's STS answers AssumeRole with credentials of the role's
account); one whose profile names an API that doesn't answer. The endpoint comes from the AWS
config file (its default profile), as a user's would, so one profile can name a dead one.

Plain moto (no realism layer): the hand builders use each new ID at once, as a quick script does.
moto's Describe* filters every resource of the account in Python, so each call here costs more
than it would beside fewer environments; the runs still take seconds.
"""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import botocore.configloader
import pytest

from compliance import results as res
from selftests.moto_server import ADMIN, REPO
from selftests.suite_runner import NO_REPORTS

ROLE_ACCOUNT = "222222222222"
ROLE = f"arn:aws:iam::{ROLE_ACCOUNT}:role/twotier-check-only"
AMI_PARAM = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
CLI = Path(__file__).parent / "handmade" / "article_by_cli.sh"
ICMP = "tests/test_4_db_server.py::test_db_allows_only_the_web_server[icmp]"
OURS = [f"ours-{c}" for c in "abcd"]
HAND = [f"hand-{i}" for i in range(1, 13)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # closed again once this returns: nothing answers there


class World:
    """The moto server as the fleet's accounts see it, and the fleet file's environments."""

    def __init__(self, server, tmp: Path):
        self.server, self.tmp = server, tmp
        self.config = tmp / "aws-config"
        self.config.write_text(f"[default]\nregion = us-east-1\nendpoint_url = {server.url}\n\n"
                               f"[profile down]\nregion = us-east-1\nendpoint_url = http://127.0.0.1:{closed_port()}\n"
                               "aws_access_key_id = testing\naws_secret_access_key = testing\n")
        # The AWS CLI beside this Python (the project's venv) for the hand build that uses it.
        self.env = server.env(AWS_ENDPOINT_URL=None, AWS_CONFIG_FILE=str(self.config),
                              PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin")
        self.entries: list[str] = []      # the fleet file's lines, one per environment
        # A plugin of these runs: where a thread other than pytest's read os.environ as a whole once
        # the checks had started (pytest deletes PYTEST_CURRENT_TEST from it after each check).
        (tmp / "plugins").mkdir()
        (tmp / "plugins" / "environ_watch.py").write_text(
            "import os, threading, traceback\n"
            "checking = []\n"
            "def pytest_runtest_setup(item):\n"
            "    checking.append(True)\n"
            "every = type(os.environ).__iter__\n"
            "def watched(self):\n"
            "    if checking and threading.current_thread() is not threading.main_thread():\n"
            f"        with open({str(tmp / 'environ-read-while-checking')!r}, 'a') as f:\n"
            "            f.write(''.join(traceback.format_stack(limit=8)) + '\\n')\n"
            "    return every(self)\n"
            "type(os.environ).__iter__ = watched\n")
        self.hand: dict[str, dict] = {}

    def ec2(self, region: str = "us-east-1", **creds):
        creds = creds or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
        return boto3.client("ec2", endpoint_url=self.server.url, region_name=region, **creds)

    def role_credentials(self) -> dict:
        c = boto3.client("sts", endpoint_url=self.server.url, region_name="us-east-1", aws_access_key_id="testing",
                         aws_secret_access_key="testing").assume_role(RoleArn=ROLE, RoleSessionName="by-hand")
        c = c["Credentials"]
        return {"aws_access_key_id": c["AccessKeyId"], "aws_secret_access_key": c["SecretAccessKey"],
                "aws_session_token": c["SessionToken"]}

    def provision(self, *args: str) -> None:
        proc = subprocess.run([sys.executable, str(REPO / "provision.py"), *args, "--target", "aws"], cwd=REPO,
                              capture_output=True, text=True, timeout=180, env=self.env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    def fleet_file(self, name: str = "fleet.yml", extra: list[str] | None = None) -> Path:
        path = self.tmp / name
        path.write_text("environments:\n" + "".join(f"  - {e}\n" for e in self.entries + (extra or [])))
        return path

    def run(self, fleet: Path | None, *args: str, out: str = "run",
            env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict, Path]:
        """The suite on the fleet file (None: a run of one, as today, the environment in `args`)."""
        folder = self.tmp / out
        folder.mkdir(mode=0o700, exist_ok=True)
        cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", NO_REPORTS,
               "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-m", "not host", "--target", "aws",
               *([f"--fleet={fleet}"] if fleet else []), f"--results={folder / 'results.json'}",
               f"--html={folder / 'report.html'}", "--self-contained-html", f"--junitxml={folder / 'junit.xml'}", *args]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**self.env, **(env or {})})
        data = json.loads((folder / "results.json").read_text()) if (folder / "results.json").exists() else {}
        if data:
            assert res.validate(data) == [], res.validate(data)[:5]
        return proc, data, folder


def hand_build(ec2, ssm, name: str) -> dict:
    """The article to its last step with plain boto3, as someone types it (their own names)."""
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    public = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.1.0/24")["Subnet"]["SubnetId"]
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.1.2.0/24")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=public)
    web_sg = ec2.create_security_group(GroupName=f"{name}-web", Description="web", VpcId=vpc)["GroupId"]
    db_sg = ec2.create_security_group(GroupName=f"{name}-db", Description="db", VpcId=vpc)["GroupId"]
    tcp = lambda port, **src: {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **src}  # noqa: E731
    ec2.authorize_security_group_ingress(GroupId=web_sg, IpPermissions=[
        tcp(22, IpRanges=[{"CidrIp": ADMIN}]), tcp(80, IpRanges=[{"CidrIp": "0.0.0.0/0"}])])
    ec2.authorize_security_group_ingress(GroupId=db_sg, IpPermissions=[
        tcp(3306, UserIdGroupPairs=[{"GroupId": web_sg}]), tcp(22, UserIdGroupPairs=[{"GroupId": web_sg}]),
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": web_sg}]}])
    ec2.create_key_pair(KeyName=f"{name}-key", KeyType="ed25519")
    ami = ssm.get_parameter(Name=AMI_PARAM)["Parameter"]["Value"]
    common = dict(ImageId=ami, InstanceType="t2.micro", MinCount=1, MaxCount=1, KeyName=f"{name}-key")
    web = ec2.run_instances(SubnetId=public, SecurityGroupIds=[web_sg], **common)["Instances"][0]["InstanceId"]
    db = ec2.run_instances(SubnetId=private, SecurityGroupIds=[db_sg], **common)["Instances"][0]["InstanceId"]
    ec2.associate_address(AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"], InstanceId=web)
    return {"vpc": vpc, "web": web, "db": db, "db_sg": db_sg, "web_sg": web_sg}


@pytest.fixture(scope="module")
def world(plain_moto_server, tmp_path_factory):
    plain_moto_server.reset()
    w = World(plain_moto_server, tmp_path_factory.mktemp("fleet"))
    state = w.tmp / "state"
    state.mkdir(mode=0o700)
    ours = [(n, "us-east-1") for n in OURS] + [("ours-eu", "eu-west-1")]
    with ThreadPoolExecutor(3) as pool:
        by_cli = pool.submit(subprocess.run, ["bash", str(CLI), str(w.tmp / "cli-key"), ADMIN], capture_output=True,
                             text=True, timeout=300, env=w.env)
        list(pool.map(lambda nr: w.provision("up", "--env", nr[0], "--region", nr[1], "--admin-cidr", ADMIN,
                                             "--no-host-setup", f"--state-dir={state / nr[0]}"), ours))
        cli = by_cli.result()
    for name, region in ours:
        w.entries.append(f"{{env: {name}, region: {region}, settings: {{state-dir: {state / name}}}}}")
    ssm = boto3.client("ssm", endpoint_url=w.server.url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    for name in HAND:
        built = w.hand[name] = hand_build(w.ec2(), ssm, name)
        w.entries.append(f"{{vpc_id: {built['vpc']}, web: {built['web']}, db: {built['db']}, region: us-east-1}}")
    assert cli.returncode == 0, cli.stderr[-2000:]
    made = dict(line.split("=", 1) for line in cli.stdout.split())
    w.entries.append(f"{{vpc_id: {made['vpc']}, web: {made['web']}, db: {made['db']}, region: us-east-1, "
                     "stage: installing}")
    role = w.role_credentials()
    w.hand["role"] = hand_build(w.ec2(**role), boto3.client("ssm", endpoint_url=w.server.url, region_name="us-east-1",
                                                            **role), "other-team")
    w.entries.append(f"{{vpc_id: {w.hand['role']['vpc']}, web: {w.hand['role']['web']}, db: {w.hand['role']['db']}, "
                     f"region: us-east-1, role_arn: '{ROLE}'}}")
    w.entries.append("{env: gone, region: us-east-1, profile: down}")
    assert len(w.entries) == 20
    return w


def keys(data: dict) -> dict[str, int]:
    return {e["key"]: e["exit_status"] for e in data["environments"]}


def test_a_fleet_of_twenty_in_one_run_then_fixed_and_new(world):
    w = world
    hist = w.tmp / "history"
    w.provision("drift", "db-icmp-revoked", "--env", "ours-a", f"--state-dir={w.tmp / 'state' / 'ours-a'}")
    first, r1, out1 = w.run(w.fleet_file(), f"--history={hist}", "--security-hub", "-p", "environ_watch",
                            out="first", env={"PYTHONPATH": str(w.tmp / "plugins")})
    said = first.stdout + first.stderr
    assert first.returncode == 1, said[-4000:]
    # The environments are still being read while the first checks run, but no thread reads
    # os.environ as a whole then: it would meet a key pytest deletes (a KeyError, an INTERNALERROR).
    seen = w.tmp / "environ-read-while-checking"
    assert not seen.exists(), seen.read_text()[:3000]
    exits = keys(r1)
    role_key = f"{ROLE_ACCOUNT}/{w.hand['role']['vpc']}@us-east-1"
    assert len(exits) == 20 and exits["ours-a@us-east-1"] == 1 and exits["gone@us-east-1"] == 6, exits
    assert {k for k, v in exits.items() if v == 0} == set(exits) - {"ours-a@us-east-1", "gone@us-east-1"}, exits
    assert exits["ours-eu@eu-west-1"] == 0 and exits[role_key] == 0
    envs = {e["key"]: e for e in r1["environments"]}
    assert envs[role_key]["account"] == ROLE_ACCOUNT and envs["ours-b@us-east-1"]["account"] == "123456789012"
    assert "no answer from http://127.0.0.1:" in envs["gone@us-east-1"]["error"]
    # One record per environment and check (none for the one that could not be read), ids as a run of one's.
    assert len(r1["records"]) == 19 * 49
    assert {r["check_id"] for r in r1["records"] if r["environment"] == "ours-a@us-east-1" and
            r["verdict"] == "violated"} == {ICMP}
    # The terminal: a line per environment; the report: a row per environment and a drill-down; junit:
    # each check's environment as a property, its id ending with the environment.
    assert "two-tier fleet: 20 environments" in said
    assert "ours-a@us-east-1: violated (exit 1)" in said and "gone@us-east-1: could not check (exit 6)" in said
    page = (out1 / "report.html").read_text()
    assert page.count('<tr class="x') == 20 and 'data-environment="ours-a@us-east-1" data-exit="1"' in page
    assert page.count('<details class="tt-env"') == 20
    junit = ET.parse(out1 / "junit.xml").getroot()
    props = [p.get("value") for p in junit.iter("property") if p.get("name") == "environment"]
    assert set(props) == set(exits) and len(props) == 20 * 28
    assert any(c.get("name") == "test_db_allows_only_the_web_server[icmp-ours-a@us-east-1]"
               for c in junit.iter("testcase"))

    # Fix one, break another (the other team's, in its own account), run again.
    w.provision("drift", "db-icmp-revoked", "--revert", "--env", "ours-a", f"--state-dir={w.tmp / 'state' / 'ours-a'}")
    theirs = w.ec2(**w.role_credentials())
    theirs.revoke_security_group_ingress(GroupId=w.hand["role"]["db_sg"], IpPermissions=[
        {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": [{"GroupId": w.hand["role"]["web_sg"]}]}])
    second, r2, _ = w.run(w.fleet_file(), f"--history={hist}", "--security-hub", out="second")
    said = second.stdout + second.stderr
    assert second.returncode == 1, said[-4000:]
    status = {(r["environment"], r["check_id"]): (r["history"] or {}).get("status") for r in r2["records"]}
    assert status[("ours-a@us-east-1", ICMP)] == "fixed" and status[(role_key, ICMP)] == "new"
    assert r2["history"]["environments"]["ours-a@us-east-1"]["fixed"] == [ICMP]
    assert r2["history"]["environments"][role_key]["new"] == [ICMP]
    block = said.split("two-tier history", 1)[1]
    assert f"{role_key} 4.2 test_db_allows_only_the_web_server[icmp]" in block.split("fixed (")[0]
    assert "ours-a@us-east-1 4.2 test_db_allows_only_the_web_server[icmp]: holds now" in block

    # Security Hub: each finding where its environment lives (the other team's in its account).
    hub = boto3.client("securityhub", endpoint_url=w.server.url, region_name="us-east-1",
                       **w.role_credentials())
    found = {f["ProductFields"]["twotier/check"]: f for f in hub.get_findings()["Findings"]
             if f["ProductFields"].get("twotier/environment") == role_key}
    assert found[ICMP]["AwsAccountId"] == ROLE_ACCOUNT and found[ICMP]["RecordState"] == "ACTIVE"
    assert found[ICMP]["Compliance"]["Status"] == "FAILED"
    ours = boto3.client("securityhub", endpoint_url=w.server.url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")
    mine = {f["ProductFields"]["twotier/check"]: f for f in ours.get_findings()["Findings"]
            if f["ProductFields"].get("twotier/environment") == "ours-a@us-east-1"}
    assert mine[ICMP]["RecordState"] == "ARCHIVED" and mine[ICMP]["Compliance"]["Status"] == "PASSED"
    accounts = {o["account"] for o in r2["exports"]["security_hub"]}
    assert {"123456789012", ROLE_ACCOUNT} <= accounts, r2["exports"]

    # Shards of the same fleet, merged, give the same result as the run of all of it.
    shards = []
    for i in (1, 2):
        shard, data, folder = w.run(w.fleet_file(), f"--fleet-shard={i}/2", out=f"shard{i}")
        assert shard.returncode in (0, 1, 6), shard.stdout[-3000:]
        assert len(data["environments"]) == 10 and f"two-tier fleet: 10 environments (shard {i}/2 of 20)" in shard.stdout
        shards.append(str(folder / "results.json"))
    merged = subprocess.run([sys.executable, "-m", "compliance", "merge", str(w.tmp / "merged"), *shards], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert merged.returncode == second.returncode == 1, merged.stdout + merged.stderr
    together = json.loads((w.tmp / "merged" / "results.json").read_text())
    assert same_result(together) == same_result(r2)

    # Across two xdist workers (whole environments to each): the same verdicts, and the same checks
    # recorded, deselected ones included. (The disruptive check's not-applicable reason names -n.)
    parallel, r3, _ = w.run(w.fleet_file(), "-n", "2", out="parallel")
    assert parallel.returncode == 1, parallel.stdout[-3000:]
    assert keys(r3) == keys(r2)
    assert applicable(r3) == applicable(r2)
    assert recorded(r3) == recorded(r2)


def recorded(data: dict) -> set:
    return {(r["environment"], r["check_id"]) for r in data["records"]}


def applicable(data: dict) -> dict:
    return {(r["environment"], r["check_id"]): (r["verdict"], r["message"], r["evidence_sha256"])
            for r in data["records"] if r["verdict"] != "not-applicable"}


def same_result(data: dict) -> tuple:
    """What a result says about the fleet, less when and in which run (times, run ids, history)."""
    envs = sorted(data["environments"], key=lambda e: e["key"])
    records = sorted(({k: v for k, v in r.items() if k not in ("time", "history")} for r in data["records"]),
                     key=lambda r: (r["environment"], r["check_id"]))
    return envs, records, data["run"]["exit_status"]


def verdicts(data: dict) -> tuple:
    """What a result says of its one environment: its exit status, error and each check's verdict."""
    (env,) = data["environments"]
    return env["exit_status"], env.get("error"), {r["check_id"]: r["verdict"] for r in data["records"]}


def test_a_fleet_of_one_gives_what_a_run_of_one_gives(world):
    """Holds, violated, unreachable: the same exit status and verdicts by --fleet as by --env (today's run)."""
    w = world
    state = w.tmp / "state" / "ours-d"
    gone = {"AWS_PROFILE": "down"}
    cases = {"holds": ("ours-c", {}, 0), "violated": ("ours-d", {}, 1), "unreachable": ("gone", gone, 6)}
    w.provision("drift", "db-icmp-revoked", "--env", "ours-d", f"--state-dir={state}")
    try:
        for case, (name, env, code) in cases.items():
            where = [f"--state-dir={w.tmp / 'state' / name}"] if name != "gone" else []
            single, alone, _ = w.run(None, "--env", name, "--region", "us-east-1", *where, out=f"{case}-single", env=env)
            line = f"{{env: {name}, region: us-east-1" + (", profile: down" if env else "") + (
                f", settings: {{state-dir: {w.tmp / 'state' / name}}}}}" if where else "}")
            path = w.tmp / f"one-{case}.yml"
            path.write_text(f"- {line}\n")
            fleet, one, _ = w.run(path, out=f"{case}-fleet")
            assert single.returncode == fleet.returncode == code, (case, single.stdout[-2000:], fleet.stdout[-2000:])
            assert verdicts(one) == verdicts(alone), case
            assert "two-tier fleet: 1 environment =" in fleet.stdout
        assert verdicts(one)[1] and "no answer from http://127.0.0.1:" in verdicts(one)[1]
    finally:
        w.provision("drift", "db-icmp-revoked", "--revert", "--env", "ours-d", f"--state-dir={state}")


BAD_FLEETS = {
    "not YAML": ("environments: [\n", [], "not YAML at line 2"),
    "nothing": ("", [], "expected a list of environments"),
    "unknown key": ("- {env: a, vpcid: vpc-1}\n", [], "environment 1: unknown key 'vpcid'"),
    "part of a VPC": ("- {env: a}\n- {vpc_id: vpc-1, web: i-1}\n", [], "environment 2: vpc_id, web and db go together"),
    "twice": ("- {env: a}\n- {env: b}\n- {env: a}\n", [], "environment 3: the same environment as environment 1"),
    "bad role": ("- {env: a, role_arn: 'arn:aws:iam::12:role/x'}\n", [], "environment 1: bad role_arn"),
    "bad stage": ("- {env: a, stage: done}\n", [], "environment 1: stage 'done' is not one of"),
    "bad shard": ("- {env: a}\n", ["--fleet-shard=3/2"], "bad --fleet-shard '3/2'"),
    "with --env": ("- {env: a}\n", ["--env", "b"], "leave out --env"),
}


@pytest.mark.parametrize("case", BAD_FLEETS, ids=list(BAD_FLEETS))
def test_a_bad_fleet_file_is_one_line_and_exit_4(case, tmp_path):
    text, args, expected = BAD_FLEETS[case]
    path = tmp_path / "fleet.yml"
    path.write_text(text)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", NO_REPORTS,
           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "--target", "aws", f"--fleet={path}",
           f"--results={tmp_path / 'results.json'}", *args]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 4, said
    assert len(said) == 1 and said[0].startswith(("ERROR: bad --fleet", "ERROR: --fleet")), said
    assert expected in said[0], said
    assert not (tmp_path / "results.json").exists()


def test_environments_sharing_a_profile_find_it_whichever_thread_asks_first(tmp_path, monkeypatch):
    """A fleet's environments of one profile share a session, reached from several threads. botocore
    loads the files lazily, the credentials file's profiles last: a thread asking in between found
    no such profile (bench/fleet.py, N = 100: 11 environments "could not check" in one run of two).
    The files' reading is slowed here so the threads meet in that window every time."""
    from awsenv.targets.base import new_session

    creds = tmp_path / "credentials"
    creds.write_text("[fleet]\naws_access_key_id = AKIDFLEET\naws_secret_access_key = s\n")
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    parse = botocore.configloader.raw_config_parse
    monkeypatch.setattr(botocore.configloader, "raw_config_parse", lambda *a, **k: (time.sleep(0.2), parse(*a, **k))[1])
    shared = new_session("us-east-1", profile="fleet")
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda i: (time.sleep(0.3 * i), shared.get_credentials().access_key)[1], range(4)))
    assert keys == ["AKIDFLEET"] * 4
