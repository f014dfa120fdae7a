"""The ssh_config a person uses with OpenSSH: its master sockets fit a Unix socket's path wherever
the repository lives (a clone in a deep folder gave `unix_listener: path ... too long`)."""
import os
import subprocess
from pathlib import Path

import pytest

from awsenv.errors import EnvError
from awsenv.hosts.ssh import control_dir, ssh_config
from awsenv.targets import make_target

SPREAD_ACROSS_WORKERS = True


def settings(state_dir: Path):
    return make_target({"target": "moto", "env": "cfg", "state_dir": str(state_dir)}).settings


def control_path(text: str) -> str:
    return next(line.split(None, 1)[1].strip('"') for line in text.splitlines() if "ControlPath" in line)


@pytest.mark.parametrize("state_dir", ["/root/twotier/.state/local/demo",
                                       "/home/someone/projects/infrastructure/checks/twotier/.state/local/demo",
                                       "/tmp/" + "/".join(["a-long-folder-name"] * 12)])
def test_the_master_socket_path_fits_wherever_the_state_dir_is(state_dir):
    path = control_path(ssh_config(settings(Path(state_dir)), "198.51.100.20", "10.0.2.4", None))
    # What OpenSSH binds: the path with the longest IPv4 address, plus its 17-character temporary suffix.
    assert len(path.replace("%h", "255.255.255.255").replace("%p", "22")) + 17 <= 107, path
    if len(state_dir) < 40:
        assert path.startswith(state_dir), "a short state dir keeps its sockets itself"


def test_a_socket_folder_another_user_can_write_is_refused(tmp_path):
    deep = tmp_path.joinpath(*["a-long-folder-name"] * 12)
    folder = control_dir(settings(deep))
    assert folder.stat().st_mode & 0o777 == 0o700 and folder.stat().st_uid == os.geteuid()
    folder.chmod(0o777)
    try:
        with pytest.raises(EnvError, match="writable by group and others"):
            control_dir(settings(deep))
    finally:
        folder.chmod(0o700)


def test_openssh_accepts_the_file(tmp_path):
    text = ssh_config(settings(tmp_path.joinpath(*["x" * 20] * 8)), "198.51.100.20", "10.0.2.4", None)
    (tmp_path / "ssh_config").write_text(text)
    out = subprocess.run(["ssh", "-G", "-F", str(tmp_path / "ssh_config"), "web"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "controlpath" in out.stdout
