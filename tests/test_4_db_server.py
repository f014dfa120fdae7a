"""Article section 4: the private DB server, reached through the web server, installed through NAT."""
import pytest
from drift_groups import DB_SSH_LOST, WEB_SSH_LOST

# Bash's /dev/tcp reads the server greeting without a MariaDB client on the web server; the
# version string ends within the first 40 bytes, and the server then waits for us, so read no more.
GREETING = "timeout 5 bash -c 'exec 3<>/dev/tcp/{ip}/3306; head -c 40 <&3' | tr -c '[:print:]' '.'"


@pytest.mark.api
@pytest.mark.article("4.1")
@pytest.mark.fails_on("db-in-public-subnet", "private-default-to-igw", "db-public-ip", "db-reachable-from-internet")
def test_db_instance_in_private_subnet_without_public_address(snap, evidence):
    db = snap.db
    evidence("db instance", [f"{db.id} {db.state} in {db.subnet_id}", f"private {db.private_ip}",
                             f"public {db.public_ip or 'none'}"])
    assert db.state == "running", f"expected the DB server running, found {db.state}"
    table = snap.route_table_of(snap.private_subnet)
    assert table and not any(r.kind == "igw" for r in table.routes), (
        f"expected the DB server in a private subnet (no route to an internet gateway), found {db.subnet_id} "
        f"with routes {table.rows() if table else 'none'}")
    assert not db.public_ip, f"expected no public address on the DB server, found {db.public_ip}"


@pytest.mark.api
@pytest.mark.article("4.2")
@pytest.mark.parametrize("protocol,port,label", [
    pytest.param("tcp", 3306, "MariaDB", id="mariadb", marks=pytest.mark.fails_on(
        "db-3306-open-to-world", "db-3306-revoked", "db-reachable-from-internet")),
    pytest.param("icmp", None, "ICMP", id="icmp", marks=pytest.mark.fails_on("db-icmp-revoked")),
    pytest.param("tcp", 22, "SSH", id="ssh", marks=pytest.mark.fails_on(
        "db-ssh-open-to-world", "db-ssh-revoked", "db-reachable-from-internet")),
])
def test_db_allows_only_the_web_server(snap, protocol, port, label, evidence):
    rules = snap.ingress_to(snap.db)
    evidence("db ingress", [f"{g.id} {p.row()}" for g, p in rules])
    matching = [p for _, p in rules if p.covers_port(protocol, port)]
    assert any(p.group_id and snap.group_contains_web(p.group_id) for p in matching), (
        f"expected {label} allowed from the web server's security group, found {[p.row() for p in matching]}")
    from_cidrs = [p.row() for p in matching if p.cidr]
    assert not from_cidrs, f"expected {label} from the web server only, found it also open to {from_cidrs}"
    others = [p.row() for p in matching if p.group_id and not snap.group_contains_web(p.group_id)]
    assert not others, f"expected {label} from the web server only, found it open to other groups {others}"


@pytest.mark.api
@pytest.mark.article("4.2")
@pytest.mark.fails_on("db-3306-open-to-world", "db-ssh-open-to-world", "db-reachable-from-internet")
def test_db_allows_nothing_else(snap, evidence):
    rules = snap.ingress_to(snap.db)
    evidence("db ingress", [f"{g.id} {p.row()}" for g, p in rules])
    allowed = {("tcp", 3306), ("tcp", 22), ("icmp", None)}
    extra = [p.row() for _, p in rules
             if (p.protocol, p.from_port if p.protocol != "icmp" else None) not in allowed or p.cidr
             or (p.protocol == "tcp" and p.from_port != p.to_port)]
    assert not extra, f"expected only 3306, 22 and ICMP from the web server, found also {extra}"


