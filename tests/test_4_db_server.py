"""Article section 4: the private DB server, reached through the web server, installed through NAT."""
import pytest

ALLOWED = {("tcp", 3306): "MariaDB", ("tcp", 22): "SSH", ("icmp", None): "ICMP"}


@pytest.mark.api
@pytest.mark.article("4.1")
@pytest.mark.fails_on("db-in-public-subnet", "private-default-to-igw", "db-public-ip", "db-reachable-from-internet")
def test_db_instance_in_private_subnet_without_public_address(snap, evidence):
    db, priv = snap.db, snap.private_subnet
    where = snap.subnet_of(db)
    evidence("db instance", [f"{db.id} {db.state} in {where.label if where else db.subnet_id}",
                             f"private {db.private_ip}", f"public {db.public_ip or 'none'}"])
    evidence("the private subnet", snap.subnet_roles.private_why)
    assert db.state == "running", f"expected the DB server running, found {db.state}"
    assert priv is not None, f"expected the DB server in a private subnet, found none: {snap.subnet_roles.private_why}"
    here = snap.route_table_of(where)
    if db.subnet_id != priv.id:
        why = (f", whose {here.label} sends 0.0.0.0/0 to {here.default_route().target}"
               if here and here.default_route() else "")
        raise AssertionError(f"expected the DB server in the private subnet {priv.label}, found it in "
                             f"{where.label if where else db.subnet_id}{why}")
    assert here and not any(r.kind == "igw" for r in here.routes), (
        f"expected the DB server's subnet {priv.label} private (no route to an internet gateway), found "
        f"{here.rows() if here else 'no route table'} in its {here.label if here else 'route table'}")
    assert not db.public_ip, f"expected no public address on the DB server, found {db.public_ip}"


@pytest.mark.api
@pytest.mark.article("4.2")
@pytest.mark.parametrize("protocol,port,label", [
    pytest.param("tcp", 3306, "MariaDB", id="mariadb", marks=pytest.mark.fails_on(
        "db-3306-open-to-world", "db-3306-open-to-ipv6-world", "db-3306-revoked", "db-3306-from-public-subnet",
        "db-reachable-from-internet")),
    pytest.param("icmp", None, "ICMP", id="icmp", marks=pytest.mark.fails_on("db-icmp-revoked")),
    pytest.param("tcp", 22, "SSH", id="ssh", marks=pytest.mark.fails_on(
        "db-ssh-open-to-world", "db-ssh-open-to-ipv6-world", "db-ssh-revoked", "db-reachable-from-internet")),
])
def test_db_allows_only_the_web_server(snap, protocol, port, label, verdict, evidence):
    rules = snap.admitted_to(snap.db)
    evidence("db ingress, by what each source admits", [f"{g.id} {a.row()}" for g, a in rules] or ["no rule"])
    matching = [a for _, a in rules if a.permission.covers_port(protocol, port)]
    assert any(a.only_web for a in matching), (
        f"expected {label} allowed from the web server (its group, a group it is in, or its own address /32), "
        f"found {[a.row() for a in matching] or 'no rule for it'}")
    others = [a.said for a in matching if a.only_web is False]
    assert not others, f"expected {label} from the web server only, found it also admits: {'; '.join(others)}"
    unknown = [a.said for a in matching if a.only_web is None]
    if unknown:
        verdict.not_checked(f"{label} is also allowed from sources that could not be read: {'; '.join(unknown)}")


@pytest.mark.api
@pytest.mark.article("4.2")
@pytest.mark.fails_on("db-3306-open-to-world", "db-ssh-open-to-world", "db-3306-open-to-ipv6-world",
                      "db-ssh-open-to-ipv6-world", "db-3306-from-public-subnet",
                      "db-reachable-from-internet")
def test_db_allows_nothing_else(snap, verdict, evidence):
    rules = snap.admitted_to(snap.db)
    evidence("db ingress, by what each source admits", [f"{g.id} {a.row()}" for g, a in rules] or ["no rule"])

    def kind(p):
        if p.protocol == "icmp":
            return ("icmp", None)
        return (p.protocol, p.from_port) if p.from_port == p.to_port else (p.protocol, "range")
    other_ports = [a.row() for _, a in rules if kind(a.permission) not in ALLOWED]
    other_sources = [a.row() for _, a in rules if kind(a.permission) in ALLOWED and a.only_web is False]
    assert not other_ports, f"expected only 3306, 22 and ICMP open on the DB, found also {other_ports}"
    assert not other_sources, f"expected them from the web server only, found also {other_sources}"
    unknown = [a.row() for _, a in rules if a.only_web is None]
    if unknown:
        verdict.not_checked(f"sources that could not be read: {unknown}")


