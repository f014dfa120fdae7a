"""The aws target, proven against moto in server mode on 127.0.0.1: fixtures and helpers.

Every process these tests start talks to AWS only through AWS_ENDPOINT_URL=http://127.0.0.1:PORT
with dummy credentials; instance metadata and ~/.aws are switched off, so nothing can leave the
machine. One server per xdist worker, reset before each test.

By default (`aws`, `moto_server`) moto answers through the realism layer (emulator/realism/):
new IDs "not found" for a moment, pending/stopping/shutting-down, NAT gateways pending and
deleting, lingering interfaces, a Local Zone and a zone without t2.micro, another team's stopped
instance with our Env/Role tags. Its windows are scaled down (REALISM_TEST_SCALE).
`TWOTIER_EMULATOR_REALISM=off` makes it plain moto. `plain_aws` is plain moto for the few tests
that truly need moto's own answers (PLAIN_MOTO says which, and why).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest

from selftests.suite_runner import NO_REPORTS

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
        # GITHUB_STEP_SUMMARY: the CI job's own summary is not a self-test's to append to.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("TWOTIER_TEST_FAULTS", "GITHUB_STEP_SUMMARY")}
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

    def others_instances(self) -> set[str]:
        """Instances "another team" runs in the account (the realism layer's; none on plain moto)."""
        return set()

    def truth(self) -> Server:
        """Where the account's state is read as it is (moto's own answers): what the tests' oracle reads."""
        return self


@pytest.fixture(scope="session")
def plain_moto_server():
    """moto in server mode on 127.0.0.1, as moto answers (no realism layer)."""
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
def plain_aws(plain_moto_server) -> Server:
    """A clean plain moto server (reset) for one test that needs moto's own answers."""
    plain_moto_server.reset()
    return plain_moto_server


class RealisticServer(Server):
    """A `Server` whose moto answers through the realism layer (emulator/realism/): EC2's eventual
    consistency, state order, lingering interfaces, mapped addresses, zones, a shared account."""

    def __init__(self, url: str, layer, counts_path: Path, truth: Server):
        super().__init__(url)
        self.layer = layer                # .counts (by rule), .timings, .clock
        self.counts_path = counts_path    # the same counts as JSON, for other processes
        self._truth = truth               # plain moto on the same backends (one process)

    def truth(self) -> Server:
        # The oracle (account_state, nothing_left) must see what exists, not EC2's eventual view of
        # it: a test's own create a moment ago is there, though a listing through the layer leaves it out.
        return self._truth

    def counts(self) -> dict[str, int]:
        return self.layer.counts.snapshot()

    def others_instances(self) -> set[str]:
        return self.layer.others_instances()

    def paused(self):
        """Hold the layer's clock still (`with server.paused(): ...`): checks made "immediately
        after" a call then can't be outrun by a loaded machine; real time runs on afterwards."""
        return self.layer.clock.paused()


@contextlib.contextmanager
def _layer_changed(server, attribute: str, changes: dict):
    """One of the layer's settings (a frozen dataclass) changed for one test; the layer is in this process."""
    old = getattr(server.layer, attribute)
    setattr(server.layer, attribute, dataclasses.replace(old, **changes))
    try:
        yield
    finally:
        setattr(server.layer, attribute, old)


def realism_rates(server, **changes):
    """The layer's rates changed for one test (e.g. an answer EC2 gives sometimes, given every time)."""
    return _layer_changed(server, "rates", changes)


def realism_timings(server, **changes):
    """The layer's windows changed for one test."""
    return _layer_changed(server, "timings", changes)


# The layer's windows for the self-tests: its defaults (seconds already) scaled down once more, the
# order of states kept; TWOTIER_EMULATOR_REALISM_SCALE multiplies them again.
REALISM_TEST_SCALE = 0.25


@pytest.fixture(scope="session")
def realistic_server(tmp_path_factory, plain_moto_server):
    """moto in server mode on 127.0.0.1 behind the realism layer (what `moto_server` and `aws` are).
    TWOTIER_EMULATOR_REALISM=off makes it plain moto. It shares moto's in-process backends with
    `plain_moto_server` (one process); each test's fixture resets what it uses."""
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
    yield RealisticServer(f"http://127.0.0.1:{port}", server.layer, counts_path, truth=plain_moto_server)
    server.stop()


@pytest.fixture
def realistic_aws(realistic_server) -> RealisticServer:
    """A clean realistic server (moto and the layer's memory reset) for one test."""
    realistic_server.reset()
    return realistic_server


@pytest.fixture(scope="session")
def moto_server(realistic_server) -> Server:
    """The aws target's API for the self-tests: moto behind the realism layer."""
    return realistic_server


# Tests (by function name, or every test of a module) that get plain moto from `aws`, and why:
# they need moto's own answers.
PLAIN_MOTO = {
    # It drives the waits with a virtual clock (waits.time monkeypatched) and rewrites the instance
    # and NAT states itself to time them; the layer's windows run on the real clock, so its 1 s of
    # `pending` would stretch to hundreds of virtual seconds and the timing it asserts would be the
    # layer's, not the provisioner's.
    "test_client_tokens_imdsv2_nat_first_and_waits_overlap",
    # It builds environments "by someone else" with plain boto3, call after call and without retries
    # (as a quick script would), to prove how the checks read what others built; against EC2's
    # answers that builder would meet NotFound for each ID it names right after creating it. The
    # exemption goes once its builder retries those (as the target's session does: awsenv/retries.py).
    "test_external_env.py",
}


@pytest.fixture
def aws(request) -> Server:
    """A clean server (reset) for one test: moto behind the realism layer, or plain moto for PLAIN_MOTO."""
    plain = request.node.originalname in PLAIN_MOTO or request.node.path.name in PLAIN_MOTO
    name = "plain_moto_server" if plain else "realistic_server"
    server: Server = request.getfixturevalue(name)
    server.reset()
    return server


def provision(server: Server, state_dir: Path, *args: str, env: dict | None = None, faults: dict | None = None,
              timeout: float = 120, start_ignoring_sigint: bool = False) -> subprocess.CompletedProcess:
    """provision.py --target aws against the server. `start_ignoring_sigint`: as a background job of a
    non-interactive shell (a CI runner's) starts, with SIGINT inherited as ignored."""
    cmd = [sys.executable, str(REPO / "provision.py"), *args, "--target", "aws", "--state-dir", str(state_dir)]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env or server.env(faults=faults),
                          preexec_fn=ignore_sigint if start_ignoring_sigint else None)


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def up_args(env_name: str) -> list[str]:
    return ["up", "--env", env_name, "--admin-cidr", ADMIN, "--no-host-setup"]


