"""Real AWS through boto3's own credential chain and region; AWS_ENDPOINT_URL honoured by boto3."""
from __future__ import annotations

import socket
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from ..errors import EnvError
from .base import AUTH_ERRORS, STATE_ROOT, Target


class AwsTarget(Target):
    name = "aws"
    host_access = True
    admin_cidr_default = None     # no safe default: provisioning refuses without one

    @classmethod
    def decide_region(cls, explicit, env, state_dir) -> str:
        region = explicit or boto3.session.Session().region_name
        if not region:
            raise EnvError("no AWS region configured: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, "
                           "or give your profile a region (aws configure)")
        return region

    @classmethod
    def default_state_dir(cls, env: str, region: str) -> Path:
        return STATE_ROOT / cls.name / region / env

    def open(self, progress=print) -> bool:
        self.check_region()
        if self.session().get_credentials() is None:
            raise EnvError("no AWS credentials found: boto3 looked in the environment, ~/.aws and the instance "
                           "role; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
        # One cheap call proves the credentials before anything else: a rejected key is one clear line
        # ("could not check" for the suite), not a failure in the middle of provisioning or of every check.
        try:
            self.ec2.describe_availability_zones()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            if err.get("Code") in AUTH_ERRORS:
                raise EnvError(f"AWS rejected the credentials ({err.get('Code')}: {err.get('Message')}); "
                               "check AWS_PROFILE / AWS_ACCESS_KEY_ID, or refresh the session") from None
            raise
        return False

    def connect(self, host, port, timeout=5.0, origin="internet"):
        if origin != "internet":
            raise NotImplementedError(f"no {origin} vantage point on the aws target")
        return socket.create_connection((host, port), timeout=timeout)

    def resolve(self, name):
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)})
