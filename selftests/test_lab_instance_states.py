"""The lab's API says an instance's state only once its host has got there, as EC2 does.

On EC2 `stopped` means the instance is off and `terminated` that it is gone: the aws target stops
an instance, waits with botocore's waiter until the API says `stopped`, then finds its web server
down (check 2.3). In the lab the realism layer shows `stopping` for a fixed window, while the
container's poweroff takes as long as it takes; these tests read DescribeInstances with plain
boto3 as fast as the API answers and, the first time it says `running`, `stopped` or
`terminated`, look at the host at once: its systemd-nspawn process (and for `stopped` its
processes and link; for `terminated` its namespace).

To make the difference certain rather than likely, the instance gets a unit whose stop takes
SLOW_POWEROFF seconds (as a database flushing its buffers does), written into its disk while it is
stopped. The lab serves only the rule under test (instance-states), so raw calls need no retries.
Needs root and the lab's Debian packages.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from lab import names, netns
from selftests.suite_runner import REPO

pytestmark = [pytest.mark.local, pytest.mark.skipif(os.geteuid() != 0, reason="the local lab needs root")]

LAB = "st-labstates"
SLOW_POWEROFF = 3
SLOW_UNIT = f"""[Unit]
Description=takes {SLOW_POWEROFF}s to stop (selftests/test_lab_instance_states.py)

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/bin/sleep {SLOW_POWEROFF}

[Install]
WantedBy=multi-user.target
"""
TIMINGS: dict[str, float] = {}


def _shell() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_EC2_METADATA_DISABLED": "true", "TWOTIER_EMULATOR_REALISM": "instance-states"}


def provision(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "provision.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=_shell())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("labstates") / "state"
    started = provision("lab", "start", "--env", LAB, f"--state-dir={state}")
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        variables = dict(kv.split("=", 1) for kv in shlex.split(started.stdout.splitlines()[0])[1:])
        ec2 = boto3.client("ec2", endpoint_url=variables["AWS_ENDPOINT_URL"], region_name=variables["AWS_REGION"],
                           aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
                           aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"])
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, InstanceType="t3.micro",
                                     SubnetId=subnet)["Instances"][0]["InstanceId"]
        yield ec2, instance
    finally:
        stopped = provision("lab", "stop", "--env", LAB, f"--state-dir={state}")
        print(f"\nthrough the lab's API, seconds: {TIMINGS}")
        assert stopped.returncode == 0, stopped.stderr[-3000:]


def state_of(ec2, instance: str) -> str:
    reservations = ec2.describe_instances(InstanceIds=[instance])["Reservations"]
    return reservations[0]["Instances"][0]["State"]["Name"]


def until_state(ec2, instance: str, wanted: str, timeout: float = 90) -> float:
    """Ask as fast as the API answers; the seconds until it first said `wanted`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if state_of(ec2, instance) == wanted:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise AssertionError(f"the API never said {wanted} within {timeout:.0f}s")


def container(instance: str) -> tuple[int, Path] | None:
    """The instance's systemd-nspawn (not a zombie) and its root: None when there is none."""
    machine = names.machine_name(LAB, instance).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            zombie = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and machine in argv and not zombie:
            return int(proc.name), Path(argv[argv.index(b"-D") + 1].decode())
    return None


def link_state(instance: str) -> str:
    out = subprocess.run(["ip", "-n", names.instance_ns(LAB, instance), "-o", "link", "show", "eth0"],
                         capture_output=True, text=True).stdout
    return "UP" if ",UP" in out.split(">")[0] else "DOWN"


def assert_off(instance: str, when: str) -> None:
    found = container(instance)
    assert found is None, f"{when}: expected the container powered off, found systemd-nspawn {found[0]} running"
    left = netns.ns_pids(names.instance_ns(LAB, instance))
    assert not left, f"{when}: expected no process in the instance's namespace, found {left}"
    assert link_state(instance) == "DOWN", f"{when}: expected the instance's link down, found it up"


def test_running_means_its_container_runs(lab):
    ec2, instance = lab
    TIMINGS["launch: pending -> running"] = round(until_state(ec2, instance, "running"), 2)
    assert container(instance), "the API said running, but the instance has no container"


def test_stopped_means_its_container_is_off(lab):
    ec2, instance = lab
    ec2.stop_instances(InstanceIds=[instance])
    TIMINGS["stop: call -> stopped"] = round(until_state(ec2, instance, "stopped"), 2)
    assert_off(instance, "the moment the API said stopped")


def test_stopped_waits_for_a_slow_poweroff(lab):
    """Deterministic: the instance's own shutdown takes SLOW_POWEROFF seconds."""
    ec2, instance = lab
    ec2.start_instances(InstanceIds=[instance])
    TIMINGS["start: call -> running"] = round(until_state(ec2, instance, "running"), 2)
    found = container(instance)
    assert found, "the API said running, but the instance has no container"
    root = found[1]
    # Written into the instance's disk and enabled: it runs from the next boot on.
    unit = root / "etc/systemd/system/slow-poweroff.service"
    unit.write_text(SLOW_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    (wants / unit.name).symlink_to(f"/etc/systemd/system/{unit.name}")
    ec2.stop_instances(InstanceIds=[instance])
    until_state(ec2, instance, "stopped")
    ec2.start_instances(InstanceIds=[instance])
    until_state(ec2, instance, "running")
    time.sleep(2)   # its systemd has started the unit (multi-user.target is reached in about 0.6 s)
    ec2.stop_instances(InstanceIds=[instance])
    took = until_state(ec2, instance, "stopped")
    TIMINGS[f"stop with a {SLOW_POWEROFF}s shutdown: call -> stopped"] = round(took, 2)
    assert_off(instance, "the moment the API said stopped")
    assert took >= SLOW_POWEROFF, f"expected stopped after the {SLOW_POWEROFF}s shutdown, found it after {took:.2f}s"


def test_terminated_means_its_container_and_namespace_are_gone(lab):
    ec2, instance = lab
    ec2.start_instances(InstanceIds=[instance])
    until_state(ec2, instance, "running")
    time.sleep(2)
    ec2.terminate_instances(InstanceIds=[instance])
    took = until_state(ec2, instance, "terminated")
    TIMINGS[f"terminate with a {SLOW_POWEROFF}s shutdown: call -> terminated"] = round(took, 2)
    found = container(instance)
    assert found is None, f"the moment the API said terminated, expected no container, found {found[0]}"
    assert not netns.exists(names.instance_ns(LAB, instance)), "terminated, but its namespace is still there"


def test_a_launcher_not_yet_systemd_nspawn_is_not_running_to_the_api():
    """On a loaded machine the launcher (sh, moving itself into its cgroup) may not have become
    systemd-nspawn when the converge loop notes the instance: the API must not say running yet."""
    from lab.instances import InstanceHost
    from lab.power import NEEDS, STARTING

    host = object.__new__(InstanceHost)
    host.proc = subprocess.Popen(["sh", "-c", "sleep 5"])
    try:
        assert host.running and not host.launched
    finally:
        host.proc.kill()
        host.proc.wait()
    assert STARTING not in NEEDS["running"]
