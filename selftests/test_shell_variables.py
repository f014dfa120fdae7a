"""The local and moto targets in the shells AWS users really have: AWS_REGION, AWS_DEFAULT_REGION,
AWS_PROFILE, a config file with a default region, an unrelated AWS_ENDPOINT_URL. None of them may
change or break these targets: the target decides the region once and hands it to the lab.

(Before: with AWS_DEFAULT_REGION set, the lab converged that region while provisioning used
us-east-1, and `up` waited 300 s for SSH to hosts that were never realised.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from awsenv.targets import make_target
from selftests.suite_runner import REPO, run_suite


def _shell(tmp_path, combo: str) -> dict[str, str]:
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = sa-east-1\n[profile work]\nregion = ca-central-1\n")
    shells = {
        "default-region": {"AWS_DEFAULT_REGION": "ap-northeast-1"},
        "region-and-missing-profile": {"AWS_REGION": "eu-west-1", "AWS_PROFILE": "no-such-profile"},
        "region-only": {"AWS_REGION": "eu-west-1", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")},
        "config-file-and-endpoint": {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "work",
                                     "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "everything": {"AWS_DEFAULT_REGION": "ap-northeast-1", "AWS_REGION": "eu-west-1",
                       "AWS_PROFILE": "no-such-profile", "AWS_CONFIG_FILE": str(config),
                       "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(shells[combo], AWS_EC2_METADATA_DISABLED="true")
    return env


COMBOS = ["default-region", "region-and-missing-profile", "config-file-and-endpoint", "everything"]


def _in_shell(monkeypatch, tmp_path, combo: str) -> None:
    """This process's AWS_* variables become exactly those of the combination's shell."""
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in _shell(tmp_path, combo).items():
        if key.startswith("AWS_"):
            monkeypatch.setenv(key, value)


@pytest.mark.parametrize("combo", COMBOS)
def test_moto_target_ignores_the_shell(tmp_path, monkeypatch, combo):
    _in_shell(monkeypatch, tmp_path, combo)
    target = make_target({"target": "moto", "state_dir": str(tmp_path / "state")})
    assert target.settings.region == "us-east-1"
    target.open(progress=lambda _: None)
    try:
        assert target.ec2.meta.region_name == "us-east-1"
        assert target.ec2.describe_vpcs()["Vpcs"], "the in-process API answered nothing"
    finally:
        target.close()
    shell = {k: v for k, v in _shell(tmp_path, combo).items() if k.startswith("AWS_")}
    assert {k: v for k, v in os.environ.items() if k.startswith("AWS_")} == shell, "the shell's variables are back"


@pytest.mark.parametrize("combo", COMBOS)
def test_moto_suite_runs_in_an_aws_users_shell(tmp_path, combo):
    """The whole suite on the moto target, in a fresh process of that shell: moto reads the regions
    from a default boto3 session when its EC2 models are first imported, where a missing profile
    would fail (the in-process test above meets an already imported moto)."""
    v = run_suite(tmp_path, "--target", "moto", "--provision", f"--state-dir={tmp_path / 'state'}",
                  env=_shell(tmp_path, combo))
    assert v.returncode == 0 and not v.failed, v.output[-3000:]
    assert len(v.passed) >= 20, sorted(v.passed)


# The region the AWS CLI v2 takes in each shell: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's.
AWS_CLI_REGION = {"default-region": "ap-northeast-1", "region-only": "eu-west-1",
                  "config-file-and-endpoint": "ca-central-1", "everything": "eu-west-1"}


@pytest.mark.parametrize("combo", sorted(AWS_CLI_REGION))
def test_aws_target_takes_the_region_the_aws_cli_would(tmp_path, monkeypatch, combo):
    _in_shell(monkeypatch, tmp_path, combo)
    if combo == "everything":
        monkeypatch.delenv("AWS_PROFILE")     # a missing profile is its own error, tested elsewhere
    from awsenv.targets.aws import AwsTarget

    assert AwsTarget.decide_region(None, "twotier", None, os.environ.get("AWS_PROFILE")) == AWS_CLI_REGION[combo]
    assert AwsTarget.decide_region("us-west-2", "twotier", None, os.environ.get("AWS_PROFILE")) == "us-west-2"


@pytest.mark.parametrize("combo", COMBOS)
def test_local_target_decides_its_region_whatever_the_shell(tmp_path, monkeypatch, combo):
    _in_shell(monkeypatch, tmp_path, combo)
    assert make_target({"target": "local", "state_dir": str(tmp_path / "s")}).settings.region == "us-east-1"
    assert make_target({"target": "local", "state_dir": str(tmp_path / "s"),
                        "region": "eu-central-1"}).settings.region == "eu-central-1"


@pytest.mark.local
@pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")
@pytest.mark.parametrize("combo", COMBOS)
def test_local_environment_builds_and_answers_in_an_aws_users_shell(tmp_path, combo):
    env_name = f"vars-{COMBOS.index(combo)}"
    state = tmp_path / "state"
    region = ["--region", "eu-central-1"] if combo == "everything" else []
    shell = _shell(tmp_path, combo)

    def cli(*args):
        return subprocess.run([sys.executable, str(REPO / "provision.py"), *args, "--env", env_name,
                               f"--state-dir={state}", *region], cwd=REPO, env=shell, capture_output=True, text=True,
                              timeout=600)
    up = cli("up", "--no-host-setup")
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-2000:]
        lab = json.loads((state / "lab.json").read_text())
        assert lab["region"] == ("eu-central-1" if region else "us-east-1"), lab
        # SSH to the web server through the lab proves the lab realised the region provisioning used.
        v = run_suite(tmp_path, "--env", env_name, f"--state-dir={state}", *region, "-k",
                      "test_ssh_with_environment_key_logs_in or test_vpc_has_private_cidr_and_dns_support",
                      env=shell)
        assert v.passed == {"test_ssh_with_environment_key_logs_in", "test_vpc_has_private_cidr_and_dns_support"}, (
            v.output[-3000:])
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stdout[-2000:] + down.stderr[-2000:]
