"""The aws target against moto in server mode: the real-AWS paths of provisioning.

Image from the SSM public parameter, Amazon Linux 2 with a warning, ClientToken on the creating
calls that take one, the NAT gateway created before the instances and waited for together with
them, IMDSv2, the private key kept private, host keys pinned, the whole up/check/down cycle.
"""
from __future__ import annotations

import re
import socket
import threading

import paramiko
import pytest

from awsenv import waits
from awsenv.errors import EnvError
from awsenv.hosts.os_table import classify_os_release
from awsenv.hosts.ssh import PIN_FILE, Connections
from awsenv.provisioning.provisioner import Provisioner
from awsenv.targets import make_target
from awsenv.targets.base import RETRY_CONFIG
from selftests.moto_server import ADMIN, check_suite, nothing_left, provision, stderr_lines, up_args

AL2_PARAM = "ssm:/aws/service/ami-amazon-linux-latest/amzn2-ami-hvm-x86_64-gp2"


def in_process_target(aws_server, monkeypatch, tmp_path, **values):
    for key, value in aws_server.env().items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("TWOTIER_TEST_FAULTS", raising=False)
    target = make_target({"target": "aws", "env": "inproc", "admin_cidr": ADMIN, "state_dir": str(tmp_path),
                          **values})
    target.open(progress=lambda m: None)
    return target, target.settings


def test_up_check_down_keeps_the_private_key_private(aws, tmp_path):
    state = tmp_path / "state"
    up = provision(aws, state, *up_args("cycle"))
    assert up.returncode == 0, up.stderr[-2000:]
    key_file = state / "id_ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600, f"expected the key file 0600, found {key_file.stat().st_mode:o}"
    body = [line for line in key_file.read_text().splitlines() if line and not line.startswith("-----")]
    assert body, "expected key material in the key file"

    reports = tmp_path / "reports"
    reports.mkdir()
    checks = check_suite(aws, tmp_path, "--env", "cycle", "--state-dir", str(state), html=reports / "report.html")
    assert checks.returncode == 0, checks.stdout[-3000:]
    assert re.search(r"\d+ passed", checks.stdout), checks.stdout[-1000:]

    down = provision(aws, state, "down", "--env", "cycle")
    assert down.returncode == 0 and "nothing left" in down.stdout, down.stdout + down.stderr
    assert not nothing_left(aws), f"expected an empty account after down, found {nothing_left(aws)}"

    # The key material appears nowhere but in its 0600 file: not in any output, report, ledger or config.
    texts = {"up stdout": up.stdout, "up stderr": up.stderr, "pytest output": checks.stdout + checks.stderr,
             "down output": down.stdout + down.stderr}
    texts.update({str(p): p.read_text(errors="replace") for p in reports.rglob("*") if p.is_file()})
    texts.update({str(p): p.read_text(errors="replace") for p in state.rglob("*") if p.is_file() and p != key_file})
    for where, text in texts.items():
        for line in body:
            assert line not in text, f"private key material found in {where}"


def test_image_from_ssm_parameter(aws, monkeypatch, tmp_path):
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    said = []
    image = Provisioner(target, settings, progress=said.append).resolve_image()
    assert image.startswith("ami-") and any("al2023" in m for m in said), said


