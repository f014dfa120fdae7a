"""What every target offers: its decisions, its lifecycle, its AWS clients and its vantage point.

Subclasses (aws.py, moto.py, local.py) override the decisions and the lifecycle; nothing outside
this package asks a target for its name to decide something.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import socket
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.loaders import create_loader

from ..consistency import Recent
from ..errors import EnvError
from ..install import provision_command
from ..retries import Retries
from ..settings import DEFAULTS, REPO_ROOT, Settings

# Standard retry mode backs off on throttling and 5xx answers; a retried create is made safe by
# idempotency tokens (ClientToken) in the provisioner; EC2's "not yet" answers are retried by the
# target's Retries (awsenv/retries.py). The timeouts bound a hung endpoint: NO_ANSWER_ATTEMPTS
# attempts of at most 10 s each, so a dead API is a one-line error within a minute.
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8}, connect_timeout=CONNECT_TIMEOUT,
                      read_timeout=READ_TIMEOUT)
AUTH_ERRORS = ("AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
               "ExpiredToken", "RequestExpired", "InvalidAccessKeyId", "AccessDenied", "UnauthorizedOperation")
CHECKIP_URL = "http://checkip.amazonaws.com/"
# In-process and lab APIs: an endpoint from the user's shell must not redirect them. (Passed by
# name: the type stubs predate this botocore option.)
IGNORE_SHELL_ENDPOINTS = Config(**{"ignore_configured_endpoint_urls": True})  # type: ignore[arg-type]
STATE_ROOT = REPO_ROOT / ".state"
# One loader of botocore's service models for every session this process makes: each session would
# otherwise parse EC2's model again (0.19 s a session and client, 0.04 s shared; a fleet makes one
# session per environment).
_LOADER = create_loader()
_LOADER_LOCK = threading.Lock()
# Which target a thread's API calls count for, where targets share clients (Target.counting).
_COUNTED_FOR: contextvars.ContextVar[Target | None] = contextvars.ContextVar("twotier_counted_for", default=None)


def new_session(region: str | None, profile: str | None = None, credentials: tuple[str, str, str | None] | None = None,
                session_vars: dict | None = None) -> boto3.Session:
    """A boto3 session on the process's shared model loader: the default credential chain, or the
    profile, or the credentials given (key id, secret, token); `session_vars` as botocore takes them."""
    core = botocore.session.Session(session_vars=session_vars)
    core.register_component("data_loader", _LOADER)
    key, secret, token = credentials or (None, None, None)
    session = boto3.Session(botocore_session=core, profile_name=profile, region_name=region,
                            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token)
    # botocore reads the config and credentials files lazily and not thread-safely: it publishes
    # the profiles of the config file before adding those of the credentials file, so a thread
    # asking meanwhile finds no such profile. A fleet's environments share a session across
    # threads (Target.use_clients_of): read them here, while one thread holds it.
    core.full_config  # noqa: B018
    with _LOADER_LOCK:
        # boto3 adds its own data folder to the loader's search path once per session: once is enough.
        paths = _LOADER.search_paths
        paths[:] = list(dict.fromkeys(paths))
    return session


class Target:
    name = "base"
    assumes_roles = False     # a fleet entry may name a profile or a role to assume (aws only)
    host_access = False
    host_access_reason = ""
    persistent = True         # the environment outlives this process (moto's in-process API doesn't)
    boot_timeout = 300.0      # seconds from "running" until a host's services answer (EC2: minutes)
    probe_timeout = 3.0       # how long a negative reachability probe waits for a SYN-ACK
    answer_timeout = 10.0     # how long SSH gets to reach a host's port 22 before the host is judged unreachable
    admin_cidr_default: str | None = None
    # A host of the target's own inside the VPC, in the public subnet and outside the web server's
    # groups (the lab's neighbour namespace): where "no other host can connect" is probed from.
    neighbour = False
    # How this target's API is polled and retried (AWS: "Eventual consistency in the Amazon EC2 API"
    # asks for exponential backoff "up to a few minutes"; EC2's states change in seconds to minutes).
    poll_delay = 5.0               # the longest wait between two polls of a state (waits back off up to it)
    retry_first = 0.25             # the first wait of a retry with backoff (it doubles, up to poll_delay)
    consistency_timeout = 180.0    # how long an ID this process just created may still answer NotFound
    consistency_window = 5.0       # how long a listing may miss what a create call without an answer made
    dependency_timeout = 600.0     # teardown, in all: deletes answering DependencyViolation (lingering ENIs)
    state_change_timeout = 300.0   # StartInstances / StopInstances refused while the instance is mid-change

    def __init__(self, settings: Settings):
        self.settings = settings
        self.api_calls: Counter[str] = Counter()
        # Every probe the checks made from a vantage point (bench/floor.py repeats them bare).
        self.probes_made: list[tuple] = []
        # What this target's session just created (eventual consistency), and the retry decisions
        # made on that session's events: one of each per target, whatever opens a session on it.
        self.recent = Recent()
        self.retries = Retries(self)
        self._session: boto3.Session | None = None
        self._clients: dict[str, object] = {}
        self._shared: Target | None = None      # use_clients_of
        # Reentrant: client() makes the session under it.
        self._lock = threading.RLock()

    @property
    def neighbour_reason(self) -> str:
        """Why the target has no neighbour of its own, and what gives one ("" when it has one)."""
        if self.neighbour:
            return ""
        return (f"target {self.name} has no host inside the VPC outside the web server's groups; --probe-instance "
                "launches one for the run (a short-lived instance in the public subnet, in a security group of its "
                "own, removed at the end)")

    # -- decisions --------------------------------------------------------------------------
    @classmethod
    def decide_settings(cls, values: dict) -> Settings:
        """Settings from raw option values, with this target's defaults where none was given."""
        from ..settings import DEFAULTS, check_env_name, check_region_name

        env = check_env_name(str(values.get("env") or DEFAULTS["env"]))
        if (values.get("profile") or values.get("role_arn")) and not cls.assumes_roles:
            raise EnvError(f"profile and role_arn are for the aws target: the {cls.name} target's API has its "
                           "own credentials")
        state_dir = Path(values["state_dir"]) if values.get("state_dir") else None
        if values.get("region"):
            check_region_name(values["region"])     # a typo is a bad option, before anything is started
        region = cls.decide_region(values.get("region"), env, state_dir, profile=values.get("profile"))
        return Settings.build(values, region=region, admin_cidr=cls.admin_cidr_default,
                              state_dir=state_dir or cls.default_state_dir(env, region))

    @classmethod
    def decide_region(cls, explicit: str | None, env: str, state_dir: Path | None, profile: str | None = None) -> str:
        return explicit or "us-east-1"

    @classmethod
    def default_state_dir(cls, env: str, region: str) -> Path:
        # Per target (and region where one account holds many): a kept aws environment and a
        # local one of the same name never share a key or pinned host keys.
        return STATE_ROOT / cls.name / env

    # -- lifecycle ----------------------------------------------------------------------------
    def prepare(self, progress=print) -> dict[str, float]:
        """One-time, cached work before open (the local image and mirror); seconds by step."""
        return {}

    def open(self, progress=print) -> bool:
        """Make the API reachable, starting it where this target runs one; True if this call started it."""
        return False

    def attach(self, progress=print, prove: bool = True) -> bool:
        """Reach an API that already exists (a kept environment) without starting one. prove=False: where
        the target would make a call only to prove its credentials, it leaves that to the first read."""
        self.open(progress)
        return True

    def target_option(self) -> str:
        """` --target NAME` for a command line the user is told to run, or "" for the default target."""
        return "" if self.name == DEFAULTS["target"] else f" --target {self.name}"

    def absent_reason(self) -> str:
        """Why attach() found no environment, with what to do (for the one-line error)."""
        env = self.settings.env
        up = provision_command(f"up{self.target_option()} --env {env}")
        return f"no {self.name} environment {env!r} is running: build one with `{up}` (or run pytest with --provision)"

    def close(self, progress=print) -> None:
        """Release what open() started; safe to call twice."""

    def settle(self) -> None:
        """Return once real traffic follows the API's latest state (no-op where the cloud does it)."""

    def proxy_command(self) -> str | None:
        """How OpenSSH on this machine reaches the hosts' public addresses, when it can't directly."""
        return None

    def cli_environment(self) -> dict[str, str]:
        """Variables that point the AWS CLI or boto3 at this target's API (none for real AWS)."""
        return {}

    # -- API ----------------------------------------------------------------------------------
    def endpoint_url(self) -> str | None:
        return None

    def session(self) -> boto3.Session:
        if self._shared is not None:
            return self._shared.session()
        with self._lock:
            if self._session is None:
                self._session = self._make_session()
                events = self._session.events
                events.register("before-call", self._count_call)
                self.retries.install(events)
            return self._session

    def _make_session(self) -> boto3.Session:
        return new_session(self.settings.region)

    def same_access(self, other: Target) -> bool:
        """Whether `other` reaches the API exactly as this target does (the same credentials, region
        and endpoint), so that both may use one session and its clients. No target says so by default."""
        return False

    def use_clients_of(self, other: Target) -> None:
        """Use `other`'s session and clients (same_access): a fleet's environments in one account and
        region make one session and one client each, not one per environment (each costs tens of
        milliseconds and megabytes). Calls are still counted per target: by the target the calling
        thread is `counting()` for."""
        self._shared = other

    @contextlib.contextmanager
    def counting(self):
        """Count the API calls this thread makes, through whichever target's clients, as this target's."""
        token = _COUNTED_FOR.set(self)
        try:
            yield
        finally:
            _COUNTED_FOR.reset(token)

    def _count_call(self, model, **_):
        (_COUNTED_FOR.get() or self).api_calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def client(self, service: str):
        if self._shared is not None:
            return self._shared.client(service)
        with self._lock:
            if service not in self._clients:
                session: Any = self.session()     # the stubs know each service by a literal name
                self._clients[service] = session.client(
                    service, endpoint_url=self.endpoint_url(), config=self._client_config())
            return self._clients[service]

    def _client_config(self) -> Config:
        return RETRY_CONFIG

    @property
    def ec2(self):
        return self.client("ec2")

    def check_region(self) -> None:
        # Every partition: China (cn-north-1) and GovCloud (us-gov-west-1) are regions too. (Again
        # here: a region from the profile or AWS_REGION is no option and was not checked earlier.)
        from ..settings import check_region_name

        check_region_name(self.settings.region)

    # -- the internet's vantage point -----------------------------------------------------------
    def connect(self, host: str, port: int, timeout: float = 5.0, origin: str = "internet") -> socket.socket:
        raise NotImplementedError

    def resolve(self, name: str) -> list[str]:
        raise NotImplementedError

    def echo_url(self) -> str:
        return CHECKIP_URL


def isolated_session(region: str, access_key_id: str, secret_access_key: str) -> boto3.Session:
    """A boto3 session that the user's shell can't redirect: no profile, no config or credentials
    file, no configured endpoint (AWS_PROFILE, AWS_CONFIG_FILE, AWS_ENDPOINT_URL stay for real AWS)."""
    unset = (None, None, None, None)
    return new_session(region, credentials=(access_key_id, secret_access_key, None), session_vars={
        "profile": unset, "config_file": (None, None, os.devnull, None),
        "credentials_file": (None, None, os.devnull, None), "region": unset,
        "ignore_configured_endpoint_urls": (None, None, True, None),
        "ca_bundle": unset, "api_versions": (None, None, {}, None),
    })
