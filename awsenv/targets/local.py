"""moto in server mode on loopback plus the lab data plane (lab/), which makes hosts real.

The local target decides the lab's region and hands it over; the lab never reads AWS_* variables.
"""
from __future__ import annotations

import time
from pathlib import Path

from botocore.config import Config

from common import files

from ..errors import EnvError
from ..install import provision_command
from .base import IGNORE_SHELL_ENDPOINTS, RETRY_CONFIG, Target, isolated_session
from .moto import LAB_ADMIN_CIDR


class LocalTarget(Target):
    name = "local"
    host_access = True
    boot_timeout = 30.0       # a container boots in about a second
    probe_timeout = 0.5       # veths on one machine answer in well under a millisecond
    answer_timeout = 3.0      # a first contact may wait ~0.8 s for proxy ARP; 3 s of silence is dropped traffic
    admin_cidr_default = LAB_ADMIN_CIDR
    neighbour = True          # the lab's neighbour namespace in the public subnet (lab/vantage.py, public-probe)
    # The lab's API answers as EC2 does (emulator/realism/: eventual consistency, pending/stopping/
    # shutting-down, lingering interfaces), with its windows scaled down to fractions of a second.
    poll_delay = 0.5
    retry_first = 0.05
    consistency_timeout = 30.0
    consistency_window = 2.0
    dependency_timeout = 60.0
    state_change_timeout = 30.0

    def __init__(self, settings):
        super().__init__(settings)
        self._api = None      # lab.daemon.LabApi once open or attached

    @classmethod
    def decide_region(cls, explicit, env, state_dir, profile=None) -> str:
        # A kept lab serves the region it was built in: use it unless the user names one.
        from lab import daemon

        running = daemon.attach(env, state_dir or cls.default_state_dir(env, ""))
        return explicit or (running.region if running else "us-east-1")

    def _make_session(self):
        api = self._require_api()
        return isolated_session(api.region, api.access_key_id, api.secret_access_key)

    def _client_config(self) -> Config:
        return RETRY_CONFIG.merge(IGNORE_SHELL_ENDPOINTS)

    def _require_api(self):
        if self._api is None:
            raise EnvError(f"the local lab of {self.settings.env!r} is not open")
        return self._api

    def endpoint_url(self):
        return self._api.endpoint if self._api else None

    def cli_environment(self) -> dict[str, str]:
        api = self._require_api()
        return {"AWS_ENDPOINT_URL": api.endpoint, "AWS_ACCESS_KEY_ID": api.access_key_id,
                "AWS_SECRET_ACCESS_KEY": api.secret_access_key,
                # Both: the AWS CLI v1 and boto3 read AWS_DEFAULT_REGION, newer tools AWS_REGION.
                "AWS_REGION": api.region, "AWS_DEFAULT_REGION": api.region}

    # -- the bare lab (`provision.py lab ...`): what only this target knows of it -----------------
    @staticmethod
    def runner_addresses() -> tuple[str, str, str]:
        """(default, first, last) addresses a runner may take on the lab's internet."""
        from lab import runner

        prefix = runner.DEFAULT_ADDRESS.rsplit(".", 1)[0]
        return runner.DEFAULT_ADDRESS, f"{prefix}.{runner.FIRST}", f"{prefix}.{runner.LAST}"

    def ssh_fragment(self) -> Path:
        """The OpenSSH config fragment `lab start` writes: any host launched in the lab, from any folder."""
        from lab.daemon import SSH_FRAGMENT

        return self.settings.state_dir / SSH_FRAGMENT

    @staticmethod
    def vantage_ip() -> str:
        """Where the user's own SSH and HTTP come from on the lab's internet."""
        from lab.internet import VANTAGE_IP

        return VANTAGE_IP

    @staticmethod
    def check_runner_address(address: str) -> None:
        """A runner's address the lab can give (one line naming the range if not)."""
        from lab.errors import LabError
        from lab.runner import check_address

        try:
            check_address(address)
        except LabError as exc:
            raise EnvError(f"--as: {exc}") from None

    def lab_status(self) -> dict | None:
        """The running lab's daemon, endpoints, namespaces, containers and runners; None if none runs."""
        from lab import daemon

        return daemon.status(self.settings.env, self.settings.state_dir)

    def runner(self, address: str) -> tuple[str, dict[str, str]]:
        """A runner on the lab's internet at `address` (lab/runner.py: where a CI runner stands, for
        the aws target's own code): its namespace, and the variables that point boto3 and the AWS CLI
        at the lab's API as it is served there. Attach or open first."""
        from lab import runner
        from lab.errors import LabError

        api = self._require_api()
        if not api.internet_endpoint:
            raise EnvError(f"the lab of {self.settings.env!r} serves its API on loopback only (it was started by an "
                           f"older version): stop it and start it again")
        try:
            ns = runner.ensure(self.settings.env, address)
        except LabError as exc:
            raise EnvError(str(exc)) from None
        return ns, {**self.cli_environment(), "AWS_ENDPOINT_URL": api.internet_endpoint}

    def prepare(self, progress=print) -> dict[str, float]:
        from lab import daemon, image
        from lab.errors import LabError

        try:
            daemon.check_prerequisites()
            t0 = time.monotonic()
            # Built once and cached, both at once from one package download (about 25 s cold).
            image.ensure_image_and_mirror(progress)
        except LabError as exc:
            raise EnvError(str(exc)) from None
        return {"base image and package mirror": round(time.monotonic() - t0, 2)}

    def open(self, progress=print) -> bool:
        from lab import daemon
        from lab.errors import LabError

        state_dir = Path(self.settings.state_dir)
        was_running = daemon.attach(self.settings.env, state_dir) is not None
        files.ensure_folder(state_dir)
        try:
            self._api = daemon.start(self.settings.env, state_dir, self.settings.region, progress=progress)
        except LabError as exc:
            raise EnvError(str(exc)) from None
        try:
            self.check_region()
        except BaseException:
            # The caller never learns that this call started the lab: stop it here, not leave it running.
            if not was_running:
                self.close(progress=lambda _: None)
            raise
        return not was_running

    def attach(self, progress=print, prove: bool = True) -> bool:
        from lab import daemon

        self._api = daemon.attach(self.settings.env, self.settings.state_dir)
        if self._api and self._api.region != self.settings.region:
            raise EnvError(f"the local lab of {self.settings.env!r} serves region {self._api.region}, "
                           f"not {self.settings.region}; pass --region {self._api.region}")
        return self._api is not None

    def absent_reason(self) -> str:
        from lab import daemon

        env = self.settings.env
        pid = daemon.dead_daemon(env, self.settings.state_dir)
        if pid:
            return (f"the lab of local environment {env!r} is gone (its daemon, pid {pid}, ended without stopping it: "
                    f"a crash, a kill or a reboot), and what it held went with it: `{provision_command(f'down --env {env}')}` "
                    "cleans up what is left, then `up` builds it again")
        return super().absent_reason()

    def close(self, progress=print) -> None:
        from lab import daemon

        daemon.stop(self.settings.env, self.settings.state_dir, progress=progress)
        self._api = None
        self._session = None
        self._clients.clear()

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
        from lab import vantage

        return vantage.proxy_command(self.settings.env)
