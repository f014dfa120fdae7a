"""The aws target, proven against moto in server mode on 127.0.0.1: fixtures and helpers.

Every process these tests start talks to AWS only through AWS_ENDPOINT_URL=http://127.0.0.1:PORT
with dummy credentials; instance metadata and ~/.aws are switched off, so nothing can leave the
machine. One server per xdist worker, reset before each test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ADMIN = "198.51.100.7/32"


class Server:
    def __init__(self, url: str):
        self.url = url

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=10)

    def env(self, faults: dict | None = None, **extra) -> dict:
        """Environment for a child process: the local endpoint, dummy credentials, nothing ambient."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "TWOTIER_TEST_FAULTS"}
        env.update(AWS_ENDPOINT_URL=self.url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/nonexistent/aws-config", AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-creds",
                   PYTHONUNBUFFERED="1")
        if faults:
            # The injector is no part of the product: Python loads it at start-up from faultsite/.
            env["TWOTIER_TEST_FAULTS"] = json.dumps(faults)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "selftests" / "faultsite"), str(REPO)])
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def ec2(self):
        return boto3.client("ec2", endpoint_url=self.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def moto_server():
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)   # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    yield Server(f"http://127.0.0.1:{port}")
    server.stop()


@pytest.fixture
def aws(moto_server) -> Server:
    """A clean moto server (reset) for one test."""
    moto_server.reset()
    return moto_server


class RealisticServer(Server):
    """A `Server` whose moto answers through the realism layer (emulator/realism.py): EC2's eventual
    consistency, state order, lingering interfaces, mapped addresses, zones, a shared account."""

    def __init__(self, url: str, layer, counts_path: Path):
        super().__init__(url)
        self.layer = layer                # .counts (by rule), .timings, .clock
        self.counts_path = counts_path    # the same counts as JSON, for other processes

    def counts(self) -> dict[str, int]:
        return self.layer.counts.snapshot()

    def paused(self):
        """Hold the layer's clock still (`with server.paused(): ...`): checks made "immediately
        after" a call then can't be outrun by a loaded machine; real time runs on afterwards."""
        return self.layer.clock.paused()


# The layer's windows for the self-tests: its defaults (seconds already) scaled down once more, the
# order of states kept; TWOTIER_EMULATOR_REALISM_SCALE multiplies them again.
REALISM_TEST_SCALE = 0.25


@pytest.fixture(scope="session")
def realistic_server(tmp_path_factory):
    """moto in server mode on 127.0.0.1 behind the realism layer. Opt-in: `moto_server` and `aws`
    stay plain moto. TWOTIER_EMULATOR_REALISM=off makes it plain moto too. It shares moto's
    in-process backends with `moto_server` (one process), so use it through `realistic_aws`, which
    resets both before each test."""
    import logging

    from emulator import realism

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    counts_path = tmp_path_factory.mktemp("realism") / "counts.json"
    timings = realism.Timings.from_env(realism.Timings().scaled(REALISM_TEST_SCALE))
    server = realism.RealisticMotoServer("127.0.0.1", 0, timings=timings, counts_path=counts_path,
                                         clock=realism.PausableClock())
    server.start()
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    yield RealisticServer(f"http://127.0.0.1:{port}", server.layer, counts_path)
    server.stop()


@pytest.fixture
def realistic_aws(realistic_server) -> RealisticServer:
    """A clean realistic server (moto and the layer's memory reset) for one test."""
    realistic_server.reset()
    return realistic_server


def provision(server: Server, state_dir: Path, *args: str, env: dict | None = None, faults: dict | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "provision.py"), *args, "--target", "aws", "--state-dir", str(state_dir)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env or server.env(faults=faults))


def up_args(env_name: str) -> list[str]:
    return ["up", "--env", env_name, "--admin-cidr", ADMIN, "--no-host-setup"]


def check_suite(server: Server, tmp_path: Path, *args: str, env: dict | None = None, faults: dict | None = None,
                html: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The verification suite, check-only, API checks only: on moto the "hosts" would be 127.x
    addresses and public DNS names, which must never be contacted."""
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", "addopts=",
           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-m", "not host", "--target", "aws", *args]
    if html:
        cmd += [f"--html={html}", "--self-contained-html", f"--junitxml={html.parent / 'junit.xml'}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env or server.env(faults=faults))


def account_state(server: Server) -> dict[str, list[str]]:
    """Everything in the account that is not AWS's default furniture, tagged by us or not."""
    ec2 = server.ec2()
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v.get("IsDefault")}
    return {
        "vpc": [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs],
        "subnet": [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] not in default_vpcs],
        "internet-gateway": [g["InternetGatewayId"] for g in ec2.describe_internet_gateways()["InternetGateways"]
                             if not any(a["VpcId"] in default_vpcs for a in g.get("Attachments", []))],
        "route-table": [t["RouteTableId"] for t in ec2.describe_route_tables()["RouteTables"]
                        if t["VpcId"] not in default_vpcs],
        "security-group": [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                           if g["VpcId"] not in default_vpcs],
        "nat-gateway": [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                        if n["State"] not in ("deleted", "deleting")],
        "elastic-ip": [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]],
        "instance": [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                     if i["State"]["Name"] != "terminated"],
        "key-pair": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
    }


def nothing_left(server: Server) -> dict[str, list[str]]:
    return {k: v for k, v in account_state(server).items() if v}


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip() and "HTTP/1.1" not in line]