def test_amazon_linux_2_is_refused_in_one_line_before_anything_is_made(aws, tmp_path):
    """Host setup is written for the OS table's other families: AL2's sshd reads no drop-in folder
    and its MariaDB 5.5 lacks the syntax setup uses. By parameter or by the image's own name."""
    import boto3

    ssm = boto3.client("ssm", endpoint_url=aws.url, region_name="us-east-1", aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    ami = ssm.get_parameter(Name=AL2_PARAM[4:])["Parameter"]["Value"]
    for image in (AL2_PARAM, ami):
        up = provision(aws, tmp_path / image.replace("/", "_"), *up_args("al2"), "--image", image)
        lines = stderr_lines(up)
        assert up.returncode != 0 and len(lines) == 1, up.stdout[-2000:] + up.stderr[-2000:]
        assert "Amazon Linux 2" in lines[0] and "Traceback" not in up.stderr, lines
        assert not nothing_left(aws), nothing_left(aws)
        assert not aws.truth().ec2().describe_key_pairs()["KeyPairs"], "nothing made, not even the key pair"


@pytest.mark.parametrize("kind", ["ecdsa", "dsa"])
def test_an_ssh_key_import_key_pair_refuses_is_refused_in_one_line_before_anything_is_made(aws, tmp_path, kind):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import dsa, ec

    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ecdsa" else dsa.generate_private_key(1024)
    path = tmp_path / f"{kind}_key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    up = provision(aws, tmp_path / "state", *up_args("keytype"), "--ssh-key", str(path))
    lines = stderr_lines(up)
    assert up.returncode != 0 and len(lines) == 1, up.stdout[-2000:] + up.stderr[-2000:]
    assert kind.upper() in lines[0] and "RSA" in lines[0] and "ED25519" in lines[0], lines
    assert not nothing_left(aws), nothing_left(aws)
    assert not aws.truth().ec2().describe_key_pairs()["KeyPairs"]


def test_t2_micro_not_offered_falls_back_to_t3_micro_unless_the_type_was_given(aws, monkeypatch, tmp_path):
    """docs/ARTICLE.md: the default type is t2.micro where offered, else t3.micro."""
    real = Provisioner._offerings

    def without_t2(self, instance_type, zones):
        return [(z, t) for z, t in real(self, instance_type, zones) if t != "t2.micro"]

    monkeypatch.setattr(Provisioner, "_offerings", without_t2)
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    said: list[str] = []
    p = Provisioner(target, settings, progress=said.append)
    built = p.up()
    types = {i["InstanceType"] for r in target.ec2.describe_instances(InstanceIds=[built.web_id, built.db_id])[
        "Reservations"] for i in r["Instances"]}
    assert types == {"t3.micro"}, types
    assert any("t2.micro" in m and "t3.micro" in m for m in said), said
    target, settings = in_process_target(aws, monkeypatch, tmp_path / "given", env="given",
                                         instance_type="t2.micro")
    with pytest.raises(EnvError, match="instance type t2.micro is not offered"):
        Provisioner(target, settings, progress=lambda m: None).check_inputs()


@pytest.mark.parametrize("os_release,family,web,db", [
    ('NAME="Amazon Linux"\nVERSION="2"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n',
     "amazon-linux-2", "httpd", "mariadb-server"),
    ('NAME="Amazon Linux"\nVERSION="2023"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n',
     "amazon-linux-2023", "httpd", "mariadb105-server"),
    ('PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', "debian", "apache2",
     "mariadb-server"),
    ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n', "debian", "apache2",
     "mariadb-server"),
    ('NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', "rhel", "httpd",
     "mariadb-server"),
], ids=["al2", "al2023", "ubuntu", "debian", "rocky"])
def test_os_family_comes_from_the_hosts_os_release(os_release, family, web, db):
    fam = classify_os_release(os_release)
    assert (fam.name, fam.web_package, fam.db_package) == (family, web, db)
    with pytest.raises(EnvError, match="unsupported OS"):
        classify_os_release('ID=plan9\nPRETTY_NAME="Plan 9"\n')


# The MariaDB config files each family's distribution packages put in our file's folder (AL2023's
# mariadb105 packages: /etc/my.cnf.d; Debian 12's mariadb packages and provider plugins:
# /etc/mysql/mariadb.conf.d). A file read after ours would win over our settings.
DISTRIBUTION_CNF = {
    "amazon-linux-2023": ["auth_gssapi.cnf", "client.cnf", "cracklib_password_check.cnf", "enable_encryption.preset",
                          "mariadb-server.cnf", "mysql-clients.cnf", "spider.cnf"],
    "debian": ["50-client.cnf", "50-mysql-clients.cnf", "50-mysqld_safe.cnf", "50-server.cnf", "60-galera.cnf",
               "provider_bzip2.cnf", "provider_lz4.cnf", "provider_lzma.cnf", "provider_lzo.cnf",
               "provider_snappy.cnf"],
}


