"""Article section 2: the web server's instance, Elastic IP, key pair and SSH rule."""
import paramiko
import pytest

from awsenv.errors import EnvError
from awsenv.waits import wait_until


@pytest.mark.api
@pytest.mark.article("2.1")
def test_web_instance_runs_in_public_subnet(snap, run, evidence):
    web = snap.web
    evidence("web instance", [f"{web.id} {web.state} {web.instance_type} in {web.subnet_id}"])
    assert web.state == "running", f"expected the web server running, found {web.state}"
    assert snap.public_subnet and snap.route_table_of(snap.public_subnet) and \
        any(r.kind == "igw" for r in snap.route_table_of(snap.public_subnet).routes), (
        f"expected the web server in a public subnet (routed to an internet gateway), found {web.subnet_id}")
    if run.selectors is None:
        assert web.instance_type == run.settings.instance_type, (
            f"expected instance type {run.settings.instance_type}, found {web.instance_type}")


@pytest.mark.api
@pytest.mark.article("2.2")
def test_web_public_address_is_its_elastic_ip(snap, evidence):
    eip = snap.eip_of(snap.web)
    evidence("addresses", [f"public {snap.web.public_ip}", f"elastic ip {eip.public_ip if eip else 'none'}"])
    assert snap.web.public_ip, "expected the web server to have a public address, found none"
    assert eip is not None, f"expected an Elastic IP associated with {snap.web.id}, found none"
    assert eip.public_ip == snap.web.public_ip, (
        f"expected the public address to be the Elastic IP {eip.public_ip}, found {snap.web.public_ip}")


@pytest.mark.api
@pytest.mark.article("2.4")
def test_web_launched_with_environment_key(snap, run, evidence):
    evidence("key pair", [f"instance key {snap.web.key_name}", f"key pairs {list(snap.key_pairs)}"])
    assert snap.web.key_name, "expected the web server launched with a key pair, found none"
    assert snap.web.key_name in snap.key_pairs, f"expected key pair {snap.web.key_name} to exist"
    if run.selectors is None:
        assert snap.web.key_name == run.settings.key_name, (
            f"expected key pair {run.settings.key_name}, found {snap.web.key_name}")


@pytest.mark.host
@pytest.mark.article("2.4")
def test_ssh_with_environment_key_logs_in(conns, run, evidence):
    result = conns.run("web", "id -un")
    evidence("ssh web", result.evidence())
    assert result.stdout.strip() == run.settings.ssh_user, (
        f"expected to log in as {run.settings.ssh_user}, found {result.stdout.strip() or result.stderr}")
    wrong = paramiko.Ed25519Key.generate() if hasattr(paramiko.Ed25519Key, "generate") else None
    if wrong is None:
        wrong = paramiko.ECDSAKey.generate()
    with pytest.raises(paramiko.AuthenticationException):
        conns.open_web(key=wrong).close()
    evidence("wrong key", "a freshly generated key was refused (AuthenticationException)")


@pytest.mark.api
@pytest.mark.article("2.5")
def test_web_security_group_allows_ssh_from_admins(snap, run, evidence):
    rules = snap.ingress_to(snap.web)
    evidence("web ingress", [f"{g.id} {p.row()}" for g, p in rules])
    ssh = [p for _, p in rules if p.covers_port("tcp", 22)]
    assert ssh, f"expected tcp/22 allowed to the web server, found {[p.row() for _, p in rules]}"
    if run.selectors is None and run.settings.admin_cidr:
        assert any(p.cidr == run.settings.admin_cidr for p in ssh), (
            f"expected tcp/22 from the admin CIDR {run.settings.admin_cidr}, found {[p.source for p in ssh]}")


@pytest.mark.disruptive
@pytest.mark.article("2.3")
def test_elastic_ip_survives_stop_and_start(snap, run, target, evidence):
    ec2 = target.ec2
    before = snap.web.public_ip
    eip = snap.eip_of(snap.web)
    assert eip is not None and eip.public_ip == before, (
        f"expected the web server's public address to be an Elastic IP before the stop, found {before}")
    ec2.stop_instances(InstanceIds=[snap.web.id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[snap.web.id], WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    run.changed()
    if target.host_access:
        from awsenv.probes import tcp

        # Proof that the machine really went down, so "it answers again" below means it came back.
        down = tcp(target, before, 80)
        evidence("while stopped", f"tcp {before}:80 {down}")
        assert down != "open", f"expected the web server down while stopped, found port 80 {down}"
    ec2.start_instances(InstanceIds=[snap.web.id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[snap.web.id], WaiterConfig={"Delay": 2, "MaxAttempts": 150})
    run.changed()
    after = run.snapshot().web.public_ip
    evidence("stop/start", [f"before {before}", f"after {after}"])
    assert after == before, f"expected the Elastic IP {before} after stop/start, found {after}"
    if target.host_access:
        from awsenv.probes import http_get

        try:
            status = wait_until(lambda: http_get(target, after)[0] == 200, f"Apache at {after} after the start",
                                timeout=target.boot_timeout, progress=lambda m: None)
        except EnvError as exc:
            pytest.fail(f"expected the site to answer at {after} after the start by itself, found: {exc}")
        evidence("site after start", f"GET http://{after}/ answered 200 without anyone starting Apache: {status}")
