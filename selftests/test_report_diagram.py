"""The picture is drawn from the snapshot and each part takes the worst verdict of its checks.

Synthetic snapshots and verdict maps, no AWS: the drawing is a pure function of the two.
"""
import dataclasses
import xml.etree.ElementTree as ET

from awsenv.discovery.snapshot import (
    ElasticIp,
    Instance,
    InternetGateway,
    NatGateway,
    Permission,
    Route,
    RouteTable,
    SecurityGroup,
    Snapshot,
    Subnet,
    Vpc,
)
from fixtures.report.article import parse_article
from fixtures.report.diagram import PARTS, combine, render_svg

SVG = "{http://www.w3.org/2000/svg}"


def snapshot(**changes) -> Snapshot:
    web = Instance("i-web", "web", "running", "t2.micro", "ami-1", "subnet-pub", "10.0.1.4", "198.51.100.10",
                   "ec2-198-51-100-10.compute-1.amazonaws.com", "twotier-twotier", ("sg-web",), "required",
                   ("eni-web",))
    db = Instance("i-db", "db", "running", "t2.micro", "ami-1", "subnet-priv", "10.0.2.4", None, "",
                  "twotier-twotier", ("sg-db",), "required", ("eni-db",))
    snap = Snapshot(
        region="us-east-1",
        vpc=Vpc("vpc-1", "10.0.0.0/16", True, True, False),
        web=web, db=db,
        subnets={"subnet-pub": Subnet("subnet-pub", "10.0.1.0/24", "us-east-1a", False, "rtb-pub", True),
                 "subnet-priv": Subnet("subnet-priv", "10.0.2.0/24", "us-east-1a", False, "rtb-priv", True)},
        route_tables={
            "rtb-pub": RouteTable("rtb-pub", False, (Route("10.0.0.0/16", "local", "active"),
                                                     Route("0.0.0.0/0", "igw-1", "active")), ("subnet-pub",)),
            "rtb-priv": RouteTable("rtb-priv", False, (Route("10.0.0.0/16", "local", "active"),
                                                       Route("0.0.0.0/0", "nat-1", "active")), ("subnet-priv",))},
        internet_gateways=(InternetGateway("igw-1", (("vpc-1", "available"),)),),
        nat_gateways=(NatGateway("nat-1", "subnet-pub", "available", "public", ("198.51.100.20",), ("eipalloc-n",),
                                 "10.0.1.9"),),
        security_groups={
            "sg-web": SecurityGroup("sg-web", "web", "vpc-1", (Permission("tcp", 80, 80, cidr="0.0.0.0/0"),
                                                               Permission("tcp", 22, 22, cidr="198.51.100.0/28")), ()),
            "sg-db": SecurityGroup("sg-db", "db", "vpc-1", (Permission("tcp", 3306, 3306, group_id="sg-web"),
                                                            Permission("tcp", 22, 22, group_id="sg-web"),
                                                            Permission("icmp", -1, -1, group_id="sg-web")), ())},
        addresses=(ElasticIp("eipalloc-w", "198.51.100.10", "eipassoc-w", "i-web", "eni-web", "10.0.1.4"),
                   ElasticIp("eipalloc-n", "198.51.100.20", "eipassoc-n", None, "eni-nat", "10.0.1.9")),
    )
    return dataclasses.replace(snap, **changes)


ALL_PASSED = {k: "passed" for keys in PARTS.values() for k in keys}


def parts_of(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)     # also proves the SVG is well-formed
    return {g.get("id").removeprefix("tt-part-"): g for g in root.iter(f"{SVG}g")
            if (g.get("id") or "").startswith("tt-part-")}


def verdicts_of(svg: str) -> dict[str, str]:
    return {name: g.get("data-verdict") for name, g in parts_of(svg).items()}


def test_every_part_is_drawn_and_green_when_every_check_passed():
    found = verdicts_of(render_svg(snapshot(), ALL_PASSED))
    assert set(found) == set(PARTS)
    assert set(found.values()) == {"passed"}


def test_a_broken_public_route_colours_the_route_and_gateway_not_the_rest():
    found = verdicts_of(render_svg(snapshot(), {**ALL_PASSED, "1.4": "failed"}))
    broken = {p for p, v in found.items() if v == "failed"}
    assert broken == {"public-route", "igw"}


def test_one_parameter_colours_only_its_own_path():
    found = verdicts_of(render_svg(snapshot(), {**ALL_PASSED, "4.2": "failed", "4.2[icmp]": "failed"}))
    assert found["path-web-db-icmp"] == "failed" and found["db"] == "failed"
    assert found["path-web-db-3306"] == found["path-web-db-22"] == "passed"