@pytest.mark.parametrize("family,client", [("amazon-linux-2023", "mariadb105"), ("debian", "mariadb-client")])
def test_db_setup_installs_the_client_explicitly_and_its_config_sorts_last(monkeypatch, family, client):
    from awsenv.hosts import setup
    from awsenv.hosts.os_table import OS_FAMILIES
    from awsenv.hosts.ssh import Result

    fam = OS_FAMILIES[family]
    commands: list[str] = []

    def execute(_client, command, timeout=None):
        commands.append(command)
        return Result(0, "1\n", "", command)

    class Conn:
        def os_family(self, role):
            return fam

        def db(self):
            return object()

    monkeypatch.setattr(setup, "execute", execute)
    setup.setup_db(Conn(), None, progress=lambda m: None)    # type: ignore[arg-type]
    install = next(c for c in commands if c.startswith(fam.install))
    assert client in install.split(), f"the client ({client}) installed explicitly: {install}"
    name = fam.db_config_file.rsplit("/", 1)[1]
    assert all(name > theirs for theirs in DISTRIBUTION_CNF[family]), f"{name} must sort after {DISTRIBUTION_CNF[family]}"


def test_client_tokens_imdsv2_nat_first_and_waits_overlap(aws, monkeypatch, tmp_path):
    """NAT gateway created before the instances, one wait for both: the wait lasts as long as the
    slower of them (the NAT gateway's 60 s here), not the sum (80 s). Time is virtual."""
    target, settings = in_process_target(aws, monkeypatch, tmp_path)
    clock = {"now": 0.0}

    class VirtualTime:
        @staticmethod
        def monotonic():
            return clock["now"]

        @staticmethod
        def sleep(seconds):
            clock["now"] += seconds
    monkeypatch.setattr(waits, "time", VirtualTime)
    calls = []

    def record(model, params, **_):
        calls.append((clock["now"], model.name, dict(params)))     # the API parameters, as the provisioner gave them

    def slow_states(model, parsed, **_):
        # Instances take 20 s to run, the NAT gateway 60 s to become available.
        if model.name == "DescribeInstances" and clock["now"] < 20:
            for r in parsed.get("Reservations", []):
                for i in r["Instances"]:
                    i["State"] = {"Code": 0, "Name": "pending"}
        if model.name == "DescribeNatGateways" and clock["now"] < 60:
            for n in parsed.get("NatGateways", []):
                n["State"] = "pending"
    events = target.ec2.meta.events      # a client copies the session's hooks when made
    events.register_first("before-parameter-build.ec2", record)
    events.register("after-call.ec2", slow_states)
    said = []
    built = Provisioner(target, settings, progress=said.append).up()

    ops = [op for _, op, _ in calls]
    assert ops.index("CreateNatGateway") < ops.index("RunInstances"), ops
    for op in ("RunInstances", "CreateNatGateway", "CreateRouteTable"):
        tokens = [p.get("ClientToken") for _, o, p in calls if o == op]
        # botocore would fill in a random token; ours is stable for the run, so a re-run of the step reuses it
        assert tokens and all(t and t.startswith("inproc-") for t in tokens), (
            f"expected the provisioner's own ClientToken on every {op}, found {tokens}")
    for _, op, p in calls:
        if op == "RunInstances":
            assert p["MetadataOptions"]["HttpTokens"] == "required", "expected IMDSv2 required"

    last_launch = max(i for i, (_, op, _) in enumerate(calls) if op == "RunInstances")
    after = calls[last_launch + 1:]
    nat_polls = [t for t, op, _ in after if op == "DescribeNatGateways"]
    instance_polls = [t for t, op, _ in after if op == "DescribeInstances"]
    assert nat_polls and min(nat_polls) < 20, (
        f"expected the NAT gateway polled while the instances boot (before 20 s), first poll at {nat_polls[:1]}")
    assert max(instance_polls) <= 25, f"expected the instances' wait over by ~20 s, found polls at {instance_polls}"
    done = clock["now"]
    assert 60 <= done < 70, f"expected the waits to overlap (about 60 s, not 80 s), took {done:.0f} s of virtual time"
    assert any("waiting for" in m and built.nat_id in m and "at most" in m for m in said), said

    inst = target.ec2.describe_instances(InstanceIds=[built.web_id, built.db_id])["Reservations"]
    assert all(i["MetadataOptions"]["HttpTokens"] == "required" for r in inst for i in r["Instances"])
    assert RETRY_CONFIG.retries["mode"] == "standard"
    assert target.ec2.meta.config.retries["mode"] == "standard"


