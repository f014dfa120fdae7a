"""The local target end to end: `pytest --provision` proves every property with real hosts, and
the host-level drifts are caught on a kept environment. Needs root and the lab's Debian packages.
"""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from selftests.expectations import caught_by_a_host_check, expected_failures
from selftests.suite_runner import REPO, run_suite

pytestmark = [pytest.mark.local, pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")]

ARTICLE = ["1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "2.4", "2.5", "3.1", "3.2", "3.3", "3.4",
           "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "5.1"]
# Each drift the issue names, applied on a kept environment; `disruptive` where the check that
# catches it is a disruptive one (Apache disabled only shows after a restart).
HOST_DRIFTS = [("apache-disabled", True), ("db-icmp-revoked", False), ("private-nat-route-deleted", False),
               ("db-3306-open-to-world", False), ("web-ssh-revoked", False), ("dns-hostnames-off", False),
               ("mariadb-stopped", False), ("http-rule-removed", False), ("apache-removed", False),
               ("db-ssh-revoked", False), ("db-reachable-from-internet", False), ("sshd-password-login-on", False),
               ("sshd-root-login-on", False)]


def lab_leftovers() -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    mounts = subprocess.run(["findmnt", "-rn", "-t", "overlay", "-o", "TARGET"], capture_output=True,
                            text=True).stdout.split()
    return sorted(n for n in netns if n.startswith("tl-")) + sorted(m for m in mounts if "twotier" in m)


def provision_cli(*args, state_dir, timeout=900):
    return subprocess.run([sys.executable, str(REPO / "provision.py"), *args, "--target", "local",
                           "--state-dir", str(state_dir)], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def articles_passed(junit) -> set[str]:
    out = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None and case.find("skipped") is None:
            out |= {p.get("value") for p in case.iter("property") if p.get("name") == "article"}
    return out


def test_provision_proves_every_property_and_leaves_nothing(tmp_path):
    before = lab_leftovers()
    v = run_suite(tmp_path, "--provision", "--env", "st-e2e", "--state-dir", str(tmp_path / "state"), timeout=1200)
    assert v.returncode == 0 and not v.failed, v.output[-4000:]
    assert not v.skipped, f"expected no skipped check on the local target, found {sorted(v.skipped)}"
    missing = [n for n in ARTICLE if n not in articles_passed(tmp_path / "junit.xml")]
    assert not missing, f"properties without a passing check: {missing}"
    new = set(lab_leftovers()) - set(before)
    assert not new, f"the lab left {sorted(new)}"


@pytest.fixture(scope="module")
def kept_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("kept")
    up = provision_cli("up", "--env", "st-drift", state_dir=state)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield state
    finally:
        provision_cli("down", "--env", "st-drift", state_dir=state)


def check_kept(tmp_path, state, *extra):
    return run_suite(tmp_path, "--target", "local", "--env", "st-drift", "--state-dir", str(state), *extra)


def test_kept_environment_passes_check_only(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env)
    assert v.returncode == 0 and not v.failed, v.output[-3000:]
    # Only the checks that change or remove the environment are left out of a check-only run.
    assert v.skipped == {"test_elastic_ip_survives_stop_and_start", "test_teardown_leaves_nothing"}, v.skipped


@pytest.mark.parametrize("name,disruptive", HOST_DRIFTS, ids=[d for d, _ in HOST_DRIFTS])
def test_host_drift_fails_exactly_its_checks(tmp_path, kept_env, name, disruptive):
    applied = provision_cli("drift", name, "--env", "st-drift", state_dir=kept_env)
    assert applied.returncode == 0, applied.stderr
    try:
        v = check_kept(tmp_path, kept_env, *(["--allow-disruptive"] if disruptive else []))
    finally:
        reverted = provision_cli("drift", name, "--revert", "--env", "st-drift", state_dir=kept_env)
    assert reverted.returncode == 0, reverted.stderr
    expected = expected_failures(name, host_access=True) & v.ran
    assert v.failed == expected, (f"drift {name}: expected {sorted(expected)}, found {sorted(v.failed)}\n"
                                  f"{v.output[-3000:]}")
    assert caught_by_a_host_check(name), f"drift {name} must be caught by a host check"


def test_parallel_check_only_run_agrees(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env, "-n", "2")
    assert v.returncode == 0 and not v.failed, v.output[-3000:]
    assert len(v.passed) >= 40, sorted(v.passed)


def test_kept_environment_clean_again_after_reverts(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env)
    assert v.returncode == 0 and not v.failed, v.output[-3000:]
