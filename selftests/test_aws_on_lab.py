"""The aws target's own code, unchanged, on real hosts: against a kept lab's API and hosts, from a
runner on the lab's internet at an --admin-cidr address (`provision.py lab run --as ...`), where a
CI runner stands before AWS. Nothing of the local target is used but the lab itself: the aws
target reaches the API at AWS_ENDPOINT_URL (the lab's, served on its internet), the hosts with
plain sockets, their public names through the runner's resolver (the lab's DNS).

`up` with host setup (Apache; MariaDB through the NAT gateway; the last step), a check-only run of
every check (host checks and the disruptive stop/start included), `up --keep-nat` and the
installing stage's checks, `down`, and a `--provision` run (5.2's teardown); then `lab stop` and
nothing left: no namespace, no mount, no process, no resolv.conf of a runner.

What the aws target lacks that the local target has is "not checked", with the reason, never
"holds": it has no vantage point inside the VPC outside the web server's groups (the lab's
neighbour in the public subnet), so "SSH to the DB directly fails" (4.4: the DB has no public
address to try from outside either) and "no other host can connect to MariaDB" (4.7) are exactly
the two checks it can't make. Needs root and the lab's Debian packages.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab import names, runner
from selftests.suite_runner import REPO, Verdicts, run_suite

pytestmark = [pytest.mark.xdist_group("st-awslab"), pytest.mark.local,
              pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")]

LAB = "st-awslab"
ENV = "st-awslab"
AS = "198.51.100.7"
ADMIN = f"--admin-cidr={AS}/32"
# The checks the aws target can't make from where it stands, and the words their reason holds.
NOT_CHECKED_ON_AWS = {
    "test_ssh_to_db_directly_fails": "the DB has no public address to try from the internet, and target aws has "
                                     "no such vantage point",
    "test_other_host_cannot_reach_mariadb": "target aws has no such vantage point",
}
# Why a check may be not applicable in these runs; anything else left out is a finding of this test.
NOT_APPLICABLE_BECAUSE = ("a check of the installing stage", "a check of the finished stage",
                          "checks an environment it did not build")
# The checks that need the lab to stand where the internet is for the aws target: checkip.amazonaws.com
# (4.6, 5.1), the mirror's access log (4.7), the public DNS name (3.4), SSH from the runner (2.4, 4.4).
ON_REAL_HOSTS_FINISHED = {"test_ssh_with_environment_key_logs_in", "test_http_get_to_elastic_ip_answered_by_apache",
                          "test_public_dns_name_resolves_and_site_answers", "test_ssh_to_db_through_web_server",
                          "test_web_server_gets_mariadb_greeting", "test_db_no_longer_reaches_the_internet",
                          "test_web_server_still_reaches_the_db", "test_elastic_ip_survives_stop_and_start"}
ON_REAL_HOSTS_INSTALLING = {"test_db_egress_leaves_through_nat_eip", "test_mariadb_installed_through_the_nat_gateway",
                            "test_internet_cannot_open_connection_to_db[22]",
                            "test_internet_cannot_open_connection_to_db[3306]"}


def provision(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "provision.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=_shell())


def _shell() -> dict[str, str]:
    """This process's environment without any AWS_ variable: the runner gets the lab's alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_EC2_METADATA_DISABLED": "true"}


class Lab:
    def __init__(self, state: Path):
        self.state = state
        self.lab_dir = state / "lab"
        self.aws_dir = state / "aws"
        self.timings: dict[str, float] = {}

    @property
    def prefix(self) -> tuple[str, ...]:
        return (sys.executable, str(REPO / "provision.py"), "lab", "run", "--env", LAB, f"--state-dir={self.lab_dir}",
                "--as", AS, "--")

    def aws(self, what: str, *args: str, env: str = ENV, timeout: float = 900) -> subprocess.CompletedProcess:
        """provision.py ... --target aws, from the runner; timed as `what`."""
        t0 = time.monotonic()
        out = subprocess.run([*self.prefix, sys.executable, str(REPO / "provision.py"), *args, "--target", "aws",
                              "--env", env, f"--state-dir={self.aws_dir / env}"], cwd=REPO, capture_output=True,
                             text=True, timeout=timeout, env=_shell())
        self.timings[what] = round(time.monotonic() - t0, 1)
        assert out.returncode == 0, f"{what} exited {out.returncode}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out

    def suite(self, tmp_path: Path, what: str, *args: str, env: str = ENV) -> Verdicts:
        t0 = time.monotonic()
        v = run_suite(tmp_path, "--target", "aws", "--env", env, f"--state-dir={self.aws_dir / env}", *args,
                      env=_shell(), prefix=self.prefix, timeout=900)
        self.timings[what] = round(time.monotonic() - t0, 1)
        return v


