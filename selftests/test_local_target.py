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

from lab import names
from selftests.expectations import caught_by_a_host_check, expected_failures
from selftests.suite_runner import REPO, run_suite

pytestmark = [pytest.mark.local, pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")]

ARTICLE = ["1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "2.4", "2.5", "3.1", "3.2", "3.3", "3.4",
           "4.1", "4.2", "4.3", "4.4", "4.5", "4.6", "4.7", "5.1", "5.2"]
# Each drift applied on the kept environment in its installing stage; `disruptive` where the check
# that catches it is a disruptive one (Apache disabled only shows after a restart).
# The two lists take about as long to check (the disruptive one takes a stop and a start).
HOST_DRIFTS_A = [("apache-disabled", True), ("http-rule-removed", False), ("db-icmp-revoked", False),
                 ("private-nat-route-deleted", False), ("dns-hostnames-off", False), ("apache-removed", False),
                 ("sshd-db-password-login-on", False), ("sshd-web-root-login-on", False), ("site-forbidden", False)]
HOST_DRIFTS_B = [("db-ssh-revoked", False), ("db-reachable-from-internet", False), ("sshd-root-login-on", False),
                 ("sshd-password-login-on", False), ("db-3306-from-public-subnet", False), ("mariadb-stopped", False),
                 ("web-key-replaced", False), ("db-3306-open-to-world", False)]
# ... and in the finished stage, where 5.1 must catch them.
FINISHED_DRIFTS = ["db-reachable-from-internet", "db-ssh-revoked", "mariadb-stopped"]
INSTALLING = ["--stage", "installing", "--hardening=enforce"]


def lab_leftovers(env: str, state_dir) -> list[str]:
    """The env's own namespaces and mounts (other workers' labs come and go meanwhile)."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.split()
    return (sorted(n for n in netns if n.startswith(names.netns_prefix(env))) +
            sorted(m for m in mounts if m.startswith(str(state_dir))))


def provision_cli(*args, state_dir, timeout=900):
    return subprocess.run([sys.executable, str(REPO / "provision.py"), *args, "--target", "local",
                           "--state-dir", str(state_dir)], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def articles_passed(junit) -> set[str]:
    out = set()
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("failure") is None and case.find("error") is None and case.find("skipped") is None:
            out |= {p.get("value") for p in case.iter("property") if p.get("name") == "article"}
    return out


@pytest.mark.xdist_group("st-e2e")     # its own environment, built and torn down by the suite
def test_provision_proves_both_stages_and_leaves_nothing(tmp_path):
    state_dir = tmp_path / "state"
    assert not lab_leftovers("st-e2e", state_dir)
    v = run_suite(tmp_path, "--provision", "--env", "st-e2e", f"--state-dir={state_dir}", timeout=1200)
    assert v.returncode == 0 and not v.failed, v.output[-4000:]
    assert not v.not_checked, f"expected every check to look on the local target, found not checked: {v.not_checked}"
    assert not v.skipped, f"expected nothing left out of a serial --provision run, found {sorted(v.skipped)}"
    missing = [n for n in ARTICLE if n not in articles_passed(tmp_path / "junit.xml")]
    assert not missing, f"properties without a passing check: {missing}"
    # Both stages, in turn: the NAT gateway proven while installing, then gone after the last step.
    assert {"test_nat_gateway_in_public_subnet_with_own_eip", "test_mariadb_installed_through_the_nat_gateway",
            "test_nat_gateway_deleted_and_its_elastic_ip_released", "test_db_no_longer_reaches_the_internet",
            "test_web_server_still_reaches_the_db"} <= v.passed
    left = lab_leftovers("st-e2e", state_dir)
    assert not left, f"the lab left {left}"


# Two kept environments, each one xdist group (one worker): the drifts, each applied, checked and
# reverted in turn, are split between them so that two workers check at once; everything else is
# read-only between a drift and its revert. KEPT_B also takes the article's last step and then the
# finished stage's drifts (its tests run in order on its worker).
KEPT_A, KEPT_B = "st-drift-a", "st-drift-b"
ON_A = pytest.mark.xdist_group(KEPT_A)
ON_B = pytest.mark.xdist_group(KEPT_B)


@pytest.fixture(scope="session")
def kept(tmp_path_factory):
    """kept(env) -> its state dir: a local environment built once (--keep-nat) on first use, torn down
    at the end of the worker's session."""
    built: dict[str, object] = {}

    def get(env):
        if env not in built:
            state = tmp_path_factory.mktemp(env)
            up = provision_cli("up", "--env", env, "--keep-nat", state_dir=state)
            built[env] = state
            assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        return built[env]

    yield get
    for env, state in built.items():
        provision_cli("down", "--env", env, state_dir=state)


def check_kept(tmp_path, env, state, *extra):
    return run_suite(tmp_path, "--target", "local", "--env", env, "--state-dir", str(state), *extra)


def drifted(tmp_path, env, state, name, *extra):
    """The suite's verdicts with drift `name` applied to the kept environment, which is reverted after."""
    applied = provision_cli("drift", name, "--env", env, state_dir=state)
    assert applied.returncode == 0, applied.stderr
    try:
        return check_kept(tmp_path, env, state, *extra)
    finally:
        reverted = provision_cli("drift", name, "--revert", "--env", env, state_dir=state)
        assert reverted.returncode == 0, reverted.stderr


@ON_A
def test_kept_environment_passes_check_only_while_installing(tmp_path, kept):
    v = check_kept(tmp_path, KEPT_A, kept(KEPT_A), *INSTALLING)
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    # Left out: what changes or removes the environment, and the finished stage's checks.
    assert set(v.not_applicable) == {"test_elastic_ip_survives_stop_and_start", "test_teardown_leaves_nothing",
                                     "test_nat_gateway_deleted_and_its_elastic_ip_released",
                                     "test_private_subnet_has_no_way_out", "test_db_no_longer_reaches_the_internet",
                                     "test_web_server_still_reaches_the_db"}, v.not_applicable


def host_drift_fails_exactly_its_checks(tmp_path, env, state, name, disruptive):
    v = drifted(tmp_path, env, state, name, *INSTALLING, *(["--allow-disruptive"] if disruptive else []))
    expected = expected_failures(name, host_access=True)
    hidden = sorted(expected & set(v.not_checked))
    assert not hidden, f"drift {name}: checks that must fail were not checked instead: {hidden}\n{v.not_checked}"
    expected &= v.ran
    assert v.failed == expected, (f"drift {name}: expected {sorted(expected)}, found {sorted(v.failed)}\n"
                                  f"{v.output[-3000:]}")
    assert caught_by_a_host_check(name), f"drift {name} must be caught by a host check"


@ON_A
@pytest.mark.parametrize("name,disruptive", HOST_DRIFTS_A, ids=[d for d, _ in HOST_DRIFTS_A])
def test_host_drift_fails_exactly_its_checks_a(tmp_path, kept, name, disruptive):
    host_drift_fails_exactly_its_checks(tmp_path, KEPT_A, kept(KEPT_A), name, disruptive)


@ON_B
@pytest.mark.parametrize("name,disruptive", HOST_DRIFTS_B, ids=[d for d, _ in HOST_DRIFTS_B])
def test_host_drift_fails_exactly_its_checks_b(tmp_path, kept, name, disruptive):
    host_drift_fails_exactly_its_checks(tmp_path, KEPT_B, kept(KEPT_B), name, disruptive)


def test_every_host_drift_is_checked_on_a_kept_environment():
    from awsenv.provisioning.drifts import CATALOGUE

    listed = [d for d, _ in HOST_DRIFTS_A + HOST_DRIFTS_B]
    assert len(listed) == len(set(listed)), "a drift is listed for both kept environments"
    missing = sorted(d.name for d in CATALOGUE if d.needs_hosts and d.name not in listed)
    assert not missing, f"host drifts no kept environment checks: {missing}"


@ON_A
def test_unreachable_vantage_point_makes_negatives_not_checked(tmp_path, kept):
    """With the public route gone, nothing on the internet reaches the web server and the neighbour
    in the public subnet is gone: every "cannot connect" is then unproven, and says so."""
    v = drifted(tmp_path, KEPT_A, kept(KEPT_A), "public-default-route-removed", *INSTALLING)
    negatives = {"test_ssh_to_db_directly_fails", "test_internet_cannot_open_connection_to_db[22]",
                 "test_internet_cannot_open_connection_to_db[3306]", "test_other_host_cannot_reach_mariadb"}
    assert negatives <= set(v.not_checked), (f"expected the negatives not checked, found passed "
                                             f"{sorted(negatives & v.passed)}\n{v.not_checked}")
    assert all("control" in v.not_checked[n] or "not available" in v.not_checked[n] for n in negatives), v.not_checked
    assert v.failed == expected_failures("public-default-route-removed", host_access=True) & v.ran, sorted(v.failed)
    assert v.returncode == 1


@ON_A
def test_parallel_check_only_run_agrees(tmp_path, kept):
    v = check_kept(tmp_path, KEPT_A, kept(KEPT_A), *INSTALLING, "-n", "2")
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    assert len(v.passed) >= 40, sorted(v.passed)


@ON_B
def test_revoked_ssh_is_one_violation_and_the_hosts_not_checked(tmp_path, kept):
    """The web server's SSH rule revoked: 2.5 is violated (the rules say so); what needs a login can't
    look, and says so, instead of failing as if Apache or sshd were wrong; HTTP still answers."""
    v = drifted(tmp_path, KEPT_B, kept(KEPT_B), "web-ssh-revoked", *INSTALLING)
    assert v.failed == {"test_web_security_group_allows_ssh_from_admins"}, sorted(v.failed)
    assert {"test_ssh_with_environment_key_logs_in", "test_apache_installed", "test_web_server_pings_db",
            "test_mariadb_installed_running_enabled_listening"} <= set(v.not_checked), v.not_checked
    assert "test_http_get_to_elastic_ip_answered_by_apache" in v.passed
    assert v.returncode == 1


@pytest.mark.parametrize("env", [pytest.param(KEPT_A, marks=ON_A), pytest.param(KEPT_B, marks=ON_B)])
def test_kept_environment_clean_again_after_reverts(tmp_path, kept, env):
    v = check_kept(tmp_path, env, kept(env), *INSTALLING)
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]


