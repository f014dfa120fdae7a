"""No negative verdict without its probe: the negative checks of tests/ run here against scripted
vantage points (no lab, no AWS), as each target's vantage points answer.

A negative check (one that proves something cannot happen) holds only where, from a vantage point
that could have reached the subject, a probe was made and failed beside a control that answered from
the same vantage point; else it is "not checked", saying what would make it checkable.
"""
from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from awsenv.hosts.probes import Probe
from awsenv.verdict import NotChecked

REPO = Path(__file__).resolve().parent.parent
SPREAD_ACROSS_WORKERS = True

WEB_EIP, WEB_PRIVATE, DB_PRIVATE, NAT_EIP = "198.51.100.16", "10.0.1.10", "10.0.2.20", "198.51.100.17"


def check_module(name: str):
    spec = importlib.util.spec_from_file_location(f"checks_{name}", REPO / "tests" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DB_CHECKS = check_module("test_4_db_server")


class ScriptedTarget:
    """A target whose vantage points answer as scripted: {(origin, address, port): outcome}; what is
    not scripted times out. `neighbour`: the target offers a host in the public subnet (the lab's)."""
    name = "scripted"
    host_access = True
    host_access_reason = ""
    probe_timeout = 0.1
    boot_timeout = 1.0

    def __init__(self, answers: dict, neighbour: bool):
        self.answers = answers
        self.neighbour = neighbour
        self.neighbour_reason = "" if neighbour else (
            "target scripted has no host inside the VPC outside the web server's groups; --probe-instance "
            "launches one for the run")
        self.probes_made: list[tuple] = []
        self.asked: list[tuple] = []

    def connect(self, host, port, timeout=5.0, origin="internet"):
        self.asked.append((origin, host, port))
        if origin != "internet" and not self.neighbour:
            raise NotImplementedError(f"no {origin} vantage point on the scripted target")
        outcome = self.answers.get((origin, host, port), "timeout")
        if outcome == "refused":
            raise ConnectionRefusedError(111, "Connection refused")
        if outcome == "timeout":
            raise TimeoutError("timed out")
        return socket.socket()       # "open": a socket the probe closes at once


def snapshot(db_public: str | None = None, nat: bool = True):
    web = SimpleNamespace(public_ip=WEB_EIP, private_ip=WEB_PRIVATE, id="i-web")
    db = SimpleNamespace(public_ip=db_public, private_ip=DB_PRIVATE, id="i-db")
    nats = (SimpleNamespace(id="nat-1", public_ips=(NAT_EIP,)),) if nat else ()
    return SimpleNamespace(web=web, db=db, eip_of=lambda instance: None, live_nat_gateways=nats)


class Evidence(list):
    def __call__(self, title, body):
        self.append((title, body))


class Verdict:
    @staticmethod
    def not_checked(reason):
        raise NotChecked(reason)

    @staticmethod
    def not_applicable(reason):
        raise AssertionError(f"not applicable: {reason}")


def run_check(check, target, **fixtures):
    return check(probe=Probe(target), verdict=Verdict(), evidence=Evidence(), **fixtures)


# -- the defects, as issue 18 found them ----------------------------------------------------------

def test_ssh_to_the_db_directly_is_not_checked_where_no_probe_could_reach_it():
    """4.4 on aws: the DB has no public address (nothing to probe from the internet) and aws has no
    host inside the VPC: only the control answered, so the check can't hold, and says what would
    make it checkable."""
    aws = ScriptedTarget({("internet", WEB_EIP, 80): "open"}, neighbour=False)
    with pytest.raises(NotChecked, match="--probe-instance"):
        run_check(DB_CHECKS.test_ssh_to_db_directly_fails, aws, snap=snapshot())


def test_any_port_that_answers_is_the_control():
    """4.4 on local with Apache down: port 80 refused, but tcp/22 answers from the same place (the
    internet), and the web server's refusal on 80 is its own answer inside the VPC: the check looks."""
    local = ScriptedTarget({("internet", WEB_EIP, 80): "refused", ("internet", WEB_EIP, 22): "open",
                            ("public-probe", WEB_PRIVATE, 80): "refused"}, neighbour=True)
    run_check(DB_CHECKS.test_ssh_to_db_directly_fails, local, snap=snapshot())
    assert ("public-probe", DB_PRIVATE, 22) in local.asked, local.asked


def test_the_internet_reaching_a_db_port_at_the_web_servers_address_is_violated():
    """4.6: probing only the NAT gateway's address can't fail (it never accepts a connection from
    outside). The only public host, the web server, could hand the DB's port on (a forward): that
    probe can fail, and here it does."""
    forwarded = ScriptedTarget({("internet", WEB_EIP, 80): "open", ("internet", WEB_EIP, 3306): "open"},
                               neighbour=False)
    with pytest.raises(AssertionError, match="3306"):
        run_check(DB_CHECKS.test_internet_cannot_open_connection_to_db, forwarded, snap=snapshot(), port=3306)