@pytest.mark.host("web", "db")
@pytest.mark.article("4.3")
@pytest.mark.fails_on("db-icmp-revoked")
def test_web_server_pings_db(conns, snap, evidence):
    result = conns.execute("web", f"ping -c 2 -i 0.2 -W 2 {snap.db.private_ip}")
    evidence("ping from web", result.evidence())
    assert result.rc == 0, f"expected ping from web to {snap.db.private_ip} answered, found exit {result.rc}"


@pytest.mark.host("web", "db")
@pytest.mark.article("4.4")
@pytest.mark.fails_on("db-ssh-revoked")
def test_ssh_to_db_through_web_server(conns, env, verdict, evidence):
    # Not checked when the web server itself can't be logged in to; a finding when it can and the DB
    # can't be reached or refuses from there.
    login = conns.login("db")
    evidence("ssh db through the web server", login.line())
    if login.outcome == "not attempted":
        verdict.not_checked(login.detail)
    assert login.ok, f"expected to log in to the DB server through the web server, found it {login.detail}"
    result = conns.execute("db", "id -un; hostname")
    evidence("ssh db via web", result.evidence())
    user = env.settings.ssh_user
    assert result.rc == 0 and result.stdout.split()[:1] == [user], (
        f"expected to log in to the DB server through the web server as {user}, "
        f"found {result.stdout or result.stderr}")


def db_public_addresses(snap) -> list[str]:
    return sorted({ip for ip in (snap.db.public_ip, getattr(snap.eip_of(snap.db), "public_ip", None)) if ip})


@pytest.mark.host("web", "db")
@pytest.mark.article("4.4")
@pytest.mark.fails_on("db-reachable-from-internet")
def test_ssh_to_db_directly_fails(snap, probe, verdict, evidence):
    E = probe.Endpoint
    # From the internet: every public address the DB has (none, as it should be), beside the web
    # server's HTTP port, which must answer from there.
    outside = probe.closed(probe.internet, E("the web server's Elastic IP", snap.web.public_ip, 80),
                           [E("the DB's public address", ip, 22) for ip in db_public_addresses(snap)])
    evidence("SSH to the DB from the internet", outside.evidence())
    # From inside the VPC, a host that is not the web server: its neighbour in the public subnet.
    inside = probe.closed(probe.neighbour, E("the web server's private address", snap.web.private_ip, 80),
                          [E("the DB's private address", snap.db.private_ip, 22)], optional=True)
    evidence("SSH to the DB from a neighbour in the public subnet", inside.evidence())
    opened = outside.opened + inside.opened
    assert not opened, f"expected SSH to the DB to work only through the web server, found it open at {opened}"
    if not outside.probes and not inside.probes:
        # Only controls answered: nothing tried the DB, so nothing was proven about it.
        verdict.not_checked(f"not probed: the DB has no public address to try from the internet, and "
                            f"{inside.unavailable}; the rules (4.2) say who may connect")


@pytest.mark.api
@pytest.mark.stage("installing")
@pytest.mark.article("4.5")
@pytest.mark.fails_on("nat-gateway-deleted")
def test_nat_gateway_in_public_subnet_with_own_eip(snap, evidence):
    nats, pub = snap.live_nat_gateways, snap.public_subnet
    evidence("NAT gateways", [f"{n.id} {n.state} in {n.subnet_id} eip {list(n.public_ips)}" for n in nats] or ["none"])
    assert pub is not None, f"expected a public subnet for the NAT gateway, found none: {snap.subnet_roles.public_why}"
    in_public = [n for n in nats if n.subnet_id == pub.id and n.state == "available"]
    assert in_public, (f"expected an available NAT gateway in the public subnet {pub.label}, found "
                       f"{[(n.id, n.state, n.subnet_id) for n in nats] or 'none'}")
    eips = {a.public_ip for a in snap.addresses}
    with_eip = [n for n in in_public if n.public_ips and set(n.public_ips) <= eips]
    assert with_eip, (f"expected the NAT gateway to have its own Elastic IP, found "
                      f"{[(n.id, list(n.public_ips)) for n in in_public]}")