def test_every_wait_is_bounded_and_named(aws, monkeypatch, tmp_path):
    target, _ = in_process_target(aws, monkeypatch, tmp_path)
    clock = {"now": 0.0}

    class VirtualTime:
        monotonic = staticmethod(lambda: clock["now"])
        sleep = staticmethod(lambda s: clock.__setitem__("now", clock["now"] + s))
    monkeypatch.setattr(waits, "time", VirtualTime)
    said = []
    with pytest.raises(EnvError, match=r"timed out after 30s waiting for NAT gateway nat-0123456789abcdef0"):
        waits.wait_all(target.ec2, [("nat_gateway_available", "NAT gateway nat-0123456789abcdef0 available", 30,
                                     {"NatGatewayIds": ["nat-0123456789abcdef0"]})], said.append)
    with pytest.raises(EnvError, match=r"timed out after 10s waiting for the thing"):
        waits.wait_until(lambda: False, "the thing", 10, said.append)


# -- host keys: pinned on first contact, a changed key fails with a clear message ----------------

class _AcceptAll(paramiko.ServerInterface):
    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def get_allowed_auths(self, username):
        return "publickey"


def _ssh_server(host_key: paramiko.PKey) -> tuple[int, threading.Thread]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve():
        conn, _ = listener.accept()
        transport = paramiko.Transport(conn)
        transport.add_server_key(host_key)
        try:
            transport.start_server(server=_AcceptAll())
            transport.accept(timeout=5)
        except (paramiko.SSHException, EOFError):
            pass
        finally:
            listener.close()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


class _LoopbackTarget:
    answer_timeout = 10.0

    def __init__(self, port):
        self.port = port

    def connect(self, host, port, timeout=5.0, origin="internet"):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def test_host_key_pinned_on_first_contact_and_change_fails(tmp_path):
    settings = make_target({"target": "moto", "state_dir": str(tmp_path)}).settings
    user_key = paramiko.Ed25519Key.from_private_key_file(_new_key(tmp_path))
    first, second = paramiko.RSAKey.generate(2048), paramiko.RSAKey.generate(2048)

    port, _ = _ssh_server(first)
    conns = Connections(_LoopbackTarget(port), settings, "web.example", "db.example", user_key)
    conns.open_web().close()
    pinned = (tmp_path / PIN_FILE).read_text()
    assert "web.example" in pinned and first.get_base64() in pinned, pinned

    port, _ = _ssh_server(first)       # same key again: accepted
    Connections(_LoopbackTarget(port), settings, "web.example", "db.example", user_key).open_web().close()

    port, _ = _ssh_server(second)      # another key: refused, one clear line
    conns = Connections(_LoopbackTarget(port), settings, "web.example", "db.example", user_key)
    with pytest.raises(EnvError) as err:
        conns.open_web()
    message = str(err.value)
    assert "CHANGED" in message and "web.example" in message and "\n" not in message, message
    assert second.get_base64() not in (tmp_path / PIN_FILE).read_text(), "a changed key must not be pinned"


def _new_key(tmp_path) -> str:
    path = tmp_path / "user_key"
    # paramiko can't generate ed25519 keys; cryptography writes one in OpenSSH format.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                      serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    return str(path)
