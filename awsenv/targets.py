"""Where the AWS API is and how the suite reaches hosts, per target.

aws:   boto3's own credential chain and region; AWS_ENDPOINT_URL honoured by boto3 itself.
moto:  moto in-process (mock_aws); no hosts, so host checks skip with a reason.
local: moto in server mode on loopback plus the lab data plane (lab/), which makes hosts real.
The checks and the provisioner only see this seam, never the target's name.
"""
from __future__ import annotations

import socket
import threading
from collections import Counter

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .errors import EnvError
from .settings import Settings

# Standard retry mode backs off on throttling and 5xx answers; a retried create is made safe by
# idempotency tokens (ClientToken) in the provisioner.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=10, read_timeout=60)
AUTH_ERRORS = ("AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
               "ExpiredToken", "RequestExpired", "InvalidAccessKeyId", "AccessDenied", "UnauthorizedOperation")
CHECKIP_URL = "http://checkip.amazonaws.com/"


class Target:
    name = "base"
    host_access = False
    host_access_reason = ""
    boot_timeout = 300.0      # seconds from "running" until a host's services answer (EC2: minutes)
    probe_timeout = 3.0       # how long a negative reachability probe waits for a SYN-ACK

    def __init__(self, settings: Settings):
        self.settings = settings
        self.api_calls: Counter[str] = Counter()
        self._session: boto3.Session | None = None
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    # -- lifetime -------------------------------------------------------------------------
    def prepare(self, progress=print) -> dict[str, float]:
        """One-time, cached work before start (the local image and mirror); seconds by step."""
        return {}

    def start(self, progress=print) -> None:
        """Make the API reachable (and, on local, the data plane)."""

    def stop(self, progress=print) -> None:
        """Release what start() made; safe to call twice."""

    def settle(self) -> None:
        """Return once real traffic follows the API's latest state (no-op where the cloud does it)."""

    # -- API ----------------------------------------------------------------------------
    def endpoint_url(self) -> str | None:
        return None

    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = self._make_session()
            self._session.events.register("before-call", self._count_call)
            # Test-only: TWOTIER_TEST_FAULTS injects throttling, 5xx and signals (awsenv/faults.py);
            # it refuses to work unless the API is on loopback or in-process.
            from .faults import install_from_env

            install_from_env(self._session.events, self.endpoint_url(), in_process=self.name == "moto")
        return self._session

    def _make_session(self) -> boto3.Session:
        return boto3.Session(region_name=self.settings.region)

    def _count_call(self, model, **_):
        self.api_calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def client(self, service: str):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session().client(
                    service, endpoint_url=self.endpoint_url(), config=RETRY_CONFIG)
            return self._clients[service]

    @property
    def ec2(self):
        return self.client("ec2")

    def check_region(self) -> None:
        known = self.session().get_available_regions("ec2")
        if self.settings.region not in known:
            raise EnvError(f"unknown region {self.settings.region!r} (EC2 has e.g. us-east-1, eu-west-1, ap-northeast-1)")

    # -- hosts ----------------------------------------------------------------------------
    def connect(self, host: str, port: int, timeout: float = 5.0, origin: str = "internet") -> socket.socket:
        raise NotImplementedError

    def resolve(self, name: str) -> list[str]:
        raise NotImplementedError

    def echo_url(self) -> str:
        return CHECKIP_URL


class AwsTarget(Target):
    name = "aws"
    host_access = True

    def start(self, progress=print) -> None:
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

    def connect(self, host, port, timeout=5.0, origin="internet"):
        if origin != "internet":
            raise NotImplementedError(f"no {origin} vantage point on the aws target")
        return socket.create_connection((host, port), timeout=timeout)

    def resolve(self, name):
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)})


class MotoTarget(Target):
    name = "moto"
    host_access_reason = ("target moto holds the AWS API only (no hosts exist); "
                          "run with --target local or --target aws for host checks")

    def __init__(self, settings):
        super().__init__(settings)
        self._mock = None

    def _make_session(self):
        return boto3.Session(region_name=self.settings.region, aws_access_key_id="testing",
                             aws_secret_access_key="testing")

    def start(self, progress=print) -> None:
        from moto import mock_aws

        if self._mock is None:
            self._mock = mock_aws()
            self._mock.start()
        self.check_region()

    def stop(self, progress=print) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None


class LocalTarget(Target):
    name = "local"
    host_access = True
    boot_timeout = 30.0       # a container boots in about a second
    probe_timeout = 0.5       # veths on one machine answer in well under a millisecond

    def __init__(self, settings):
        super().__init__(settings)
        self._endpoint: str | None = None

    def _make_session(self):
        return boto3.Session(region_name=self.settings.region, aws_access_key_id="testing",
                             aws_secret_access_key="testing")

    def endpoint_url(self):
        return self._endpoint

    def prepare(self, progress=print) -> dict[str, float]:
        import time

        from lab import daemon, image, mirror
        from lab.errors import LabError

        took = {}
        try:
            daemon.check_prerequisites()
            for step, build in (("base image", image.ensure_base), ("package mirror", mirror.ensure_mirror)):
                t0 = time.monotonic()
                build(progress)
                took[step] = round(time.monotonic() - t0, 2)
        except LabError as exc:
            raise EnvError(str(exc)) from None
        return took

    def start(self, progress=print) -> None:
        from lab import daemon
        from lab.errors import LabError

        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._endpoint = daemon.start(self.settings.env, self.settings.state_dir, self.settings.region,
                                          progress=progress).endpoint
        except LabError as exc:
            raise EnvError(str(exc)) from None
        self.check_region()

    def attach(self) -> bool:
        """Use an already running lab (a kept environment) without starting one."""
        from lab import daemon

        info = daemon.status(self.settings.env, self.settings.state_dir)
        if not info:
            return False
        self._endpoint = info["endpoint"]
        return True

    def stop(self, progress=print) -> None:
        from lab import daemon

        daemon.stop(self.settings.env, self.settings.state_dir, progress=progress)
        self._endpoint = None

    def settle(self) -> None:
        from lab import daemon

        daemon.wait_settled(self.settings.state_dir)

    def connect(self, host, port, timeout=5.0, origin="internet"):
        from lab import vantage

        return vantage.connect(self.settings.env, host, port, timeout=timeout, origin=origin)

    def resolve(self, name):
        from lab import vantage

        return vantage.resolve(self.settings.env, name)

    def echo_url(self):
        from lab import vantage

        return vantage.echo_url(self.settings.env)

    def proxy_command(self) -> str:
        """How OpenSSH on the host reaches the lab's public addresses (there is no route to them)."""
        from lab import vantage

        return vantage.proxy_command(self.settings.env)


def make_target(settings: Settings) -> Target:
    return {"aws": AwsTarget, "moto": MotoTarget, "local": LocalTarget}[settings.target](settings)