@pytest.mark.api
@pytest.mark.stage("installing")
@pytest.mark.article("4.5")
@pytest.mark.fails_on("private-default-to-igw", "private-nat-route-deleted", "nat-gateway-deleted",
                      "db-reachable-from-internet")
def test_private_subnet_routes_default_to_nat_gateway(snap, evidence):
    priv, pub = snap.private_subnet, snap.public_subnet
    evidence("the private subnet", snap.subnet_roles.private_why)
    assert priv is not None, f"expected a private subnet, found none: {snap.subnet_roles.private_why}"
    table = snap.route_table_of(priv)
    evidence(f"{table.label if table else 'no route table'} of the private subnet {priv.label}",
             table.rows() if table else [])
    default = table.default_route() if table else None
    assert table is not None and default is not None, (
        f"expected 0.0.0.0/0 in the route table of the private subnet {priv.label}, found "
        f"{table.rows() if table else 'no route table'} in its {table.label if table else 'route table'}")
    nat = next((n for n in snap.live_nat_gateways if n.id == default.target), None)
    assert nat is not None, (f"expected 0.0.0.0/0 -> a live NAT gateway in {table.label} of the private subnet "
                             f"{priv.label}, found -> {default.target} ({default.state})")
    assert pub is not None and nat.subnet_id == pub.id, (
        f"expected {nat.id} in the public subnet {pub.label if pub else '(none found)'}, found it in "
        f"{snap.subnets[nat.subnet_id].label if nat.subnet_id in snap.subnets else nat.subnet_id}")
    assert default.state == "active", f"expected the route to {nat.id} in {table.label} active, found {default.state}"


@pytest.mark.host("web", "db")
@pytest.mark.stage("installing")
@pytest.mark.article("4.6")
@pytest.mark.fails_on("db-in-public-subnet", "private-default-to-igw", "private-nat-route-deleted",
                      "nat-gateway-deleted", "db-reachable-from-internet")
def test_db_egress_leaves_through_nat_eip(conns, snap, probe, verdict, evidence):
    nat_ips = {ip for n in snap.live_nat_gateways for ip in n.public_ips}
    url = probe.echo_url()
    # The control: the web server reaches the same echo service, so a silent DB is the DB's path.
    control = conns.execute("web", f"curl -s -m 10 {url}")
    evidence("control: the internet saw the web server as", control.evidence())
    if control.rc != 0:
        verdict.not_checked(f"the echo service {url} did not answer the web server either (curl exit {control.rc})")
    result = conns.execute("db", f"curl -s -m 10 {url}")
    seen = result.stdout.strip()
    evidence("the internet saw the DB as", result.evidence())
    assert result.rc == 0, f"expected the DB to reach the internet through NAT, found curl exit {result.rc}"
    assert seen in nat_ips, f"expected the DB's traffic to arrive from the NAT EIP {sorted(nat_ips)}, found {seen}"


@pytest.mark.host("web", "db")
@pytest.mark.stage("installing")
@pytest.mark.article("4.6")
@pytest.mark.parametrize("port", [pytest.param(22, marks=pytest.mark.fails_on("db-reachable-from-internet")),
                                  pytest.param(3306, marks=pytest.mark.fails_on("db-reachable-from-internet"))])
def test_internet_cannot_open_connection_to_db(snap, probe, port, verdict, evidence):
    E = probe.Endpoint
    endpoints = [E("the DB's public address", ip, port) for ip in db_public_addresses(snap)]
    endpoints += [E(f"NAT gateway {n.id}'s Elastic IP", ip, port) for n in snap.live_nat_gateways for ip in n.public_ips]
    negative = probe.closed(probe.internet, E("the web server's Elastic IP", snap.web.public_ip, 80), endpoints)
    evidence("from the internet", negative.evidence())
    assert not negative.opened, f"expected no connection from the internet to the DB, found open: {negative.opened}"