def check_suite(server: Server, tmp_path: Path, *args: str, env: dict | None = None, faults: dict | None = None,
                html: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """The verification suite, check-only, API checks only: on moto the "hosts" would be 127.x
    addresses and public DNS names, which must never be contacted."""
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", NO_REPORTS,
           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-m", "not host", "--target", "aws", *args]
    if not any(a.startswith("--results") for a in args):
        cmd.append(f"--results={tmp_path / 'results.json'}")     # not the repo's reports/, which other runs share
    if html:
        cmd += [f"--html={html}", "--self-contained-html", f"--junitxml={html.parent / 'junit.xml'}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env or server.env(faults=faults))


def account_state(server: Server) -> dict[str, list[str]]:
    """Everything in the account that is not AWS's default furniture (nor another team's instance,
    which `nothing_left` checks apart), tagged by us or not, as it is (not through the realism layer)."""
    ec2 = server.truth().ec2()
    theirs = server.others_instances()
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
                     if i["State"]["Name"] != "terminated" and i["InstanceId"] not in theirs],
        "key-pair": [k["KeyName"] for k in ec2.describe_key_pairs()["KeyPairs"]],
    }


def nothing_left(server: Server) -> dict[str, list[str]]:
    """What is left of ours (empty when nothing), and another team's instances that anything touched:
    they are never ours to stop, start or terminate (they must still be there, stopped)."""
    left = {k: v for k, v in account_state(server).items() if v}
    theirs = server.others_instances()
    if theirs:
        states = {i["InstanceId"]: i["State"]["Name"] for r in server.truth().ec2().describe_instances(
            Filters=[{"Name": "instance-id", "Values": sorted(theirs)}])["Reservations"] for i in r["Instances"]}
        touched = [f"{iid} ({states.get(iid, 'gone')})" for iid in sorted(theirs) if states.get(iid) != "stopped"]
        if touched:
            left["another team's instance touched"] = touched
    return left


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip() and "HTTP/1.1" not in line]
