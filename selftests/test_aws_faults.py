"""A flaky API: 20% of HTTP attempts answered with throttling or a 5xx, against moto server.

The faults are answered before the request is sent (awsenv/faults.py), so the server never sees a
failed attempt: that is what AWS throttling is, and a 5xx that never reached the service. botocore's
standard retry mode must carry `up`, the check-only suite and `down` through, with no resource made
twice.
"""
from __future__ import annotations

from collections import Counter

from selftests.moto_server import account_state, check_suite, nothing_left, provision, up_args

RATE = 0.2
# One environment, exactly: the main route table and default security group come with the VPC; `up`
# ends with the article's last step, so its NAT gateway is gone and only the web server's EIP is left.
EXPECTED = {"vpc": 1, "subnet": 2, "internet-gateway": 1, "route-table": 3, "security-group": 3, "nat-gateway": 0,
            "elastic-ip": 1, "instance": 2, "key-pair": 1}


def _faults(log, seed):
    # Backoff delays a tenth of botocore's (the retry logic itself is untouched) to keep the test short.
    return {"rate": RATE, "seed": seed, "kinds": ["throttle", "5xx"], "backoff_scale": 0.1, "log": str(log)}


def test_up_checks_down_survive_20_percent_faults_without_duplicates(aws, tmp_path):
    log = tmp_path / "faults.log"
    state = tmp_path / "state"
    up = provision(aws, state, *up_args("flaky"), faults=_faults(log, seed=11))
    assert up.returncode == 0, up.stderr[-3000:]
    counts = {kind: len(ids) for kind, ids in account_state(aws).items()}
    assert counts == EXPECTED, f"expected exactly one environment, found {counts}"

    checks = check_suite(aws, tmp_path, "--env", "flaky", "--state-dir", str(state), faults=_faults(log, seed=12))
    assert checks.returncode == 0, checks.stdout[-3000:]

    down = provision(aws, state, "down", "--env", "flaky", faults=_faults(log, seed=13))
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
    assert not nothing_left(aws), f"left after down: {nothing_left(aws)}"

    lines = log.read_text().splitlines()
    calls = sum(1 for line in lines if " call " in line)
    faults = [line.split()[3:5] for line in lines if " fault " in line]
    kinds = Counter(code for _, code in faults)
    assert calls > 100 and len(faults) >= 0.1 * calls, f"expected about 20% of {calls} calls to fail, found {kinds}"
    assert {"RequestLimitExceeded", "InternalError"} <= set(kinds) or {"RequestLimitExceeded", "Unavailable"} <= set(
        kinds), f"expected throttling and 5xx among the faults, found {kinds}"


def test_lost_answers_after_a_create_leave_nothing_behind(aws, tmp_path):
    """A 5xx whose request DID reach the service (the create happened, its answer was lost) is the
    case standard retries can't make safe by themselves. run_instances, create_nat_gateway and
    create_route_table carry a ClientToken, so AWS answers a retry with the same resource (moto
    ignores ClientToken, so here a retry makes a second one); the others have no token on AWS
    (VPC, subnet, internet gateway, Elastic IP) or a unique name (key pair, security group: the
    retry fails as Duplicate). Whatever `up` then does (succeed with a tagged duplicate, or fail and
    tear down), every resource carries our tags from its first byte, so `down` removes it all."""
    log = tmp_path / "faults.log"
    for seed in (3, 7):
        up = provision(aws, tmp_path / "state", *up_args("lost"),
                       faults={"lost": 0.3, "seed": seed, "backoff_scale": 0.1, "log": str(log)})
        assert "Traceback" not in up.stderr, up.stderr[-3000:]
        down = provision(aws, tmp_path / "state", "down", "--env", "lost")
        assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
        assert not nothing_left(aws), f"seed {seed}: left after down: {nothing_left(aws)}"
    assert " fault " in log.read_text(), "expected some answers lost"


def test_fault_injector_refuses_anything_but_a_local_endpoint(monkeypatch):
    import boto3
    import pytest

    from awsenv.errors import EnvError
    from selftests.faults import install_from_env

    monkeypatch.setenv("TWOTIER_TEST_FAULTS", '{"rate": 0.2}')
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(name, raising=False)
    events = boto3.Session(region_name="us-east-1").events
    for endpoint in ("", "https://ec2.us-east-1.amazonaws.com", "http://10.0.0.1:5000"):
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with pytest.raises(EnvError, match="for tests only"):
            install_from_env(events)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert install_from_env(events) is not None
    # A service-specific endpoint or "ignore the configured endpoints" would send requests elsewhere.
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", "https://ec2.us-east-1.amazonaws.com")
    with pytest.raises(EnvError, match="for tests only"):
        install_from_env(events)
    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    with pytest.raises(EnvError, match="for tests only"):
        install_from_env(events)
    # And each request's own URL is checked again: a client pointed elsewhere is never answered.
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    install_from_env(session.events)
    client = session.client("ec2", endpoint_url="http://10.0.0.1:5000")
    with pytest.raises(EnvError, match="refusing to touch a request"):
        client.describe_vpcs()
