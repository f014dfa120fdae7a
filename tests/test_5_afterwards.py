"""Article section 5: the article's last step (the NAT gateway deleted, its Elastic IP released), then
tearing down leaves nothing."""
import pytest


@pytest.mark.api
@pytest.mark.stage("finished")
@pytest.mark.usefixtures("finished_stage")
@pytest.mark.article("5.1")
@pytest.mark.fails_on("extra-nat-gateway", "nat-eip-not-released")
def test_nat_gateway_deleted_and_its_elastic_ip_released(snap, env, evidence):
    evidence("NAT gateways of the VPC", [f"{n.id} {n.state} eip {', '.join(n.public_ips) or '-'} "
                                         f"created {n.create_time or '?'} deleted {n.delete_time or '-'}"
                                         for n in snap.nat_gateways] or ["none listed"])
    alive = [f"{n.id} ({n.state}){env.hourly_cost('nat-gateway')}" for n in snap.live_nat_gateways]
    assert not alive, (f"expected no NAT gateway alive after the article's last step, found {', '.join(alive)}: "
                       "delete it (it is billed by the hour)")
    gone = {a for n in snap.gone_nat_gateways for a in n.allocation_ids}
    kept = [a for a in snap.addresses if a.allocation_id in gone or a.role == "nat-eip"]
    evidence("their Elastic IPs", [f"{a.public_ip} {a.allocation_id} still allocated" for a in kept]
             or ["released (no longer allocated)"])
    assert not kept, (f"expected the NAT gateway's Elastic IP released, found "
                      f"{', '.join(f'{a.public_ip} ({a.allocation_id})' for a in kept)} still allocated"
                      f"{env.hourly_cost('elastic-ip')}")


@pytest.mark.api
@pytest.mark.stage("finished")
@pytest.mark.usefixtures("finished_stage")
@pytest.mark.article("5.1")
@pytest.mark.fails_on("db-reachable-from-internet", "private-default-to-igw")
def test_private_subnet_has_no_way_out(snap, evidence):
    priv = snap.private_subnet
    evidence("the private subnet", snap.subnet_roles.private_why)
    assert priv is not None, f"expected a private subnet, found none: {snap.subnet_roles.private_why}"
    table = snap.route_table_of(priv)
    rows = table.rows() if table else []
    evidence(f"{table.label if table else 'no route table'} of the private subnet {priv.label}", rows or ["no routes"])
    default = table.default_route() if table else None
    if default is not None and default.state == "blackhole":
        evidence("0.0.0.0/0", f"-> {default.target}: a blackhole (the deleted NAT gateway), as the article leaves it")
    out = [r.row() for r in (table.routes if table else ()) if r.state == "active" and r.kind in ("igw", "nat")]
    assert not out, (f"expected no live way from the private subnet {priv.label} to the internet, found {out} in its "
                     f"{table.label if table else 'route table'}")


@pytest.mark.host("web", "db")
@pytest.mark.stage("finished")
@pytest.mark.usefixtures("finished_stage")
@pytest.mark.article("5.1")
@pytest.mark.fails_on("db-reachable-from-internet")
def test_db_no_longer_reaches_the_internet(conns, snap, probe, verdict, evidence):
    url = probe.echo_url()
    # Two controls: the echo service answers the web server (it is up), and the DB reaches the web
    # server's HTTP port (it can open connections at all). Only then does a silent DB mean no way out.
    up = conns.execute("web", f"curl -s -m 10 {url}")
    evidence("control: the echo service answers the web server", up.evidence())
    if up.rc != 0:
        verdict.not_checked(f"the echo service {url} did not answer the web server (curl exit {up.rc})")
    near = probe.through(conns, "db").tcp(snap.web.private_ip, 80)
    evidence("control: from the DB, the web server's private address tcp/80", near)
    if near != "open":
        verdict.not_checked(f"the DB opens no connection even to the web server ({near}): its silence proves nothing")
    result = conns.execute("db", f"curl -s -m {max(probe.negative_timeout, 1.0):g} {url}")
    evidence("the DB to the internet", result.evidence())
    assert result.rc != 0, f"expected the DB cut off from the internet, found it reached {url} as {result.stdout.strip()}"


@pytest.mark.host
@pytest.mark.stage("finished")
@pytest.mark.usefixtures("finished_stage")
@pytest.mark.article("5.1")
@pytest.mark.fails_on("db-icmp-revoked", "db-ssh-revoked", "db-3306-revoked", "mariadb-stopped")
def test_web_server_still_reaches_the_db(conns, mariadb_greeting, snap, evidence):
    ip = snap.db.private_ip
    ping = conns.execute("web", f"ping -c 2 -i 0.2 -W 2 {ip}")
    evidence("ping from web", ping.evidence())
    login = conns.login("db")
    evidence("ssh db through the web server", login.line())
    first = mariadb_greeting(ip)
    evidence("MariaDB's first packet to the web server", first.evidence())
    assert ping.rc == 0, f"expected the web server to still ping the DB at {ip}, found exit {ping.rc}"
    assert login.ok, f"expected SSH to the DB through the web server to still work, found it {login.detail}"
    service = conns.os_family("db").db_service
    running = conns.execute("db", f"systemctl is-active {service}")
    evidence("MariaDB service", running.evidence())
    assert running.stdout.strip() == "active", f"expected {service} still running, found {running.stdout.strip()}"
    assert first.answered, f"expected MariaDB to answer the web server on {ip}:3306, found {first.describe()}"


@pytest.mark.api
@pytest.mark.teardown
@pytest.mark.article("5.2")
@pytest.mark.fails_on("foreign-subnet-blocks-teardown")
def test_teardown_leaves_nothing(tear_down, evidence):
    left = tear_down()
    evidence("after teardown", left.lines() or ["nothing tagged with the environment is left"])
    assert not left, "expected nothing left after teardown, found:\n" + "\n".join(left.lines())
