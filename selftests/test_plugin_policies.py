"""The plugin's policies before a check (fixtures/policies.py and the modules it names), each on its own.

Stand-in items (markers and requested fixtures, nothing else) for what a policy reads; then one
in-process moto run for what the terminal shows of the article's last step.
Run: python -m pytest -c selftests/pytest.ini selftests/test_plugin_policies.py
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import NamedTuple

import pytest

from fixtures import hosts, stages
from selftests.suite_runner import NO_REPORTS, REPO

SPREAD_ACROSS_WORKERS = True



class Mark(NamedTuple):
    name: str
    args: tuple


def _marker(name):
    def make(*args):
        return Mark(name, args)
    return make


host, stage, article, teardown, disruptive = map(_marker, ("host", "stage", "article", "teardown", "disruptive"))


class Check:
    """What a policy reads of a pytest item: its markers (closest last) and the fixtures it requests."""

    def __init__(self, *marks, fixtures=(), nodeid="tests/test_x.py::test_x"):
        self.marks = list(marks)
        self.fixturenames = list(fixtures)
        self.nodeid = nodeid

    def iter_markers(self, name):
        return (m for m in reversed(self.marks) if m.name == name)

    def get_closest_marker(self, name):
        return next(self.iter_markers(name), None)


@pytest.mark.parametrize("check,roles", [
    (Check(host()), ("web",)),
    (Check(host("web", "db")), ("web", "db")),
    (Check(host("db")), ("web", "db")),                             # the DB is reached through the web server
    (Check(host(), fixtures=["db_os", "snap"]), ("web", "db")),
    (Check(host(), fixtures=["mariadb_greeting"]), ("web", "db")),
    (Check(fixtures=["web_host"]), ("web",)),
    (Check(host(), article("4.3")), ("web",)),                      # its number says nothing
    (Check(article("4.2"), fixtures=["snap", "verdict"]), ()),      # an API check reaches no host
    (Check(host("web"), host("web", "db")), ("web", "db")),         # a parameter's marker adds its roles
], ids=["host", "web-and-db", "db", "db-fixture", "greeting", "web-fixture", "number", "api", "param"])
def test_the_hosts_a_check_needs_come_from_its_fixtures_and_markers(check, roles):
    assert hosts.roles_needed(check) == roles


def test_a_host_marker_names_roles_only():
    hosts.pytest_collection_modifyitems(None, None, [Check(host("web", "db"))])
    with pytest.raises(pytest.UsageError, match="host\\(\\) names dbs; the roles are web, db"):
        hosts.pytest_collection_modifyitems(None, None, [Check(host("dbs"))])


def test_a_finished_stage_check_requests_the_finished_stage():
    """Else the article's last step would not come before it: a usage error at collection."""
    done = Check(stage("finished"), fixtures=["finished_stage", "snap"], nodeid="t::done")
    stages.pytest_collection_modifyitems(None, None, [done])
    forgot = Check(stage("finished"), fixtures=["snap"], nodeid="t::forgot")
    with pytest.raises(pytest.UsageError, match="without requesting the finished_stage fixture.*t::forgot"):
        stages.pytest_collection_modifyitems(None, None, [done, forgot])


def test_the_run_walks_the_article():
    """Installing (and no stage) first, then the finished stage, then what changes the environment,
    the teardown last."""
    items = [Check(teardown(), nodeid="teardown"), Check(disruptive(), nodeid="stop-start"),
             Check(stage("finished"), fixtures=["finished_stage"], nodeid="finished"),
             Check(stage("installing"), nodeid="installing"), Check(nodeid="any")]
    stages.pytest_collection_modifyitems(None, None, items)
    assert [i.nodeid for i in items] == ["installing", "any", "finished", "stop-start", "teardown"]


def test_the_last_step_has_its_own_lines_once_before_the_finished_stage():
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests"), "-c", str(REPO / "pytest.ini"),
                           "--rootdir", str(REPO), "-p", "no:cacheprovider", "-o", NO_REPORTS, "-v",
                           "--target", "moto", "--provision", "--env", "laststeplines", "-m", "not host"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, AWS_EC2_METADATA_DISABLED="true"))
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    lines = out.splitlines()
    heading = [n for n, line in enumerate(lines) if "the article's last step: the NAT gateway deleted" in line]
    assert len(heading) == 1, out[-3000:]
    after = lines[heading[0]:]
    assert after[1].startswith("the article's last step: deleted NAT gateway nat-"), after[:3]
    assert after[2].startswith("done in ") and "the environment is in the finished stage" in after[2], after[:3]
    first_finished = next(n for n, line in enumerate(lines) if "test_nat_gateway_deleted_and_its_elastic_ip" in line)
    installing = next(n for n, line in enumerate(lines) if "test_nat_gateway_in_public_subnet_with_own_eip" in line)
    assert installing < heading[0] <= first_finished + 1, out[-3000:]
