"""Host commands built from the OS table run as a shell runs them: a drift whose write fails is a
failed drift, and the install logs read are the host's family's (no host needed: the commands run
in a local bash whose sudo, systemctl and tee are stand-ins)."""
from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest

from awsenv.errors import EnvError
from awsenv.hosts import packages
from awsenv.hosts.os_table import OS_FAMILIES
from awsenv.provisioning import drifts


class Host:
    """connections() of an environment: runs each command in bash with stand-ins, records systemctl."""

    def __init__(self, tmp_path, family: str, write_fails: bool):
        self.family, self.log = OS_FAMILIES[family], tmp_path / "systemctl.log"
        self.prelude = (f"sudo() {{ \"$@\"; }}; systemctl() {{ echo \"$*\" >> {self.log}; }}; "
                        f"tee() {{ {'return 1' if write_fails else 'cat > /dev/null'}; }}; rm() {{ :; }}; ")

    def execute(self, role, command):
        proc = subprocess.run(["bash", "-c", self.prelude + command], capture_output=True, text=True)
        return SimpleNamespace(rc=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)

    def os_family(self, role):
        return self.family


@pytest.mark.parametrize("family, service", [("debian", "ssh"), ("amazon-linux-2023", "sshd")])
def test_an_sshd_drift_reloads_the_familys_service(tmp_path, family, service):
    host = Host(tmp_path, family, write_fails=False)
    drifts._sshd_drop_in(SimpleNamespace(connections=lambda: host), "web", "PasswordAuthentication yes")
    assert host.log.read_text().split("\n")[0] == f"reload {service}"


def test_an_sshd_drift_whose_write_fails_is_not_applied(tmp_path):
    host = Host(tmp_path, "debian", write_fails=True)
    with pytest.raises(EnvError, match="drift command on web failed"):
        drifts._sshd_drop_in(SimpleNamespace(connections=lambda: host), "web", "PermitRootLogin yes")
    assert not host.log.exists(), "sshd was reloaded after the drop-in could not be written"


@pytest.mark.parametrize("family", sorted(OS_FAMILIES))
def test_the_install_logs_read_are_the_familys(family):
    logs = OS_FAMILIES[family].install_logs
    command = packages.command(logs)
    for path in ("/var/log/apt/history.log", "/var/log/dpkg.log", "/var/log/dnf.rpm.log"):
        assert (path in command) == (path in logs), (family, path)