def leftovers(state: Path) -> list[str]:
    """This lab's namespaces, runner folders, mounts and processes."""
    spaces = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
              if n.startswith(names.netns_prefix(LAB))]
    folders = [str(p) for p in runner.ETC_NETNS.glob(f"{names.netns_prefix(LAB)}*")] if runner.ETC_NETNS.is_dir() else []
    mounts = [m for m in subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout.split()
              if m.startswith(str(state))]
    procs = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f"--env {LAB} " in cmd and ("lab.daemon" in cmd or "lab.vantage" in cmd):
                procs.append(f"{proc.name}: {cmd[:120]}")
    return spaces + folders + mounts + procs


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    state = tmp_path_factory.mktemp("awslab")
    kept = Lab(state)
    assert not leftovers(state), f"a lab named {LAB} is already running here: {leftovers(state)}"
    t0 = time.monotonic()
    started = provision("lab", "start", "--env", LAB, f"--state-dir={kept.lab_dir}")
    kept.timings["lab start"] = round(time.monotonic() - t0, 1)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield kept
    finally:
        t0 = time.monotonic()
        stopped = provision("lab", "stop", "--env", LAB, f"--state-dir={kept.lab_dir}")
        kept.timings["lab stop"] = round(time.monotonic() - t0, 1)
        print(f"\naws target on the lab, seconds: {json.dumps(kept.timings)}")
    assert stopped.returncode == 0, stopped.stderr[-3000:]
    left = leftovers(state)
    assert not left, f"lab stop left {left}"


def assert_only_what_aws_lacks_is_not_checked(v: Verdicts, holds: set[str], also_left_out: tuple[str, ...] = ()) -> None:
    assert not v.failed, f"expected nothing violated, found {sorted(v.failed)}\n{v.output[-4000:]}"
    assert set(v.not_checked) == set(NOT_CHECKED_ON_AWS), (
        f"expected exactly {sorted(NOT_CHECKED_ON_AWS)} not checked, found {v.not_checked}\n{v.output[-3000:]}")
    for name, words in NOT_CHECKED_ON_AWS.items():
        assert words in v.not_checked[name], f"{name}: expected the reason to say {words!r}, found {v.not_checked[name]!r}"
    odd = {n: r for n, r in v.not_applicable.items() if not r.startswith(NOT_APPLICABLE_BECAUSE + also_left_out)}
    assert not odd, f"expected only the other stage's checks and 5.2 not applicable, found also {odd}"
    assert holds <= v.passed, f"expected these to hold on real hosts, found not: {sorted(holds - v.passed)}"
    assert v.returncode == 6, f"expected exit 6 (nothing violated, two not checked), found {v.returncode}"


def test_up_check_down_with_the_aws_targets_own_code_on_real_hosts(lab, tmp_path):
    up = lab.aws("up (host setup, the last step)", "up", ADMIN)
    assert "the article's last step: deleted NAT gateway" in up.stdout, up.stdout[-2000:]
    finished = lab.suite(tmp_path / "finished", "check-only, finished stage + 2.3", "--allow-disruptive")
    assert_only_what_aws_lacks_is_not_checked(finished, ON_REAL_HOSTS_FINISHED)

    lab.aws("up --keep-nat (the NAT gateway again)", "up", ADMIN, "--keep-nat")
    installing = lab.suite(tmp_path / "installing", "check-only, installing stage", "--stage", "installing")
    assert_only_what_aws_lacks_is_not_checked(installing, ON_REAL_HOSTS_INSTALLING, ("disruptive check",))

    down = lab.aws("down", "down")
    assert f"env {ENV}: nothing left" in down.stdout, down.stdout[-2000:]


def test_provision_proves_every_check_and_tears_down(lab, tmp_path):
    env = f"{ENV}-p"
    v = lab.suite(tmp_path, "pytest --provision (both stages, 2.3, 5.2)", "--provision", ADMIN, env=env)
    assert_only_what_aws_lacks_is_not_checked(v, ON_REAL_HOSTS_FINISHED | ON_REAL_HOSTS_INSTALLING
                                              | {"test_teardown_leaves_nothing"})
    assert not v.not_applicable, f"expected every check run by a serial --provision, found {v.not_applicable}"