@pytest.mark.host
@pytest.mark.article("4.3")
@pytest.mark.fails_on(*WEB_SSH_LOST, "db-icmp-revoked")
def test_web_server_pings_db(conns, snap, evidence):
    result = conns.execute("web", f"ping -c 2 -i 0.2 -W 2 {snap.db.private_ip}")
    evidence("ping from web", result.evidence())
    assert result.rc == 0, f"expected ping from web to {snap.db.private_ip} answered, found exit {result.rc}"


@pytest.mark.host
@pytest.mark.article("4.4")
@pytest.mark.fails_on(*DB_SSH_LOST)
def test_ssh_to_db_through_web_server(conns, env, evidence):
    result = conns.execute("db", "id -un; hostname")
    evidence("ssh db via web", result.evidence())
    user = env.settings.ssh_user
    assert result.rc == 0 and result.stdout.split()[:1] == [user], (
        f"expected to log in to the DB server through the web server as {user}, "
        f"found {result.stdout or result.stderr}")


@pytest.mark.host
@pytest.mark.article("4.4")
@pytest.mark.fails_on("db-reachable-from-internet")
def test_ssh_to_db_directly_fails(snap, probe, evidence):
    # Every address the DB could be reached at directly: its private one, and a public one if it
    # has been given one (4.1 fails then too; this proves whether it is actually reachable).
    outcomes = {ip: probe.tcp(ip, 22) for ip in filter(None, (snap.db.private_ip, snap.db.public_ip))}
    evidence("tcp :22 from the internet", [f"{ip} {o}" for ip, o in outcomes.items()])
    opened = [ip for ip, o in outcomes.items() if o == "open"]
    assert not opened, f"expected SSH to the DB from the internet to fail, found it open at {opened}"


@pytest.mark.api
@pytest.mark.article("4.5")
@pytest.mark.fails_on("nat-gateway-deleted")
def test_nat_gateway_in_public_subnet_with_own_eip(snap, evidence):
    nats = snap.live_nat_gateways
    evidence("NAT gateways", [f"{n.id} {n.state} in {n.subnet_id} eip {list(n.public_ips)}" for n in nats] or ["none"])
    in_public = [n for n in nats if n.subnet_id == snap.public_subnet.id and n.state == "available"]
    assert in_public, (f"expected an available NAT gateway in the public subnet {snap.public_subnet.id}, found "
                       f"{[(n.id, n.state, n.subnet_id) for n in nats] or 'none'}")
    eips = {a.public_ip for a in snap.addresses}
    with_eip = [n for n in in_public if n.public_ips and set(n.public_ips) <= eips]
    assert with_eip, (f"expected the NAT gateway to have its own Elastic IP, found "
                      f"{[(n.id, list(n.public_ips)) for n in in_public]}")


@pytest.mark.api
@pytest.mark.article("4.5")
@pytest.mark.fails_on("db-in-public-subnet", "private-default-to-igw", "private-nat-route-deleted",
                      "nat-gateway-deleted", "db-reachable-from-internet")
def test_private_subnet_routes_default_to_nat_gateway(snap, evidence):
    table = snap.route_table_of(snap.private_subnet)
    evidence(f"route table {table.id if table else '-'} of the private subnet", table.rows() if table else [])
    default = table.default_route() if table else None
    assert default is not None, (
        f"expected 0.0.0.0/0 in the private subnet's route table, found {table.rows() if table else 'no table'}")
    nat = next((n for n in snap.live_nat_gateways if n.id == default.target), None)
    assert nat is not None, f"expected 0.0.0.0/0 -> a live NAT gateway, found -> {default.target} ({default.state})"
    assert nat.subnet_id == snap.public_subnet.id, f"expected {nat.id} in the public subnet, found {nat.subnet_id}"
    assert default.state == "active", f"expected the route to {nat.id} active, found {default.state}"


@pytest.mark.host
@pytest.mark.article("4.6")
@pytest.mark.fails_on(*DB_SSH_LOST, "db-in-public-subnet", "private-default-to-igw", "private-nat-route-deleted",
                      "nat-gateway-deleted", "db-reachable-from-internet")
