"""A careless user or a broken network (DESIGN.md, "Trust"): SSH never opened to the whole internet
by accident, an answer that isn't one is "could not check", and every bad input is one line.
Each was reproduced first; the aws target against moto in server mode on 127.0.0.1.
"""
from __future__ import annotations

import http.server
import io
import threading
from contextlib import redirect_stdout

import pytest

from selftests.moto_server import ADMIN, account_state, check_suite, provision, stderr_lines, up_args
from selftests.suite_runner import run_suite
from selftests.test_external_env import build_article_by_hand, tcp

# Tests spread over the workers (selftests/conftest.py): each is one command or one small build.
SPREAD_ACROSS_WORKERS = True


def _only_line(proc) -> str:
    lines = stderr_lines(proc)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _suite_line(proc, needle: str) -> str:
    out = proc.output if hasattr(proc, "output") else proc.stdout + proc.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out and "_pytest.outcomes.Exit" not in out, out[-3000:]
    said = [line for line in out.splitlines() if needle in line]
    assert len(said) == 1, f"expected {needle!r} on one line, found {said}\n{out[-3000:]}"
    return said[0]


# -- 6. SSH from the whole internet is never opened by accident -----------------------------------------
@pytest.mark.parametrize("cidr,whom", [("0.0.0.0/0", "the whole internet"), ("0.0.0.0/1", "2,147,483,648 addresses"),
                                       ("10.0.0.0/7", "33,554,432 addresses")])
def test_up_refuses_an_admin_cidr_wider_than_a_slash_8(aws, tmp_path, cidr, whom):
    before = account_state(aws)
    up = provision(aws, tmp_path / "state", "up", "--env", "wide", "--admin-cidr", cidr, "--no-host-setup")
    assert up.returncode == 2
    assert _only_line(up) == (f"error: --admin-cidr {cidr} would open SSH (tcp/22) to {whom}, wider than a /8; give "
                              f"your own address (e.g. 198.51.100.7/32), or add --allow-wide-admin-cidr if that is "
                              f"really meant")
    assert account_state(aws) == before and not (tmp_path / "state").exists()


def test_ipv6_admin_cidr_is_one_line(aws, tmp_path):
    up = provision(aws, tmp_path / "state", "up", "--env", "wide", "--admin-cidr", "::/0", "--no-host-setup")
    assert up.returncode == 2 and "an IPv6 range" in _only_line(up)


def test_wide_admin_cidr_only_when_said(aws, tmp_path):
    up = provision(aws, tmp_path / "state", "up", "--env", "wideok", "--admin-cidr", "0.0.0.0/0", "--no-host-setup",
                   "--allow-wide-admin-cidr")
    assert up.returncode == 0, up.stderr[-2000:]
    assert "22 from 0.0.0.0/0" in up.stdout
    assert provision(aws, tmp_path / "state", "down", "--env", "wideok").returncode == 0


def test_provision_refuses_it_too_as_a_bad_option(tmp_path):
    v = run_suite(tmp_path, "--target", "moto", "--provision", "--admin-cidr", "0.0.0.0/0", f"--state-dir={tmp_path}")
    assert v.returncode == 4, v.output[-2000:]
    assert _suite_line(v, "would open SSH").startswith("ERROR: --admin-cidr 0.0.0.0/0 would open SSH")
    ok = run_suite(tmp_path, "--target", "moto", "--provision", "--admin-cidr", "0.0.0.0/0", "--allow-wide-admin-cidr",
                   f"--state-dir={tmp_path}", "-m", "api and not disruptive")
    assert ok.returncode == 0 and "test_web_security_group_allows_ssh_from_admins" in ok.passed, ok.output[-2000:]


def test_ssh_open_beyond_the_stated_admin_cidr_violates_2_5(tmp_path, plain_aws):
    """Check-only: with --admin-cidr stated, SSH from a wider range too is 2.5 violated, not only a
    hardening finding; without it, nothing was stated to compare (the finding stays advisory)."""
    built = build_article_by_hand(plain_aws)
    built["ec2"].authorize_security_group_ingress(GroupId=built["web_sg"], IpPermissions=[
        tcp(22, IpRanges=[{"CidrIp": "0.0.0.0/0"}])])
    args = ["--target", "aws", "--vpc-id", built["vpc"], "--web", built["web"], "--db", built["db"], "-m", "api",
            f"--state-dir={tmp_path / 'state'}"]
    stated = run_suite(tmp_path, *args, "--admin-cidr", ADMIN, env=plain_aws.env())
    assert stated.failed == {"test_web_security_group_allows_ssh_from_admins"}, sorted(stated.failed)
    assert f"expected tcp/22 from the admin CIDR {ADMIN} only, found it also open to ['0.0.0.0/0']" in stated.output
    assert stated.returncode == 1
    unstated = run_suite(tmp_path, *args, env=plain_aws.env())
    assert not unstated.failed and "test_ssh_not_open_to_world" in unstated.xfailed, unstated.output[-2000:]