@ON_B
def test_the_last_step_takes_it_to_the_finished_stage(tmp_path, kept):
    # `up` again, without --keep-nat: the article's procedure to its end (the NAT gateway deleted).
    up = provision_cli("up", "--env", KEPT_B, state_dir=kept(KEPT_B))
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "the article's last step: deleted NAT gateway" in up.stdout, up.stdout[-2000:]
    v = check_kept(tmp_path, KEPT_B, kept(KEPT_B))     # check-only proves the finished stage by default
    assert v.returncode == 0 and not v.failed and not v.not_checked, v.output[-3000:]
    assert {"test_nat_gateway_deleted_and_its_elastic_ip_released", "test_private_subnet_has_no_way_out",
            "test_db_no_longer_reaches_the_internet", "test_web_server_still_reaches_the_db"} <= v.passed
    installing = check_kept(tmp_path, KEPT_B, kept(KEPT_B), "--stage", "installing", "-m", "api")
    assert installing.returncode == 1 and "test_nat_gateway_in_public_subnet_with_own_eip" in installing.failed


@ON_B
@pytest.mark.parametrize("name", FINISHED_DRIFTS)
def test_finished_stage_drift_fails_exactly_its_checks(tmp_path, kept, name):
    v = drifted(tmp_path, KEPT_B, kept(KEPT_B), name, "--hardening=enforce")
    expected = expected_failures(name, host_access=True)
    assert not (expected & set(v.not_checked)), v.not_checked
    assert v.failed == expected & v.ran, f"drift {name}: expected {sorted(expected & v.ran)}, found {sorted(v.failed)}"
    assert any(f.startswith("test_") and f in v.failed for f in (
        "test_private_subnet_has_no_way_out", "test_db_no_longer_reaches_the_internet",
        "test_web_server_still_reaches_the_db")), f"expected 5.1 to catch {name}, found {sorted(v.failed)}"
