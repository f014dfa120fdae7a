"""Ctrl-C or SIGTERM in the middle of `pytest --provision` on the local target leaves nothing:
no namespace, container, overlay mount or API process of that environment."""
import os
import signal
import subprocess
import sys
import time

import pytest

from lab import names
from selftests.moto_server import ignore_sigint
from selftests.suite_runner import NO_REPORTS, REPO

pytestmark = [pytest.mark.local, pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")]


def env_leftovers(env: str) -> list[str]:
    prefix = names.netns_prefix(env)
    netns = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
             if n.startswith(prefix)]
    nspawn = [line for line in subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
              .splitlines() if "systemd-nspawn" in line and prefix in line]
    mounts = [m for m in subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
              .split() if prefix in m or f"/{env}/" in m]
    return netns + nspawn + mounts


# Interrupt once the API holds the environment and the hosts are booting or installing.
@pytest.mark.parametrize("sig,after_line", [(signal.SIGINT, "web instance"), (signal.SIGTERM, "installing")],
                         ids=["sigint-while-provisioning", "sigterm-while-installing"])
def test_interrupted_provision_leaves_nothing(tmp_path, sig, after_line):
    env = f"st-int-{sig.name.lower()}"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                             str(REPO / "pytest.ini"), "-o", NO_REPORTS, "--provision", "--env", env,
                             f"--state-dir={tmp_path}"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=ignore_sigint)   # as a CI runner's background job starts
    seen = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        seen.append(line)
        if after_line in line:
            proc.send_signal(sig)
            break
        assert time.monotonic() < deadline, "never reached the point to interrupt"
    out, _ = proc.communicate(timeout=300)
    log = "".join(seen) + out
    assert any(after_line in s for s in seen), log[-3000:]
    assert proc.returncode != 0, log[-3000:]
    left = env_leftovers(env)
    assert not left, f"left behind after {sig.name}: {left}\n{log[-3000:]}"