def test_db_egress_leaves_through_nat_eip(conns, snap, probe, evidence):
    nat_ips = {ip for n in snap.live_nat_gateways for ip in n.public_ips}
    result = conns.execute("db", f"curl -s -m 10 {probe.echo_url()}")
    seen = result.stdout.strip()
    evidence("the internet saw the DB as", result.evidence())
    assert result.rc == 0, f"expected the DB to reach the internet through NAT, found curl exit {result.rc}"
    assert seen in nat_ips, f"expected the DB's traffic to arrive from the NAT EIP {sorted(nat_ips)}, found {seen}"


@pytest.mark.host
@pytest.mark.article("4.6")
@pytest.mark.parametrize("port", [pytest.param(22, marks=pytest.mark.fails_on("db-reachable-from-internet")),
                                  pytest.param(3306, marks=pytest.mark.fails_on("db-reachable-from-internet"))])
def test_internet_cannot_open_connection_to_db(snap, probe, port, evidence):
    probes = {f"{snap.db.private_ip}:{port}": probe.tcp(snap.db.private_ip, port)}
    if snap.db.public_ip:
        probes[f"{snap.db.public_ip}:{port} (the DB's public address)"] = probe.tcp(snap.db.public_ip, port)
    for n in snap.live_nat_gateways:
        for ip in n.public_ips:
            probes[f"{ip}:{port} (NAT EIP)"] = probe.tcp(ip, port)
    evidence("from the internet", [f"{k} {v}" for k, v in probes.items()])
    opened = [k for k, v in probes.items() if v == "open"]
    assert not opened, f"expected no connection from the internet to the DB, found open: {opened}"


@pytest.mark.host
@pytest.mark.article("4.7")
@pytest.mark.fails_on(*DB_SSH_LOST, "db-in-public-subnet", "mariadb-stopped")
def test_mariadb_installed_running_enabled_listening(db_host, db_os, evidence):
    pkg, svc = db_host.package(db_os.db_package), db_host.service(db_os.db_service)
    sockets = [s for s in db_host.socket.get_listening_sockets() if s.endswith(":3306")]
    evidence("MariaDB", [f"{pkg.name} installed={pkg.is_installed}", f"{svc.name} running={svc.is_running} "
                         f"enabled={svc.is_enabled}", f"listening {sockets}"])
    assert pkg.is_installed, f"expected {pkg.name} installed, found it missing"
    assert svc.is_running, f"expected {svc.name} running, found it stopped"
    assert svc.is_enabled, f"expected {svc.name} enabled, found it disabled"
    assert any(not s.startswith(("tcp://127.", "tcp://::1")) for s in sockets), (
        f"expected MariaDB listening on 3306 beyond loopback, found {sockets or 'nothing on 3306'}")


@pytest.mark.host
@pytest.mark.article("4.7")
@pytest.mark.fails_on(*WEB_SSH_LOST, "db-in-public-subnet", "db-3306-revoked", "mariadb-stopped")
def test_web_server_gets_mariadb_greeting(conns, snap, evidence):
    result = conns.execute("web", GREETING.format(ip=snap.db.private_ip))
    evidence("greeting from web", result.evidence())
    assert "MariaDB" in result.stdout or "mysql" in result.stdout.lower(), (
        f"expected MariaDB's greeting on {snap.db.private_ip}:3306 from the web server, found {result.stdout!r}")


@pytest.mark.host
@pytest.mark.article("4.7")
@pytest.mark.fails_on("db-3306-open-to-world", "db-reachable-from-internet")
def test_other_public_host_cannot_reach_mariadb(snap, probe, evidence):
    try:
        outcome = probe.tcp(snap.db.private_ip, 3306, origin="public-probe")
    except NotImplementedError as exc:
        pytest.skip(str(exc))
    evidence(f"tcp {snap.db.private_ip}:3306 from a host in the public subnet outside the web group", outcome)
    assert outcome != "open", f"expected MariaDB closed to other hosts, found {outcome}"
