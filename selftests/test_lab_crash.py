"""The lab after a crash: the daemon killed -9 leaves containers and namespaces; start() and stop() cope."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest

from lab import daemon, instances, names, netns


@pytest.fixture(scope="module", autouse=True)
def _plain_api(plain_lab_api):
    """This module's labs serve plain moto (see selftests/conftest.py: plain_lab_api)."""

pytestmark = [pytest.mark.xdist_group("labcrash"), pytest.mark.local]
ENV = "labcrash"


def one_instance(api: daemon.LabApi) -> str:
    ec2 = boto3.client("ec2", endpoint_url=api.endpoint, region_name=api.region,
                       aws_access_key_id=api.access_key_id, aws_secret_access_key=api.secret_access_key)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    sub = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    ami = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=sub)["Instances"][0]["InstanceId"]


def crash(state_dir) -> None:
    pid = json.loads((state_dir / daemon.STATE_FILE).read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while instances.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_start_is_idempotent_and_recovers_and_stop_cleans_after_a_crash(tmp_path):
    try:
        daemon.check_prerequisites()
    except daemon.LabPrerequisiteError as exc:
        pytest.skip(str(exc))
    try:
        api = daemon.start(ENV, tmp_path, "us-east-1", progress=print)
        assert daemon.start(ENV, tmp_path, "us-east-1", progress=print) == api, "a second start() made a second lab"
        inst = one_instance(api)
        daemon.wait_settled(tmp_path, timeout=60)
        assert instances.nspawn_pids_of(ENV)
        crash(tmp_path)
        assert daemon.status(ENV, tmp_path) is None
        # A new start cleans the dead lab's leftovers (its API state died with it) and starts fresh.
        api2 = daemon.start(ENV, tmp_path, "us-east-1", progress=print)
        assert api2.access_key_id != api.access_key_id, "a new lab kept the dead lab's credentials"
        assert not instances.nspawn_pids_of(ENV)
        assert not netns.exists(names.instance_ns(ENV, inst))
        one_instance(api2)   # a second instance for the next crash to leave behind
        daemon.wait_settled(tmp_path, timeout=60)
        crash(tmp_path)
        (tmp_path / daemon.STATE_FILE).write_text("{half")  # state half-written
    finally:
        daemon.stop(ENV, tmp_path, progress=print)
    assert not netns.list_ns(names.netns_prefix(ENV))
    assert not instances.nspawn_pids_of(ENV)
    assert not netns.mounts_under(tmp_path)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not [line for line in ps.splitlines() if "systemd-nspawn" in line and str(tmp_path) in line], \
        "an orphaned container is still running"


def test_a_kept_environment_whose_lab_died_says_so(tmp_path):
    """`pytest --env X` and `provision.py status` after the lab's daemon died: one line that says the
    lab is gone and how to clean up, not "no environment" (which reads as if it was never built)."""
    from selftests.suite_runner import REPO, run_suite

    try:
        daemon.check_prerequisites()
    except daemon.LabPrerequisiteError as exc:
        pytest.skip(str(exc))
    env = "labcrash-kept"
    try:
        daemon.start(env, tmp_path, "us-east-1", progress=print)
        crash(tmp_path)
        v = run_suite(tmp_path, "--target", "local", "--env", env, f"--state-dir={tmp_path}")
        status = subprocess.run([sys.executable, str(REPO / "provision.py"), "status", "--env", env,
                                 f"--state-dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=60)
        for out, rc in ((v.output, v.returncode), (status.stderr, status.returncode)):
            assert rc != 0 and "is gone" in out and f"provision.py down --env {env}" in out, out[-1500:]
        assert "Traceback" not in status.stderr
    finally:
        daemon.stop(env, tmp_path, progress=print)
    # Cleaned up: now it is simply not there.
    after = subprocess.run([sys.executable, str(REPO / "provision.py"), "status", "--env", env,
                            f"--state-dir={tmp_path}"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert after.returncode != 0 and "is gone" not in after.stderr and "no local environment" in after.stderr, after.stderr