def test_worst_verdict_wins_not_checked_is_grey_and_not_applicable_only_when_nothing_else_ran():
    assert combine(["passed", "not-applicable", "failed"]) == "failed"
    assert combine(["passed", "accepted"]) == "accepted"
    assert combine(["passed", "not-checked"]) == "not-checked"      # proven only when every check held
    assert combine(["not-applicable", "passed"]) == "passed"
    assert combine(["not-applicable"]) == "not-applicable"
    assert combine([]) == "unknown"
    found = verdicts_of(render_svg(snapshot(), {"1.1": "passed"}))
    assert found["vpc"] == "passed" and found["web"] == "unknown"


def test_an_unchecked_host_colours_its_part_grey():
    found = verdicts_of(render_svg(snapshot(), {**ALL_PASSED, "3.3": "not-checked"}))
    assert found["web"] == found["path-internet-web-80"] == "not-checked"
    assert found["vpc"] == "passed"


def test_the_finished_stage_shows_the_deleted_nat_gateway_and_the_blackhole():
    gone = dataclasses.replace(snapshot().nat_gateways[0], state="deleted")
    rtb = snapshot().route_tables["rtb-priv"]
    blackhole = dataclasses.replace(rtb, routes=(rtb.routes[0], Route("0.0.0.0/0", "nat-1", "blackhole")))
    svg = render_svg(snapshot(nat_gateways=(gone,), route_tables={**snapshot().route_tables, "rtb-priv": blackhole}),
                     ALL_PASSED)
    assert "NAT gateway deleted" in svg and "blackhole" in svg
    assert "-&gt; internet" not in svg.split('data-part="path-db-nat-internet"', 1)[1].split("</text>", 1)[0]


def test_labels_come_from_the_snapshot():
    svg = render_svg(snapshot(), ALL_PASSED)
    for text in ("vpc-1", "10.0.0.0/16", "subnet-pub", "10.0.2.0/24", "igw-1", "nat-1", "198.51.100.20", "i-web",
                 "198.51.100.10", "ec2-198-51-100-10.compute-1.amazonaws.com", "i-db", "10.0.2.4",
                 "tcp/80 from 0.0.0.0/0", "tcp/22 from 198.51.100.0/28", "tcp/3306 from web (sg-web)",
                 "icmp from web (sg-web)", "0.0.0.0/0 -&gt; nat-1 -&gt; internet"):
        assert text in svg, f"expected {text!r} in the picture"


def test_missing_pieces_are_drawn_as_missing_not_crashing():
    snap = snapshot(internet_gateways=(InternetGateway("igw-1", ()),), nat_gateways=(),
                    security_groups={**snapshot().security_groups,
                                     "sg-db": SecurityGroup("sg-db", "db", "vpc-1", (), ())})
    svg = render_svg(snap, {**ALL_PASSED, "1.3": "failed"})
    assert "NO internet gateway attached" in svg and "NO NAT gateway" in svg
    assert "tcp/3306 from web: no rule" in svg
    dashed = {name for name, g in parts_of(svg).items()
              if any(e.get("stroke-dasharray") for e in g if e.tag in (f"{SVG}polyline", f"{SVG}rect"))}
    assert {"path-web-db-3306", "path-web-db-22", "path-web-db-icmp", "nat"} <= dashed


def test_db_moved_into_the_public_subnet_is_called_out():
    db = dataclasses.replace(snapshot().db, subnet_id="subnet-pub")
    assert "the SAME subnet as web" in render_svg(snapshot(db=db), ALL_PASSED)


def test_no_snapshot_gives_a_placeholder():
    svg = render_svg(None, {})
    assert 'id="tt-diagram"' in svg and "never read the environment" in svg


def test_ids_and_evidence_from_the_environment_are_escaped():
    vpc = dataclasses.replace(snapshot().vpc, id="vpc-<script>")
    svg = render_svg(snapshot(vpc=vpc), ALL_PASSED)
    assert "<script>" not in svg and "vpc-&lt;script&gt;" in svg


def test_article_properties_parse_with_continuation_lines():
    art = parse_article("## 1. VPC\n- 1.1 A VPC exists\n  with DNS.\n- 1.2 Two subnets.\n\n"
                        "## 4. Private DB server, reached through NAT\n- 4.1 One DB.\n"
                        "## Beyond the article (hardening)\nScanners would check.\n")
    assert art.properties == {"1.1": "A VPC exists with DNS.", "1.2": "Two subnets.", "4.1": "One DB."}
    assert art.sections == {"1": "VPC", "4": "Private DB server", "H": "Hardening"}
    assert art.hardening_text == "Scanners would check."
