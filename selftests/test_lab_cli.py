"""`provision.py lab start|status|run|stop`: a bare lab as other tools and people reach it.

- `start` prints the variables to `eval` (endpoint, the lab's own credentials, region) when its
  output goes to eval; on a terminal it shows them without the secret.
- `lab.ssh_config` reaches any host launched in the lab with OpenSSH, from any folder (OpenSSH runs
  a ProxyCommand with `exec` from ssh's own folder: a `cd` there fails, "exec: cd: not found").
- `run` puts a command where a CI runner stands: its own namespace on the lab's internet, the lab's
  API there, the lab's DNS in its resolv.conf, and no way out of the lab.
- `stop` leaves nothing: namespaces, runner folders, the fragment and its pins, processes.
Bad input is one line and exit 2, before anything starts.
"""
from __future__ import annotations

import json
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from lab import daemon, names, netns, runner
from lab.internet import VANTAGE_IP
from selftests.suite_runner import REPO

pytestmark = pytest.mark.xdist_group("st-labcli")     # one lab shared by the module
LAB = "st-labcli"


def provision(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "provision.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env if env is not None else _shell())


def _shell() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, "AWS_EC2_METADATA_DISABLED": "true"}


# --- bad input: no lab needed ----------------------------------------------------------------------
@pytest.mark.parametrize("args,said", [
    (["lab", "run", "--as", "10.0.0.1", "--", "true"], "a runner's address is one of 198.51.100.5-15"),
    (["lab", "run", "--as", "198.51.100.4", "--", "true"], "a runner's address is one of 198.51.100.5-15"),
    (["lab", "run", "--env", "st-nolab"], "lab run needs a command after --"),
    (["lab", "run", "--env", "st-nolab", "--", "true"], "no lab of env st-nolab is running"),
    (["lab", "stop", "--env", "../etc"], "bad env name"),
    (["lab", "start", "--env", "st-nolab", "--region", "mars-1"], "unknown region"),
])
def test_bad_input_is_one_line(args, said, tmp_path):
    out = provision(*args, f"--state-dir={tmp_path / 'state'}")
    assert out.returncode == 2 and said in out.stderr and len(out.stderr.strip().splitlines()) == 1, out
    assert not (tmp_path / "state").exists(), "bad input made a state folder"


def test_status_of_no_lab_says_so(tmp_path):
    out = provision("lab", "status", "--env", "st-nolab", f"--state-dir={tmp_path}")
    assert out.returncode == 1 and "no lab of env st-nolab is running" in out.stdout, out


def test_stop_refuses_an_environment_that_up_built(tmp_path):
    (tmp_path / "ledger.jsonl").write_text('{"kind": "vpc", "id": "vpc-0123456789abcdef0"}\n')
    out = provision("lab", "stop", "--env", "st-nolab", f"--state-dir={tmp_path}")
    assert out.returncode == 2 and "provision.py down --env st-nolab" in out.stderr, out
    assert (tmp_path / "ledger.jsonl").exists()


def test_the_fragment_runs_from_any_folder_without_cd(tmp_path):
    from lab import vantage

    text = vantage.ssh_fragment("shop", tmp_path / "lab.known_hosts")
    proxy = re.search(r"^  ProxyCommand (.*)$", text, re.M)
    assert proxy and not re.search(r"(^|[;&|]\s*)cd\s", proxy.group(1)), text
    argv = shlex.split(proxy.group(1))
    assert argv[0] == "env" and argv[1] == f"PYTHONPATH={REPO}" and Path(argv[2]).is_absolute(), argv
    assert re.search(r"^Host 198\.51\.100\.\*$", text, re.M), "every public address the lab hands out"
    assert f'UserKnownHostsFile "{tmp_path / "lab.known_hosts"}"' in text
    with pytest.raises(Exception, match="can't be written into an ssh_config"):
        vantage.ssh_fragment("shop", tmp_path / 'a"b')


# --- with a lab ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lab(tmp_path_factory, plain_lab_api):
    if os.geteuid() != 0:
        pytest.skip("the local lab needs root")
    state = tmp_path_factory.mktemp("labcli") / "state"
    before = host_network()
    started = provision("lab", "start", "--env", LAB, f"--state-dir={state}")
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield {"state": state, "start": started, "host_before": before}
    finally:
        provision("lab", "stop", "--env", LAB, f"--state-dir={state}")


def host_network() -> str:
    return "\n".join(subprocess.run(["ip", *a], capture_output=True, text=True).stdout
                     for a in (["-o", "link"], ["-o", "addr"], ["route", "show", "table", "all"], ["rule"]))


def variables(start: subprocess.CompletedProcess) -> dict[str, str]:
    lines = start.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("export ") and lines[1].startswith("unset "), start.stdout
    return dict(kv.split("=", 1) for kv in shlex.split(lines[0])[1:])