@pytest.mark.host
@pytest.mark.article("4.7")
@pytest.mark.fails_on("mariadb-stopped")
def test_mariadb_installed_running_enabled_listening(db_host, db_os, evidence):
    pkg, svc = db_host.package(db_os.db_package), db_host.service(db_os.db_service)
    sockets = [s for s in db_host.socket.get_listening_sockets() if s.endswith(":3306")]
    running, enabled = svc.is_running, svc.is_enabled
    evidence("MariaDB", [f"{pkg.name} installed={pkg.is_installed}", f"{svc.name} running={running} "
                         f"enabled={enabled}", f"listening {sockets}"])
    assert pkg.is_installed, f"expected {pkg.name} installed, found it missing"
    assert running and enabled, (f"expected {svc.name} running and enabled, found it "
                                 f"{'running' if running else 'stopped'} and {'enabled' if enabled else 'disabled'}")
    assert any(not s.startswith(("tcp://127.", "tcp://::1")) for s in sockets), (
        f"expected MariaDB listening on 3306 beyond loopback, found {sockets or 'nothing on 3306'}")


@pytest.mark.host
@pytest.mark.stage("installing")
@pytest.mark.article("4.7")
@pytest.mark.fails_on("db-in-public-subnet", "private-subnet-replaced")
def test_mariadb_installed_through_the_nat_gateway(conns, snap, db_os, probe, verdict, evidence):
    # The path: the mirror's own log, where the target's package source keeps one (the lab's does),
    # names the NAT gateway's address as the source of the MariaDB packages; else the package
    # manager's log dates the install within the NAT gateway's life.
    installed = conns.package_installs("db", db_os.db_package)
    evidence(f"the DB's package manager: installs of {db_os.db_package}", installed.evidence())
    assert installed.when, f"expected {db_os.db_package} installed by the package manager, found no install of it"
    nat_ips = {ip for n in snap.nat_gateways for ip in n.public_ips}
    evidence("the NAT gateways' addresses", [f"{n.id} ({n.state}): {', '.join(n.public_ips) or '-'}"
                                             for n in snap.nat_gateways] or ["no NAT gateway listed"])
    fetched = probe.package_fetches(installed.sources, db_os.db_package, since=snap.db.launch_time)
    evidence("the package source's access log", fetched.evidence())
    if fetched.clients:
        others = sorted(set(fetched.clients) - nat_ips)
        assert not others, (f"expected the MariaDB packages fetched from the NAT gateway's address {sorted(nat_ips)}, "
                            f"found them fetched from {others}")
        return
    lives = [(n.id, n.create_time, n.delete_time) for n in snap.nat_gateways if n.create_time]
    evidence("NAT gateways' lives", [f"{i} from {c} to {d or 'now'}" for i, c, d in lives] or ["none listed"])
    if not lives:
        verdict.not_checked(f"the package source keeps no log this run can read ({fetched.unavailable}), and no NAT "
                            "gateway of the VPC is listed with its creation time to date the install against")
    within = [i for i, c, d in lives if c <= installed.when and (d is None or installed.when <= d)]
    assert within, (f"expected {db_os.db_package} installed while a NAT gateway lived, found it installed at "
                    f"{installed.when}, outside {[(i, str(c), str(d)) for i, c, d in lives]}")


@pytest.mark.host
@pytest.mark.article("4.7")
@pytest.mark.fails_on("db-3306-revoked", "mariadb-stopped", "db-in-public-subnet", "private-subnet-replaced")
def test_web_server_gets_mariadb_greeting(mariadb_greeting, snap, evidence):
    first = mariadb_greeting(snap.db.private_ip)
    evidence("MariaDB's first packet to the web server", first.evidence())
    assert first.answered, (
        f"expected MariaDB to answer the web server on {snap.db.private_ip}:3306, found {first.describe()}")


@pytest.mark.host("web", "db")
@pytest.mark.article("4.7")
@pytest.mark.fails_on("db-3306-open-to-world", "db-3306-from-public-subnet",
                      "db-reachable-from-internet")
def test_other_host_cannot_reach_mariadb(snap, probe, verdict, evidence):
    E = probe.Endpoint
    negative = probe.closed(probe.neighbour, E("the web server's private address", snap.web.private_ip, 80),
                            [E("MariaDB on the DB's private address", snap.db.private_ip, 3306)], optional=True)
    evidence("from another host in the public subnet", negative.evidence())
    if negative.unavailable:
        # Another host could well reach it: only one outside the web server's groups can show that it can't.
        verdict.not_checked(f"not probed from another host: {negative.unavailable}; the rules (4.2) say who may connect")
    assert not negative.opened, f"expected MariaDB closed to other hosts, found it open at {negative.opened}"
