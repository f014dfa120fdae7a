"""Real AWS through boto3's own credential chain and region; AWS_ENDPOINT_URL honoured by boto3."""
from __future__ import annotations

import os
import socket
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

from ..errors import EnvError, one_line
from .base import AUTH_ERRORS, RETRY_CONFIG, STATE_ROOT, Target, new_session


class AwsTarget(Target):
    name = "aws"
    assumes_roles = True
    host_access = True
    admin_cidr_default = None     # no safe default: provisioning refuses without one

    @classmethod
    def decide_region(cls, explicit, env, state_dir, profile: str | None = None) -> str:
        try:
            configured = new_session(None, profile=profile).region_name
        except ProfileNotFound:
            raise EnvError(f"no AWS profile {profile!r} in the AWS config or credentials file") from None
        # This botocore reads AWS_DEFAULT_REGION and the profile only; the AWS CLI v2 and the other
        # SDKs read AWS_REGION first, and a shell that sets only it (as CI jobs do) means that region.
        region = explicit or os.environ.get("AWS_REGION") or configured
        if not region:
            raise EnvError("no AWS region configured: pass --region, set AWS_REGION or AWS_DEFAULT_REGION, "
                           "or give your profile a region (aws configure)")
        return region

    @classmethod
    def default_state_dir(cls, env: str, region: str) -> Path:
        return STATE_ROOT / cls.name / region / env

    def same_access(self, other) -> bool:
        """The same credentials (the shell's chain, or the same profile and role) in the same region."""
        mine, theirs = self.settings, other.settings
        return (type(other) is type(self) and (mine.region, mine.profile, mine.role_arn)
                == (theirs.region, theirs.profile, theirs.role_arn))

    def _make_session(self):
        """boto3's credential chain, or the profile a fleet entry names; with a role to assume, the
        credentials of an STS AssumeRole session named after the run (as cross-account scanners
        work). Endpoint and region settings of the profile and the shell stay in force."""
        s = self.settings
        try:
            base = new_session(s.region, profile=s.profile)
        except ProfileNotFound:
            raise EnvError(f"no AWS profile {s.profile!r} in the AWS config or credentials file") from None
        if not s.role_arn:
            return base
        base.events.register("before-call", self._count_call)
        try:
            answer = base.client("sts", config=RETRY_CONFIG).assume_role(
                RoleArn=s.role_arn, RoleSessionName=s.role_session_name or "twotier")
        except NoCredentialsError:
            raise EnvError(f"no AWS credentials to assume role {s.role_arn} with"
                           + (f" (profile {s.profile})" if s.profile else "")) from None
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise EnvError(f"could not assume role {s.role_arn}: {err.get('Code')}: "
                           f"{one_line(Exception(err.get('Message') or ''))}") from None
        except BotoCoreError as exc:
            raise EnvError(f"could not assume role {s.role_arn}: {one_line(exc)}") from None
        creds = answer["Credentials"]
        return new_session(s.region, profile=s.profile,
                           credentials=(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]))

    def open(self, progress=print) -> bool:
        self._credentials_found()
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

    def attach(self, progress=print, prove: bool = True) -> bool:
        """prove=False: no call of its own; the environment's first read proves the credentials (a
        fleet reads many environments: one call fewer each, and a rejection is that one's reason)."""
        if prove:
            return super().attach(progress)
        self._credentials_found()
        return True

    def _credentials_found(self) -> None:
        self.check_region()
        if self.session().get_credentials() is None:
            if self.settings.profile:
                raise EnvError(f"no AWS credentials in profile {self.settings.profile!r}")
            raise EnvError("no AWS credentials found: boto3 looked in the environment, ~/.aws and the instance "
                           "role; set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")

    def connect(self, host, port, timeout=5.0, origin="internet"):
        if origin != "internet":
            raise NotImplementedError(f"no {origin} vantage point on the aws target")
        return socket.create_connection((host, port), timeout=timeout)

    def resolve(self, name):
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)})