# -- 7. an answer that isn't one ----------------------------------------------------------------------
class _Garbage(http.server.BaseHTTPRequestHandler):
    """What a captive portal or a broken proxy answers in the API's place: 200, and not XML."""
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>proxy says <b>hello</body"
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *_):
        pass


@pytest.fixture
def garbage_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_unparseable_answers_are_could_not_check_in_one_line(aws, tmp_path, garbage_endpoint):
    """Reproduced: ~70 INTERNALERROR lines and exit 3."""
    env = aws.env(AWS_ENDPOINT_URL=garbage_endpoint)
    suite = check_suite(aws, tmp_path, "--env", "garbled", f"--state-dir={tmp_path / 'state'}", env=env)
    assert suite.returncode == 6, (suite.stdout + suite.stderr)[-3000:]
    line = _suite_line(suite, "could not check")
    assert "Unable to parse response" in line and "proxy says" in line, line
    up = provision(aws, tmp_path / "state", *up_args("garbled"), env=env)
    assert up.returncode == 2 and "Unable to parse response" in _only_line(up)


def test_an_unparseable_answer_in_the_middle_is_could_not_check(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("midway")).returncode == 0
    proc = check_suite(aws, tmp_path, "--env", "midway", f"--state-dir={state}",
                       faults={"raise": "ResponseParserError", "at": "ec2.DescribeRouteTables#1", "phase": "before"})
    assert proc.returncode == 6, (proc.stdout + proc.stderr)[-3000:]
    assert "injected: unable to parse the answer" in _suite_line(proc, "could not check")
    assert provision(aws, state, "down", "--env", "midway").returncode == 0


# -- 8. the smaller ones --------------------------------------------------------------------------------
@pytest.fixture
def encrypted_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = tmp_path / "id_encrypted"
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"a passphrase")))
    path.chmod(0o600)
    return path


def test_encrypted_ssh_key_says_it_needs_a_passphrase(aws, tmp_path, encrypted_key):
    """Reproduced: "holds no private key paramiko can read" (and a state folder left with its lock)."""
    state = tmp_path / "state"
    up = provision(aws, state, *up_args("enc"), "--ssh-key", str(encrypted_key))
    assert up.returncode == 2
    assert f"SSH key file {encrypted_key} is encrypted and needs a passphrase" in _only_line(up)
    assert not state.exists()
    suite = check_suite(aws, tmp_path, "--env", "enc", f"--ssh-key={encrypted_key}", f"--state-dir={state}")
    assert suite.returncode == 4
    assert _suite_line(suite, "needs a passphrase").startswith("ERROR: SSH key file")


def test_unknown_region_is_a_bad_option_in_one_line(aws, tmp_path):
    """Reproduced: exit 6 and `! _pytest.outcomes.Exit: could not check: unknown region ...`."""
    suite = check_suite(aws, tmp_path, "--env", "reg", "--region", "nowhere-1", f"--state-dir={tmp_path / 'state'}")
    assert suite.returncode == 4
    assert _suite_line(suite, "unknown region").startswith("ERROR: unknown region 'nowhere-1'")


def test_option_value_that_looks_like_an_option_is_one_line(aws, tmp_path):
    """Reproduced: `--env -x` printed argparse's usage wall."""
    proc = provision(aws, tmp_path / "state", "up", "--env", "-x", "--admin-cidr", ADMIN)
    assert proc.returncode == 2
    assert _only_line(proc) == ("error: argument --env: expected one argument; a value that starts with '-' is "
                                "written --OPTION=VALUE")
    proc = provision(aws, tmp_path / "state", "up", "--env=-x", "--admin-cidr", ADMIN)
    assert proc.returncode == 2 and _only_line(proc).startswith("error: bad env name '-x'")
    proc = provision(aws, tmp_path / "state", "up", "--no-such-option")
    assert proc.returncode == 2 and "unrecognized arguments: --no-such-option" in _only_line(proc)


class _LabLike:
    """A target with an API of its own (the local lab's), as provision.py's status sees it."""
    def cli_environment(self):
        return {"AWS_ENDPOINT_URL": "http://127.0.0.1:5555", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY000000",
                "AWS_SECRET_ACCESS_KEY": "the-lab-secret", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


class _Env:
    target = _LabLike()

    class settings:
        env = "lab"

    class _Snap:
        def resources(self):
            return [("vpc", "vpc-0123456789abcdef0", "10.0.0.0/16")]

    def snapshot(self):
        return self._Snap()


def test_the_lab_api_secret_is_shown_only_when_asked():
    """Reproduced: `up` printed the lab API's secret key on stdout (a CI log keeps it)."""
    import provision as cli

    plain, asked = io.StringIO(), io.StringIO()
    with redirect_stdout(plain):
        cli.print_status(_Env())
    with redirect_stdout(asked):
        cli.print_status(_Env(), credentials=True)
    assert "the-lab-secret" not in plain.getvalue() and "AKIAEXAMPLEKEY000000" not in plain.getvalue()
    assert "http://127.0.0.1:5555" in plain.getvalue() and "status --credentials --env lab" in plain.getvalue()
    assert "AWS_SECRET_ACCESS_KEY=the-lab-secret" in asked.getvalue()
