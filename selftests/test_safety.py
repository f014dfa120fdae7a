"""Nothing that is not ours is ever deleted or overwritten (DESIGN.md, "Trust"): each harm a
careless or hostile user once caused, reproduced as it was done, and shown gone. The aws target
against moto in server mode on 127.0.0.1.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from selftests.moto_server import REPO, account_state, check_suite, nothing_left, provision, stderr_lines, up_args
from selftests.suite_runner import NO_REPORTS

# Tests spread over the workers (selftests/conftest.py):
# each test builds in its own tmp state dir on the worker's own moto server.
SPREAD_ACROSS_WORKERS = True


def _new_user_key(path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                    serialization.NoEncryption()).decode()
    path.write_text(pem)
    path.chmod(0o600)
    return pem


def _ours(state: dict) -> dict:
    return {k: sorted(v) for k, v in state.items()}


# -- a failed or interrupted re-`up` leaves the environment that was there ---------------------------
REUP_MOMENTS = [
    {"signal": "SIGINT", "at": "ec2.DescribeKeyPairs#1", "phase": "before"},
    {"signal": "SIGTERM", "at": "ec2.DescribeSubnets#2", "phase": "before"},
    {"signal": "SIGINT", "at": "ec2.DescribeSecurityGroups#1", "phase": "after"},
    {"signal": "SIGTERM", "at": "ec2.DescribeNatGateways#1", "phase": "after"},
    {"signal": "SIGINT", "at": "ec2.DescribeInstances#2", "phase": "before"},
    {"signal": "SIGTERM", "at": "ec2.DescribeAddresses#1", "phase": "before"},
    {"raise": "OSError", "at": "ec2.DescribeRouteTables#1", "phase": "before"},
]


def test_interrupted_reup_leaves_the_existing_environment_as_it_was(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("keep")).returncode == 0
    before = _ours(account_state(aws))
    for n, moment in enumerate(REUP_MOMENTS):
        log = tmp_path / f"faults-{n}.log"
        again = provision(aws, state, *up_args("keep"), faults={**moment, "log": str(log)})
        assert " signal " in log.read_text() or " raise " in log.read_text(), f"{moment} never fired"
        assert again.returncode != 0, again.stdout[-1500:]
        assert "Traceback" not in again.stderr, again.stderr[-3000:]
        assert _ours(account_state(aws)) == before, f"after {moment}: the earlier environment changed"


def test_rollback_of_a_reup_removes_only_what_that_up_made(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("part")).returncode == 0
    ec2 = aws.ec2()
    web_eip = next(a for a in ec2.describe_addresses()["Addresses"] if a.get("InstanceId"))
    ec2.disassociate_address(AssociationId=web_eip["AssociationId"])
    ec2.release_address(AllocationId=web_eip["AllocationId"])
    before = _ours(account_state(aws))
    # The re-up allocates a new Elastic IP for the web server and is interrupted right after AWS
    # made it (its answer never reached us): only that address goes; the rest stays.
    again = provision(aws, state, *up_args("part"),
                      faults={"signal": "SIGINT", "at": "ec2.AllocateAddress#1", "phase": "after"})
    assert again.returncode == 130, again.stderr[-2000:]
    assert _ours(account_state(aws)) == before, "the rollback touched what the earlier up had made"


# -- nothing without our tags is deleted, by any command ---------------------------------------------
def test_hostile_env_tag_and_ledger_delete_nothing_untagged(aws, tmp_path):
    ec2 = aws.ec2()
    default_subnet = ec2.describe_subnets()["Subnets"][0]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    victim = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1,
                               SubnetId=default_subnet["SubnetId"])["Instances"][0]["InstanceId"]
    evil_dir = tmp_path / "x" / "evil"
    evil_dir.mkdir(parents=True)
    (evil_dir / "ledger.jsonl").write_text(f'{{"kind": "instance", "id": "{victim}"}}\n')
    ec2.create_security_group(GroupName="bait", Description="bait", VpcId=default_subnet["VpcId"],
                              TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                  {"Key": "Project", "Value": "twotier"}, {"Key": "Env", "Value": str(evil_dir)},
                                  {"Key": "CreatedAt", "Value": "2020-01-01T00:00:00Z"}]}])
    # EC2 (and the realism layer) lists a new group a moment after creating it: wait until it shows.
    deadline = time.monotonic() + 30
    while not ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["bait"]}])["SecurityGroups"]:
        assert time.monotonic() < deadline, "the bait group never showed up"
        time.sleep(0.2)
    dry = provision(aws, tmp_path / "state", "sweep", "--older-than", "1m", "--dry-run")
    real = provision(aws, tmp_path / "state", "sweep", "--older-than", "1m")
    for proc in (dry, real):
        assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "is not an environment name" in proc.stdout, proc.stdout[-2000:]
        assert victim not in proc.stdout, f"{victim} was listed for removal:\n{proc.stdout}"
    # A ledger in the environment's own state directory naming someone else's instance: down
    # looks it up, finds no tags of ours on it, and leaves it, saying so (never "nothing left").
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("own")).returncode == 0
    with open(state / "ledger.jsonl", "a") as ledger:
        ledger.write(f'{{"kind": "instance", "id": "{victim}"}}\n')
    down = provision(aws, state, "down", "--env", "own")
    assert down.returncode == 1 and "nothing left" not in down.stdout, down.stdout[-2000:] + down.stderr[-2000:]
    assert f"instance {victim} LEFT BEHIND" in down.stderr and "does not carry Project=twotier" in down.stderr
    states = {i["InstanceId"]: i["State"]["Name"] for r in ec2.describe_instances()["Reservations"]
              for i in r["Instances"]}
    assert states[victim] == "running", f"the untagged instance {victim} was touched: {states[victim]}"


CORRUPT_LINES = [b"[1,2]\n", b"\xff\xfe\xfd\n", b'{"kind": 5}\n', b'{"kind": "instance", "id": ["i-1"]}\n',
                 b'{"kind": "vpc", "id": "../../etc"}\n', b'{"kind": "inst']


def test_corrupt_ledger_never_blocks_down(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("ledger")).returncode == 0
    with open(state / "ledger.jsonl", "ab") as ledger:
        for line in CORRUPT_LINES:
            ledger.write(line)
    down = provision(aws, state, "down", "--env", "ledger")
    assert down.returncode == 0 and "Traceback" not in down.stderr, down.stdout[-2000:] + down.stderr[-2000:]
    assert not nothing_left(aws), nothing_left(aws)


# -- files the project did not write are never overwritten or deleted -------------------------------
def test_user_files_in_the_state_dir_are_never_touched(aws, tmp_path):
    state = tmp_path / "home-ssh"
    state.mkdir()
    user_key = _new_user_key(state / "id_ed25519")
    (state / "known_hosts").write_text("github.com ssh-ed25519 AAAAuser\n")
    (state / "ssh_config").write_text("Host mine\n  HostName 198.51.100.9\n")
    originals = {p.name: p.read_bytes() for p in state.iterdir()}

    refused = provision(aws, state, *up_args("files"))
    assert refused.returncode == 2, refused.stdout[-2000:]
    assert stderr_lines(refused)[-1].startswith("error: ") and "not written by this project" in refused.stderr
    assert not nothing_left(aws), f"a refused up created {nothing_left(aws)}"

    # With the key named as theirs (--ssh-key), up imports its public half and writes nothing over it.
    up = provision(aws, state, *up_args("files"), "--ssh-key", str(state / "id_ed25519"))
    assert up.returncode == 0, up.stderr[-2000:]
    assert "ssh_config exists and was not written by this project" in up.stderr
    down = provision(aws, state, "down", "--env", "files")
    assert down.returncode == 0, down.stderr[-2000:]
    for name, content in originals.items():
        assert (state / name).read_bytes() == content, f"{name} was changed"
    assert (state / "id_ed25519").read_text() == user_key


def test_existing_key_pair_without_its_private_key_is_an_error_not_a_delete(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("lost")).returncode == 0
    (state / "id_ed25519").unlink()
    again = provision(aws, state, *up_args("lost"))
    assert again.returncode == 2 and "its private key" in again.stderr and "is missing" in again.stderr, again.stderr
    assert aws.ec2().describe_key_pairs(KeyNames=["twotier-lost"])["KeyPairs"], "the key pair was deleted"
    assert aws.ec2().describe_instances(Filters=[{"Name": "tag:Env", "Values": ["lost"]},
                                                 {"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]


# -- one up/down per environment at a time -------------------------------------------------------------
def test_three_concurrent_ups_build_one_environment(aws, tmp_path):
    state = tmp_path / "state"
    cmd = [sys.executable, str(REPO / "provision.py"), *up_args("race"), "--target", "aws", "--state-dir", str(state)]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=aws.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    ok = [r for r in results if r[0] == 0]
    busy = [r for r in results if r[0] == 2 and "is busy" in r[2]]
    assert len(ok) == 1 and len(busy) == 2, [(rc, err[-300:]) for rc, _, err in results]
    assert "pid " in busy[0][2], busy[0][2]      # says who holds it
    found = account_state(aws)
    assert len(found["vpc"]) == 1 and len(found["internet-gateway"]) == 1 and len(found["instance"]) == 2, found
    assert provision(aws, state, "down", "--env", "race").returncode == 0
    assert not nothing_left(aws)


# -- any failure during up rolls back what it made -----------------------------------------------------
@pytest.mark.parametrize("fault", [
    {"raise": "OSError", "at": "ec2.RunInstances#1", "phase": "after"},
    {"raise": "SSHException", "at": "ec2.CreateNatGateway#1", "phase": "after"},
    {"raise": "ResponseParserError", "at": "ec2.AllocateAddress#2", "phase": "before"},
], ids=["oserror", "ssh", "parser"])
def test_error_of_any_type_during_up_rolls_back(aws, tmp_path, fault):
    up = provision(aws, tmp_path / "state", *up_args("anyerr"), faults=fault)
    assert up.returncode == 2, up.stderr[-2000:]
    assert "Traceback" not in up.stderr, up.stderr[-3000:]
    assert stderr_lines(up)[-1].startswith("error: "), stderr_lines(up)
    assert not nothing_left(aws), f"left after a failed up: {nothing_left(aws)}"


# -- the disruptive check always starts the server again ----------------------------------------------
def test_disruptive_check_interrupted_between_stop_and_start_starts_the_server_again(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("disr")).returncode == 0
    proc = check_suite(aws, tmp_path, "--env", "disr", "--state-dir", str(state), "--allow-disruptive",
                       "-m", "disruptive and not host",
                       faults={"signal": "SIGINT", "at": "ec2.StopInstances#1", "phase": "after"})
    assert proc.returncode != 0, proc.stdout[-2000:]
    web = aws.ec2().describe_instances(Filters=[{"Name": "tag:Env", "Values": ["disr"]},
                                                {"Name": "tag:Role", "Values": ["web"]}])["Reservations"][0]["Instances"][0]
    assert web["State"]["Name"] in ("pending", "running"), f"the web server was left {web['State']['Name']}"


# -- long-lived environments survive sweep ------------------------------------------------------------
def test_sweep_keeps_a_long_lived_environment(aws, tmp_path):
    assert provision(aws, tmp_path / "a", *up_args("keeper"), "--long-lived").returncode == 0
    assert provision(aws, tmp_path / "b", *up_args("temp")).returncode == 0
    swept = provision(aws, tmp_path / "b", "sweep", "--older-than", "0m")
    assert swept.returncode == 0, swept.stdout[-2000:] + swept.stderr[-2000:]
    assert "env keeper: kept (long-lived" in swept.stdout, swept.stdout
    left = aws.ec2().describe_vpcs(Filters=[{"Name": "tag:Project", "Values": ["twotier"]}])["Vpcs"]
    assert [t["Value"] for v in left for t in v["Tags"] if t["Key"] == "Env"] == ["keeper"]
    assert provision(aws, tmp_path / "a", "down", "--env", "keeper").returncode == 0


# -- a dead or hung endpoint is named at once and given up within a minute ----------------------------
def _silent_listener():
    """Accepts connections and never answers (a hung endpoint)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue
    threading.Thread(target=accept, daemon=True).start()
    return sock, stop, held


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["closed", "hung"])
def test_dead_or_hung_endpoint_is_named_within_20s_and_ends_within_a_minute(aws, tmp_path, kind):
    listener = None
    if kind == "hung":
        listener, stop, held = _silent_listener()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    else:
        url = f"http://127.0.0.1:{_closed_port()}"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", NO_REPORTS,
           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "--target", "aws", "--env", "gone"]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=aws.env(AWS_ENDPOINT_URL=url), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    named_at = None
    out = []
    for line in proc.stdout:
        out.append(line)
        if named_at is None and f"no answer from {url}" in line:
            named_at = time.monotonic() - start
    rc = proc.wait(timeout=120)
    took = time.monotonic() - start
    if listener:
        stop.set()
        listener.close()
        for c in held:
            c.close()
    text = "".join(out)
    assert named_at is not None and named_at <= 20, f"endpoint named after {named_at}s:\n{text[-2000:]}"
    assert rc == 6 and took <= 60, f"exit {rc} after {took:.0f}s:\n{text[-2000:]}"
    assert "Traceback" not in text, text[-3000:]


# -- the private key appears in no log, even at DEBUG -----------------------------------------------
def test_debug_log_never_shows_the_private_key(tmp_path):
    state = tmp_path / "state"
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q", "-o", NO_REPORTS,
           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "--target", "moto", "--provision",
           f"--state-dir={state}", "--log-cli-level=DEBUG", "-m", "api and not disruptive",
           "--keep"]    # a teardown removes the key file, whose lines are looked for below
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    body = [line for line in (state / "id_ed25519").read_text().splitlines() if line and not line.startswith("-----")]
    assert body and not any(line in proc.stdout + proc.stderr for line in body), "private key material in the log"
