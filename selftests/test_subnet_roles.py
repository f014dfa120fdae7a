"""Which subnet is the public one and which the private one (awsenv/discovery/roles.py): from the
routes and the instances, or a CIDR the user stated; never from where the DB happens to sit.

Synthetic snapshots (the report's diagram tests build the article's shape), no AWS.
"""
import dataclasses

from awsenv.discovery.snapshot import Route, RouteTable, Subnet
from selftests.test_report_diagram import snapshot

LOCAL = Route("10.0.0.0/16", "local", "active")


def with_subnet(snap, sid: str, cidr: str, table: str, routes: tuple[Route, ...] | None = None, **changes):
    subnets = {**snap.subnets, sid: Subnet(sid, cidr, "us-east-1a", False, table, True)}
    tables = dict(snap.route_tables)
    if routes is not None:
        tables[table] = RouteTable(table, False, (LOCAL, *routes), (sid,))
    return dataclasses.replace(snap, subnets=subnets, route_tables=tables, **changes)


def db_in(snap, subnet: str):
    return dataclasses.replace(snap, db=dataclasses.replace(snap.db, subnet_id=subnet))


def test_the_articles_shape_web_public_db_private():
    roles = snapshot().subnet_roles
    assert (roles.public.id, roles.private.id) == ("subnet-pub", "subnet-priv")
    assert "rtb-pub sends 0.0.0.0/0 to igw-1" in roles.public_why
    assert "the DB server's subnet" in roles.private_why


def test_a_db_in_the_public_subnet_leaves_the_private_subnet_private():
    roles = db_in(snapshot(), "subnet-pub").subnet_roles
    assert (roles.public.id, roles.private.id) == ("subnet-pub", "subnet-priv")
    assert "the DB server is in subnet-pub (10.0.1.0/24)" in roles.private_why


def test_a_private_subnet_routed_to_the_igw_is_still_the_dbs_when_no_other_is_private():
    snap = snapshot()
    snap = dataclasses.replace(snap, route_tables={**snap.route_tables, "rtb-priv": RouteTable(
        "rtb-priv", False, (LOCAL, Route("0.0.0.0/0", "igw-1", "active")), ("subnet-priv",))})
    roles = snap.subnet_roles
    assert (roles.public.id, roles.private.id) == ("subnet-pub", "subnet-priv")
    assert "so does its own route table rtb-priv" in roles.private_why


def test_a_subnet_on_the_main_table_is_judged_by_the_main_table():
    snap = snapshot()
    main = RouteTable("rtb-main", True, (LOCAL, Route("0.0.0.0/0", "nat-1", "active")), ())
    priv = dataclasses.replace(snap.subnets["subnet-priv"], route_table_id="rtb-main", explicit_association=False)
    tables = {k: v for k, v in snap.route_tables.items() if k != "rtb-priv"}
    roles = dataclasses.replace(snap, subnets={**snap.subnets, "subnet-priv": priv},
                                route_tables={**tables, "rtb-main": main}).subnet_roles
    assert roles.private.id == "subnet-priv" and "the VPC's main table" in roles.private_why


def test_several_private_candidates_prefer_the_one_routed_to_nat_else_ask_for_the_cidr():
    snap = db_in(with_subnet(snapshot(), "subnet-x", "10.0.3.0/24", "rtb-x", ()), "subnet-pub")
    assert snap.subnet_roles.private.id == "subnet-priv"          # its 0.0.0.0/0 goes to nat-1
    snap = with_subnet(snap, "subnet-y", "10.0.4.0/24", "rtb-y", (Route("0.0.0.0/0", "nat-2", "active"),))
    roles = snap.subnet_roles
    assert roles.private is None and "--private-cidr" in roles.private_why, roles.private_why


def test_a_stated_cidr_names_its_subnet_and_a_missing_one_falls_back_to_the_routes():
    snap = db_in(snapshot(), "subnet-pub")
    stated = dataclasses.replace(snap, stated_cidrs=("10.0.1.0/24", "10.0.2.0/24")).subnet_roles
    assert (stated.public.id, stated.private.id) == ("subnet-pub", "subnet-priv")
    assert "the stated --private-cidr" in stated.private_why
    missing = dataclasses.replace(snap, stated_cidrs=(None, "10.0.9.0/24")).subnet_roles
    assert missing.private.id == "subnet-priv"
    assert missing.private_why.startswith("no subnet of the VPC has the stated --private-cidr 10.0.9.0/24; by the routes")


def test_a_web_server_outside_the_only_public_subnet_does_not_make_its_subnet_public():
    snap = with_subnet(snapshot(), "subnet-x", "10.0.3.0/24", "rtb-x", ())
    snap = dataclasses.replace(snap, web=dataclasses.replace(snap.web, subnet_id="subnet-x"))
    roles = snap.subnet_roles
    assert roles.public.id == "subnet-pub" and "the web server is in subnet-x (10.0.3.0/24)" in roles.public_why
