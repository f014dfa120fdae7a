"""Article section 1: the VPC, its subnets, the internet gateway and the routes."""
import ipaddress

import pytest

pytestmark = pytest.mark.api


@pytest.mark.article("1.1")
@pytest.mark.fails_on("vpc-dns-support-off")
def test_vpc_has_private_cidr_and_dns_support(snap, expected, evidence):
    vpc = snap.vpc
    evidence("VPC", [f"{vpc.id} {vpc.cidr}", f"enableDnsSupport={vpc.dns_support}"])
    assert ipaddress.ip_network(vpc.cidr).is_private, f"expected a private VPC CIDR, found {vpc.cidr}"
    assert vpc.dns_support, f"expected DNS support on in {vpc.id}, found it off"
    if expected.vpc_cidr:
        evidence("compared with the setting", f"--vpc-cidr {expected.vpc_cidr}")
        assert vpc.cidr == expected.vpc_cidr, f"expected VPC CIDR {expected.vpc_cidr}, found {vpc.cidr}"


@pytest.mark.article("1.2")
@pytest.mark.fails_on("private-subnet-replaced")
def test_public_and_private_subnets_in_vpc(snap, expected, evidence):
    roles = snap.subnet_roles
    pub, priv = roles.public, roles.private
    evidence("subnets", [f"{s.label} {s.az}" for s in snap.subnets.values()])
    evidence("their roles, from the routes and the instances (or the CIDRs stated)",
             [f"public: {roles.public_why}", f"private: {roles.private_why}"])
    assert pub is not None, f"expected a public subnet in {snap.vpc.id}, found none: {roles.public_why}"
    assert priv is not None, f"expected a private subnet in {snap.vpc.id}, found none: {roles.private_why}"
    assert pub.id != priv.id, f"expected two subnets, found {pub.label} taken for both the public and the private one"
    vpc = ipaddress.ip_network(snap.vpc.cidr)
    for s in (pub, priv):
        assert ipaddress.ip_network(s.cidr).subnet_of(vpc), f"expected {s.id} inside {vpc}, found {s.cidr}"
    for option, wanted, subnet in (("public-cidr", expected.public_cidr, pub),
                                   ("private-cidr", expected.private_cidr, priv)):
        if wanted:
            evidence("compared with the setting", f"--{option} {wanted}")
            assert subnet.cidr == wanted, (
                f"expected the {option.split('-')[0]} subnet {wanted} (--{option}), found no subnet with that CIDR: "
                f"the {option.split('-')[0]} subnet by its routes is {subnet.label}")


@pytest.mark.article("1.3")
@pytest.mark.fails_on("igw-detached")
def test_internet_gateway_attached(snap, evidence):
    evidence("internet gateways", [f"{g.id} attachments {list(g.attachments)}" for g in snap.internet_gateways]
             or ["none"])
    igw = snap.attached_igw
    assert igw is not None, (f"expected an internet gateway attached to {snap.vpc.id} (state available), found "
                             f"{[(g.id, g.attachments) for g in snap.internet_gateways] or 'none'}")


@pytest.mark.article("1.4")
@pytest.mark.fails_on("igw-detached", "public-default-route-removed")
def test_public_subnet_routes_default_to_igw(snap, evidence):
    pub = snap.public_subnet
    assert pub is not None, f"expected a public subnet, found none: {snap.subnet_roles.public_why}"
    table = snap.route_table_of(pub)
    assert table is not None, f"expected a route table for the public subnet {pub.label}, found none"
    evidence(f"{table.label} of the public subnet {pub.label}", table.rows())
    igw = snap.attached_igw
    default = table.default_route()
    assert default is not None, (
        f"expected 0.0.0.0/0 in {table.label} of the public subnet {pub.label}, found only {table.rows()}")
    assert igw is not None and default.target == igw.id, (
        f"expected 0.0.0.0/0 -> {igw.id if igw else 'the attached internet gateway'} in {table.label} of the "
        f"public subnet {pub.label}, found -> {default.target}")
    assert default.state == "active", f"expected the default route in {table.label} active, found {default.state}"
    assert any(r.kind == "local" for r in table.routes), (
        f"expected the local route beside it in {table.label}, found {table.rows()}")


@pytest.mark.article("1.5")
@pytest.mark.fails_on("private-default-to-igw", "db-reachable-from-internet")
def test_private_subnet_has_no_route_to_igw(snap, evidence):
    priv = snap.private_subnet
    evidence("the private subnet", snap.subnet_roles.private_why)
    assert priv is not None, f"expected a private subnet, found none: {snap.subnet_roles.private_why}"
    table = snap.route_table_of(priv)
    assert table is not None, f"expected a route table for the private subnet {priv.label}, found none"
    evidence(f"{table.label} of the private subnet {priv.label}", table.rows())
    to_igw = [r.row() for r in table.routes if r.kind == "igw"]
    assert not to_igw, (f"expected no route to an internet gateway from the private subnet {priv.label}, found "
                        f"{to_igw} in its {table.label}")
