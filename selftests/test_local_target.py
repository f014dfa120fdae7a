"""The local target end to end: `pytest --provision` proves every property of both of the article's
stages with real hosts and nothing left unchecked, and the host-level drifts are caught on a kept
environment (built with --keep-nat: the installing stage, then taken through the article's last
step for the finished stage). An unreachable vantage point turns the negatives into "not checked",
never "holds". Needs root and the lab's Debian packages.
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
           "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "5.1", "5.2"]
# Each drift applied on the kept environment in its installing stage; `disruptive` where the check
# that catches it is a disruptive one (Apache disabled only shows after a restart).
HOST_DRIFTS = [("apache-disabled", True), ("db-icmp-revoked", False), ("private-nat-route-deleted", False),
               ("db-3306-open-to-world", False), ("dns-hostnames-off", False),
               ("mariadb-stopped", False), ("http-rule-removed", False), ("apache-removed", False),
               ("db-ssh-revoked", False), ("db-reachable-from-internet", False), ("sshd-password-login-on", False),
               ("sshd-root-login-on", False), ("sshd-db-password-login-on", False), ("sshd-web-root-login-on", False),
               ("web-key-replaced", False), ("db-3306-from-public-subnet", False)]
# ... and in the finished stage, where 5.1 must catch them.
FINISHED_DRIFTS = ["db-reachable-from-internet", "db-ssh-revoked", "mariadb-stopped"]
INSTALLING = ["--stage", "installing", "--hardening=enforce"]


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


def test_provision_proves_both_stages_and_leaves_nothing(tmp_path):
    before = lab_leftovers()
    v = run_suite(tmp_path, "--provision", "--env", "st-e2e", "--state-dir", str(tmp_path / "state"), timeout=1200)
    assert v.returncode == 0 and not v.failed, v.output[-4000:]
    assert not v.not_checked, f"expected every check to look on the local target, found not checked: {v.not_checked}"
    assert not v.skipped, f"expected nothing left out of a serial --provision run, found {sorted(v.skipped)}"
    missing = [n for n in ARTICLE if n not in articles_passed(tmp_path / "junit.xml")]
    assert not missing, f"properties without a passing check: {missing}"
    # Both stages, in turn: the NAT gateway proven while installing, then gone after the last step.
    assert {"test_nat_gateway_in_public_subnet_with_own_eip", "test_mariadb_installed_through_the_nat_gateway",
            "test_nat_gateway_deleted_and_its_elastic_ip_released", "test_db_no_longer_reaches_the_internet",
            "test_web_server_still_reaches_the_db"} <= v.passed
    new = set(lab_leftovers()) - set(before)
    assert not new, f"the lab left {sorted(new)}"


@pytest.fixture(scope="module")
def kept_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("kept")
    up = provision_cli("up", "--env", "st-drift", "--keep-nat", state_dir=state)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        yield state
    finally:
        provision_cli("down", "--env", "st-drift", state_dir=state)


def check_kept(tmp_path, state, *extra):
    return run_suite(tmp_path, "--target", "local", "--env", "st-drift", "--state-dir", str(state), *extra)


def test_kept_environment_passes_check_only_while_installing(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env, *INSTALLING)
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    # Left out: what changes or removes the environment, and the finished stage's checks.
    assert set(v.not_applicable) == {"test_elastic_ip_survives_stop_and_start", "test_teardown_leaves_nothing",
                                     "test_nat_gateway_deleted_and_its_elastic_ip_released",
                                     "test_private_subnet_has_no_way_out", "test_db_no_longer_reaches_the_internet",
                                     "test_web_server_still_reaches_the_db"}, v.not_applicable


@pytest.mark.parametrize("name,disruptive", HOST_DRIFTS, ids=[d for d, _ in HOST_DRIFTS])
def test_host_drift_fails_exactly_its_checks(tmp_path, kept_env, name, disruptive):
    applied = provision_cli("drift", name, "--env", "st-drift", state_dir=kept_env)
    assert applied.returncode == 0, applied.stderr
    try:
        v = check_kept(tmp_path, kept_env, *INSTALLING, *(["--allow-disruptive"] if disruptive else []))
    finally:
        reverted = provision_cli("drift", name, "--revert", "--env", "st-drift", state_dir=kept_env)
    assert reverted.returncode == 0, reverted.stderr
    expected = expected_failures(name, host_access=True)
    hidden = sorted(expected & set(v.not_checked))
    assert not hidden, f"drift {name}: checks that must fail were not checked instead: {hidden}\n{v.not_checked}"
    expected &= v.ran
    assert v.failed == expected, (f"drift {name}: expected {sorted(expected)}, found {sorted(v.failed)}\n"
                                  f"{v.output[-3000:]}")
    assert caught_by_a_host_check(name), f"drift {name} must be caught by a host check"


def test_unreachable_vantage_point_makes_negatives_not_checked(tmp_path, kept_env):
    """With the public route gone, nothing on the internet reaches the web server and the neighbour
    in the public subnet is gone: every "cannot connect" is then unproven, and says so."""
    applied = provision_cli("drift", "public-default-route-removed", "--env", "st-drift", state_dir=kept_env)
    assert applied.returncode == 0, applied.stderr
    try:
        v = check_kept(tmp_path, kept_env, *INSTALLING)
    finally:
        reverted = provision_cli("drift", "public-default-route-removed", "--revert", "--env", "st-drift",
                                 state_dir=kept_env)
    assert reverted.returncode == 0, reverted.stderr
    negatives = {"test_ssh_to_db_directly_fails", "test_internet_cannot_open_connection_to_db[22]",
                 "test_internet_cannot_open_connection_to_db[3306]", "test_other_host_cannot_reach_mariadb"}
    assert negatives <= set(v.not_checked), (f"expected the negatives not checked, found passed "
                                             f"{sorted(negatives & v.passed)}\n{v.not_checked}")
    assert all("control" in v.not_checked[n] or "not available" in v.not_checked[n] for n in negatives), v.not_checked
    assert v.failed == expected_failures("public-default-route-removed", host_access=True) & v.ran, sorted(v.failed)
    assert v.returncode == 1


def test_revoked_ssh_is_one_violation_and_the_hosts_not_checked(tmp_path, kept_env):
    """The web server's SSH rule revoked: 2.5 is violated (the rules say so); what needs a login can't
    look, and says so, instead of failing as if Apache or sshd were wrong; HTTP still answers."""
    applied = provision_cli("drift", "web-ssh-revoked", "--env", "st-drift", state_dir=kept_env)
    assert applied.returncode == 0, applied.stderr
    try:
        v = check_kept(tmp_path, kept_env, *INSTALLING)
    finally:
        reverted = provision_cli("drift", "web-ssh-revoked", "--revert", "--env", "st-drift", state_dir=kept_env)
    assert reverted.returncode == 0, reverted.stderr
    assert v.failed == {"test_web_security_group_allows_ssh_from_admins"}, sorted(v.failed)
    assert {"test_ssh_with_environment_key_logs_in", "test_apache_installed", "test_web_server_pings_db",
            "test_mariadb_installed_running_enabled_listening"} <= set(v.not_checked), v.not_checked
    assert "test_http_get_to_elastic_ip_answered_by_apache" in v.passed
    assert v.returncode == 1


def test_parallel_check_only_run_agrees(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env, *INSTALLING, "-n", "2")
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    assert len(v.passed) >= 40, sorted(v.passed)


def test_kept_environment_clean_again_after_reverts(tmp_path, kept_env):
    v = check_kept(tmp_path, kept_env, *INSTALLING)
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]


def test_the_last_step_takes_it_to_the_finished_stage(tmp_path, kept_env):
    # `up` again, without --keep-nat: the article's procedure to its end (the NAT gateway deleted).
    up = provision_cli("up", "--env", "st-drift", state_dir=kept_env)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "the article's last step: deleted NAT gateway" in up.stdout, up.stdout[-2000:]
    v = check_kept(tmp_path, kept_env)                  # check-only proves the finished stage by default
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    assert {"test_nat_gateway_deleted_and_its_elastic_ip_released", "test_private_subnet_has_no_way_out",
            "test_db_no_longer_reaches_the_internet", "test_web_server_still_reaches_the_db"} <= v.passed
    installing = check_kept(tmp_path, kept_env, "--stage", "installing", "-m", "api")
    assert installing.returncode == 1 and "test_nat_gateway_in_public_subnet_with_own_eip" in installing.failed


@pytest.mark.parametrize("name", FINISHED_DRIFTS)
def test_finished_stage_drift_fails_exactly_its_checks(tmp_path, kept_env, name):
    applied = provision_cli("drift", name, "--env", "st-drift", state_dir=kept_env)
    assert applied.returncode == 0, applied.stderr
    try:
        v = check_kept(tmp_path, kept_env, "--hardening=enforce")
    finally:
        reverted = provision_cli("drift", name, "--revert", "--env", "st-drift", state_dir=kept_env)
    assert reverted.returncode == 0, reverted.stderr
    expected = expected_failures(name, host_access=True)
    assert not (expected & set(v.not_checked)), v.not_checked
    assert v.failed == expected & v.ran, f"drift {name}: expected {sorted(expected & v.ran)}, found {sorted(v.failed)}"
    assert any(f.startswith("test_") and f in v.failed for f in (
        "test_private_subnet_has_no_way_out", "test_db_no_longer_reaches_the_internet",
        "test_web_server_still_reaches_the_db")), f"expected 5.1 to catch {name}, found {sorted(v.failed)}"