@pytest.mark.local
def test_start_prints_the_variables_to_eval(lab):
    v = variables(lab["start"])
    state = json.loads((lab["state"] / "lab.json").read_text())
    assert v == {"AWS_ENDPOINT_URL": state["endpoint"], "AWS_ACCESS_KEY_ID": state["access_key_id"],
                 "AWS_SECRET_ACCESS_KEY": state["secret_access_key"], "AWS_REGION": "us-east-1",
                 "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    assert state["secret_access_key"] not in lab["start"].stderr
    # As a user types it, in a shell with a profile of theirs: the lab's keys win, the profile is gone.
    cli = subprocess.run(["bash", "-c", f'eval "$({sys.executable} provision.py lab start --env {LAB} '
                                        f'--state-dir={lab["state"]})" && echo "${{AWS_PROFILE-unset}}" && '
                                        f'{REPO}/.venv/bin/aws ec2 describe-availability-zones --output text '
                                        f'--query "AvailabilityZones[0].RegionName"'],
                         cwd=REPO, capture_output=True, text=True, timeout=120, env={**_shell(), "AWS_PROFILE": "work"})
    assert cli.returncode == 0 and cli.stdout.split() == ["unset", "us-east-1"], cli


@pytest.mark.local
def test_start_on_a_terminal_keeps_the_secret_off_it(lab):
    secret = json.loads((lab["state"] / "lab.json").read_text())["secret_access_key"]
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(REPO / "provision.py"), "lab", "start", "--env", LAB,
                             f"--state-dir={lab['state']}"], cwd=REPO, stdout=slave, stderr=slave, env=_shell())
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        try:
            chunk = os.read(master, 4096) if ready else b""
        except OSError:        # the terminal closed: the command ended
            chunk = b""
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.wait(30) == 0, seen
    text = seen.decode()
    assert secret not in text and "not shown on a terminal" in text, text
    assert f'eval "$(.venv/bin/python provision.py lab start --env {LAB})"' in text, text


@pytest.mark.local
def test_openssh_reaches_a_host_launched_by_hand_from_any_folder(lab, tmp_path):
    v = variables(lab["start"])
    ec2 = boto3.client("ec2", endpoint_url=v["AWS_ENDPOINT_URL"], region_name=v["AWS_REGION"],
                       aws_access_key_id=v["AWS_ACCESS_KEY_ID"], aws_secret_access_key=v["AWS_SECRET_ACCESS_KEY"])
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=rt, SubnetId=subnet)
    sg = ec2.create_security_group(GroupName="mine", Description="mine", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": f"{VANTAGE_IP}/32"}]},
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    key = tmp_path / "mine.pem"
    key.write_text(ec2.create_key_pair(KeyName="mine")["KeyMaterial"])
    key.chmod(0o600)
    web = ec2.run_instances(ImageId="ami-12c6146b", InstanceType="t2.micro", MinCount=1, MaxCount=1, KeyName="mine",
                            SubnetId=subnet, SecurityGroupIds=[sg])["Instances"][0]["InstanceId"]
    eip = ec2.allocate_address(Domain="vpc")
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=web)
    daemon.wait_settled(lab["state"], timeout=60)
    fragment = lab["state"] / daemon.SSH_FRAGMENT
    for folder in ("/", tmp_path):
        out = subprocess.run(["ssh", "-F", str(fragment), "-i", str(key), "-o", "BatchMode=yes",
                              f"ec2-user@{eip['PublicIp']}", "id -un"], cwd=folder, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0 and out.stdout.strip() == "ec2-user", (folder, out)
    assert eip["PublicIp"] in (lab["state"] / daemon.SSH_KNOWN_HOSTS).read_text(), "pinned in the lab's own file"

    # Where a CI runner stands: the API, the lab's DNS and echo, the site; nothing outside the lab.
    ip = eip["PublicIp"]
    script = "\n".join([
        f"{REPO}/.venv/bin/aws ec2 describe-vpcs --vpc-ids {vpc} --query Vpcs[0].VpcId --output text",
        'echo "endpoint $AWS_ENDPOINT_URL"', "grep ^nameserver /etc/resolv.conf",
        "curl -s -m 5 http://checkip.amazonaws.com/",
        # The host answers on 80 (nothing listens: refused); SSH is only for 198.51.100.3 (silence).
        f"(timeout 3 bash -c '</dev/tcp/{ip}/80') 2>&1 | grep -q refused && echo '80 refused'",
        f"timeout 3 bash -c '</dev/tcp/{ip}/22' || echo '22 silent'",
        "curl -s -m 2 http://192.0.2.1/ || echo 'no way out'"])
    out = provision("lab", "run", "--env", LAB, f"--state-dir={lab['state']}", "--as", "198.51.100.9", "--",
                    "bash", "-c", script)
    assert out.returncode == 0 and out.stdout.splitlines() == [
        vpc, "endpoint http://198.51.100.4", "nameserver 198.51.100.2", "198.51.100.9", "80 refused", "22 silent",
        "no way out"], out
    status = provision("lab", "status", "--env", LAB, f"--state-dir={lab['state']}")
    assert status.returncode == 0 and f"{names.netns_prefix(LAB)}run9" in status.stdout, status
    assert host_network() == lab["host_before"], "the lab or its runner changed the host's links, routes or rules"


@pytest.mark.local
def test_stop_leaves_nothing(lab):
    state = lab["state"]
    (state / "twotier-known-hosts").write_text("198.51.100.16 ssh-ed25519 AAAA\n")   # the suite's pins of its hosts
    t0 = time.monotonic()
    out = provision("lab", "stop", "--env", LAB, f"--state-dir={state}")
    assert out.returncode == 0 and out.stdout.startswith("unset AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID"), out
    assert time.monotonic() - t0 < 30
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith(names.netns_prefix(LAB))]
    assert not left, left
    assert not list(runner.ETC_NETNS.glob(f"{names.netns_prefix(LAB)}*")) if runner.ETC_NETNS.is_dir() else True
    assert sorted(p.name for p in state.iterdir()) == [".twotier-lock", "lab.log"], sorted(os.listdir(state))
    assert not netns.mounts_under(state)
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).count(f"--env {LAB} ")]


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""

