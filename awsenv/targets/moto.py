"""moto in-process (mock_aws): the API alone, nothing outlives the process, no hosts."""
from __future__ import annotations

import os

from botocore.config import Config

from .base import IGNORE_SHELL_ENDPOINTS, RETRY_CONFIG, Target, isolated_session

# The lab's own internet hosts sit in this block; SSH is never open to the world by default.
LAB_ADMIN_CIDR = "198.51.100.0/28"
# What names the shell's profile and config files. moto opens default boto3 sessions of its own
# (on importing its EC2 models, on each new backend) to list the regions, and AWS_PROFILE=no-such-
# profile fails them; our own clients never read a profile. Hidden while the mock runs.
SHELL_PROFILE = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


class MotoTarget(Target):
    name = "moto"
    persistent = False
    admin_cidr_default = LAB_ADMIN_CIDR
    # mock_aws answers at once and with the final state: nothing to wait for between polls.
    poll_delay = 0.5
    retry_first = 0.05
    consistency_timeout = 30.0
    consistency_window = 0.0
    # Nothing changes behind mock_aws's back: a DependencyViolation it gives (another team's subnet
    # in the VPC, say) stays until someone removes the dependency, so a long retry only delays the report.
    dependency_timeout = 5.0
    state_change_timeout = 30.0
    host_access_reason = ("target moto holds the AWS API only (no hosts exist); "
                          "run with --target local or --target aws for host checks")

    def __init__(self, settings):
        super().__init__(settings)
        self._mock = None
        self._hidden: dict[str, str] = {}

    def _make_session(self):
        return isolated_session(self.settings.region, "testing", "testing")

    def _client_config(self) -> Config:
        # An endpoint from the shell would send mock_aws's requests somewhere real.
        return RETRY_CONFIG.merge(IGNORE_SHELL_ENDPOINTS)

    def open(self, progress=print) -> bool:
        from moto import mock_aws

        started = self._mock is None
        if started:
            self._hidden = {k: os.environ.pop(k) for k in SHELL_PROFILE if k in os.environ}
            self._mock = mock_aws()
            self._mock.start()
        self.check_region()
        return started

    def attach(self, progress=print, prove: bool = True) -> bool:
        return False      # nothing outlives the process that held it

    def close(self, progress=print) -> None:
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
            os.environ.update(self._hidden)
            self._hidden = {}
