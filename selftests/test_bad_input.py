"""Bad input on the aws target: one clear line, a non-zero exit, no traceback, nothing created.

Each case runs against moto server on 127.0.0.1, for `provision.py up` and for the suite (`pytest`,
check-only or --provision): the suite exits 4 (usage error) for bad options and 6 ("could not
check") for what only the API can tell. Invalid credentials are a second moto server started with
INITIAL_NO_AUTH_ACTION_COUNT=0, which checks every request's signature as AWS does (AuthFailure).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from selftests.moto_server import ADMIN, Server, account_state, check_suite, provision, stderr_lines

# Tests spread over the workers (selftests/conftest.py):
# each case is one command; the module's auth server is cheap to start once per worker.
SPREAD_ACROSS_WORKERS = True

MISSING_KEY = "/nonexistent/id_ed25519"
# (id, extra options, environment changes, expected text, suite exit status, suite needs --provision)
CASES = [
    ("unknown-region", ["--region", "mars-east-1"], {}, "unknown region 'mars-east-1'", 4, False),
    ("no-credentials", [], {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None}, "no AWS credentials found", 6,
     False),
    ("invalid-credentials", [], {"auth": True}, "AWS rejected the credentials (AuthFailure", 6, False),
    ("malformed-vpc-cidr", ["--vpc-cidr", "10.0.0.0/33"], {}, "malformed --vpc-cidr '10.0.0.0/33'", 4, False),
    ("malformed-admin-cidr", ["--admin-cidr", "198.51.100.300/32"], {}, "malformed --admin-cidr", 4, False),
    ("cidr-outside-vpc", ["--public-cidr", "10.1.1.0/24"], {}, "is not inside --vpc-cidr", 4, False),
    ("overlapping-subnets", ["--private-cidr", "10.0.1.128/25"], {}, "overlap", 4, False),
    ("image-does-not-exist", ["--image", "ami-0123456789abcdef0"], {}, "image ami-0123456789abcdef0 does not exist",
     6, True),
    ("image-parameter-missing", ["--image", "ssm:/no/such/parameter"], {}, "cannot resolve image parameter", 6, True),
    ("key-file-missing", ["--ssh-key", MISSING_KEY], {}, f"--ssh-key {MISSING_KEY}: no such file", 4, False),
    ("key-file-too-open", ["--ssh-key", "{open_key}"], {}, "is readable by others (mode 644)", 4, False),
    ("env-name-too-long", ["--env", "a" * 40], {}, "bad env name", 4, False),
    ("env-name-bad-characters", ["--env", "Prod_Env"], {}, "bad env name 'Prod_Env'", 4, False),
    ("admin-cidr-missing", ["--admin-cidr", None], {}, "--admin-cidr is required", 4, True),
    ("env-name-taken-by-others", ["--env", "taken"], {}, "taken by resources not made by this project", 6, True),
    # A trailing newline would have reached file names and the ssh_config.
    ("env-name-trailing-newline", ["--env", "nl\n"], {}, "bad env name 'nl\\n'", 4, False),
    # A newline in the user name would have injected a ProxyCommand into the ssh_config.
    ("ssh-user-newline", ["--ssh-user", "ec2-user\n  ProxyCommand touch /tmp/pwned"], {}, "bad --ssh-user", 4, False),
    ("subnet-prefix-out-of-range", ["--private-cidr", "10.0.2.7/32"], {}, "AWS allows subnets of /16 to /28", 4, False),
]


@pytest.fixture(scope="module")
def auth_server():
    """A moto server that checks credentials (only keys moto's IAM knows are accepted)."""
    code = ("import logging, sys, time\nlogging.disable(logging.CRITICAL)\n"
            "from moto.server import ThreadedMotoServer\n"
            "s = ThreadedMotoServer(ip_address='127.0.0.1', port=0, verbose=False); s.start()\n"
            "print(s.get_host_and_port()[1], flush=True)\nsys.stdin.read()\n")
    env = Server("").env(INITIAL_NO_AUTH_ACTION_COUNT="0")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    port = proc.stdout.readline().strip()
    yield Server(f"http://127.0.0.1:{port}")
    proc.stdin.close()
    proc.wait(timeout=10)


def _prepare(case, aws, auth_server, tmp_path):
    _, options, env_changes, _, _, _ = case
    server = auth_server if env_changes.get("auth") else aws
    env = server.env(**{k: v for k, v in env_changes.items() if k != "auth"})
    if env_changes.get("auth"):
        env.update(AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000", AWS_SECRET_ACCESS_KEY="not-a-real-secret")
    open_key = tmp_path / "open_key"
    open_key.write_text("not really a key\n")
    open_key.chmod(0o644)
    args = {"--env": "badin", "--admin-cidr": ADMIN}
    i = 0
    extra = []
    while i < len(options):
        if options[i] in args:
            args[options[i]] = options[i + 1]
        else:
            extra += [options[i], options[i + 1].replace("{open_key}", str(open_key))]
        i += 2
    opts = [x for k, v in args.items() if v is not None for x in (k, v)] + extra
    if "taken" in opts:
        ec2 = server.ec2()
        ec2.create_vpc(CidrBlock="10.9.0.0/16",
                       TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Env", "Value": "taken"}]}])
    return server, env, opts


def _assert_nothing_created(server, before, state_dir):
    after = account_state(server)
    assert after == before, f"expected nothing created, found {({k: v for k, v in after.items() if v != before[k]})}"
    assert not (state_dir / "id_ed25519").exists(), "expected no key file written"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_provision_up_bad_input(case, aws, auth_server, tmp_path):
    server, env, opts = _prepare(case, aws, auth_server, tmp_path)
    before = account_state(aws)
    state = tmp_path / "state"
    proc = provision(server, state, "up", "--no-host-setup", *opts, env=env)
    lines = stderr_lines(proc)
    assert proc.returncode != 0, f"expected a non-zero exit, found 0\n{proc.stdout[-1500:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, f"expected one line on stderr, found {len(lines)}:\n" + "\n".join(lines)
    assert lines[0].startswith("error: ") and case[3] in lines[0], f"expected {case[3]!r}, found {lines[0]!r}"
    _assert_nothing_created(aws, before, state)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_suite_bad_input(case, aws, auth_server, tmp_path):
    server, env, opts = _prepare(case, aws, auth_server, tmp_path)
    before = account_state(aws)
    state = tmp_path / "state"
    provision_opt = ["--provision"] if case[5] else []
    proc = check_suite(server, tmp_path, *opts, "--state-dir", str(state), *provision_opt, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == case[4], f"expected exit {case[4]}, found {proc.returncode}\n{out[-3000:]}"
    assert "Traceback" not in out, out[-3000:]
    said = [line for line in out.splitlines() if case[3] in line]
    assert len(said) == 1, f"expected {case[3]!r} on one line, found {said}\n{out[-3000:]}"
    _assert_nothing_created(aws, before, state)


@pytest.mark.parametrize("selector", ["web", "i-", "tag:Name", "tag:=x", "i-zzzzzzzz"])
def test_malformed_selector_is_a_usage_error(aws, tmp_path, selector):
    proc = check_suite(aws, tmp_path, "--vpc-id", "vpc-0123456789abcdef0", "--web", selector, "--db", "i-0123456789abcdef0")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, f"expected exit 4 (usage), found {proc.returncode}\n{out[-2000:]}"
    assert "Traceback" not in out and f"bad --web {selector!r}" in out, out[-2000:]


def test_sweep_with_an_absurd_age_is_one_line(aws, tmp_path):
    proc = provision(aws, tmp_path / "state", "sweep", "--older-than", "9999999999d")
    lines = stderr_lines(proc)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert lines == ["error: bad --older-than '9999999999d': longer than any environment can be old"], lines
