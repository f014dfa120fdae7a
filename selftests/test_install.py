"""The install: the project's own venv, exactly the lock, nothing of the system's Python, quiet.

A fresh machine's `bash .ci/run` once failed 33 tests because the packages went into the system
Python beside Debian's python3-openssl, and pip took that day's newest cryptography: every run
printed a library's warning. These prove the install can't drift like that again, and that a
user without root (or with another python3 first on PATH) gets one line instead of a traceback.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

from selftests.suite_runner import NO_REPORTS, REPO

SPREAD_ACROSS_WORKERS = True
LOCK = REPO / "requirements.lock"
DEBIAN_PYTHON = Path("/usr/bin/python3")
# Tools pip and venv bring themselves; a lock pins what the project asks for.
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every lock entry whose marker holds on this Python."""
    out = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        head = block.split("\\")[0].strip()
        if not head or head.startswith("#"):
            continue
        spec, _, marker = head.partition(";")
        name, _, version = spec.strip().partition("==")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        out[canonicalize_name(name)] = (version, re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return out


def quiet_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHONWARNINGS"))}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE="/nonexistent/aws-config",
               AWS_SHARED_CREDENTIALS_FILE="/nonexistent/aws-creds")
    return env


def test_the_venv_sees_nothing_of_the_systems_python():
    assert sys.prefix != sys.base_prefix, f"the self-tests run outside a venv: {sys.executable}"
    assert Path(sys.prefix) == REPO / ".venv", f"not the project's venv: {sys.prefix}"
    leaks = [p for p in sys.path if "dist-packages" in p or p.startswith("/usr/lib/python3/")]
    assert not leaks, f"Debian's packages are visible to the venv: {leaks}"
    probe = subprocess.run([sys.executable, "-c", "import OpenSSL"], capture_output=True, text=True)
    assert probe.returncode != 0, "the venv imports a pyOpenSSL the lock doesn't hold (Debian's python3-openssl?)"


def test_every_installed_package_is_exactly_the_locked_one():
    lock = locked()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    extra = sorted(set(installed) - set(lock) - BOOTSTRAP)
    missing = sorted(set(lock) - set(installed))
    other = sorted(f"{n} {installed[n]} (lock: {lock[n][0]})" for n in set(lock) & set(installed)
                   if installed[n] != lock[n][0])
    assert not (extra or missing or other), f"not in the lock: {extra}; not installed: {missing}; differ: {other}"
    unhashed = sorted(n for n, (_, hashes) in lock.items() if not hashes)
    assert not unhashed, f"lock entries without a hash: {unhashed}"


def test_each_direct_requirement_is_pinned_as_the_lock_pins_it():
    lock = locked()
    for line in (REPO / "requirements.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name, _, version = re.sub(r"\[.*?\]", "", line).partition("==")
        assert version, f"requirements.in: {line!r} is not pinned with =="
        assert lock[canonicalize_name(name)][0] == version, f"{name}: requirements.in {version}, lock {lock[name][0]}"


@pytest.mark.parametrize("cmd,expect_rc,expect_lines", [
    (["provision.py", "up", "--env", "../x"], 2, 1),
    (["provision.py", "up", "--target", "moto", "--env", "quiet", "--admin-cidr", "198.51.100.7/32",
      "--no-host-setup"], 0, 0),
    (["provision.py", "status", "--target", "moto"], 2, 1),
    (["-m", "pytest", "--target", "moto", "--provision", "--env", "quiet", "-q", "-p", "no:cacheprovider",
      "-o", NO_REPORTS], 0, 0),
], ids=["bad-option", "up-moto", "status-nothing-there", "pytest-moto-provision"])
def test_stderr_holds_only_the_tools_own_lines(tmp_path, cmd, expect_rc, expect_lines):
    """Fresh processes with Python's default warning filters: a library's warning would show here."""
    proc = subprocess.run([sys.executable, *cmd, f"--state-dir={tmp_path}"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=quiet_env())
    lines = proc.stderr.splitlines()
    assert proc.returncode == expect_rc, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert len(lines) == expect_lines, f"stderr should hold {expect_lines} line(s) of the tool's own:\n{proc.stderr}"
    assert not re.search(r"Warning|warn\(|Traceback", proc.stderr), proc.stderr


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="needs Debian's own /usr/bin/python3")
def test_another_python3_without_the_packages_names_the_install(tmp_path):
    """Debian's python3 (no boto3), then a Python that has pytest and nothing else of ours."""
    proc = subprocess.run([str(DEBIAN_PYTHON), "provision.py", "status"], cwd=REPO, capture_output=True,
                          text=True, env=quiet_env())
    assert proc.returncode != 0
    assert proc.stderr.count("\n") == 1 and "bash .ci/setup" in proc.stderr and "bash .ci/venv" in proc.stderr, \
        proc.stderr

    venv = tmp_path / "pytest-only"
    subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", str(venv)], check=True)
    lock = locked()
    names = ["pytest", "iniconfig", "packaging", "pluggy", "pygments"]
    reqs = tmp_path / "pytest-only.txt"
    reqs.write_text("".join(f"{n}=={lock[n][0]} " + " ".join(f"--hash=sha256:{h}" for h in lock[n][1]) + "\n"
                            for n in names))
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--require-hashes", "-r", str(reqs)],
                   check=True, capture_output=True)
    proc = subprocess.run([str(venv / "bin/python"), "-m", "pytest", "-p", "no:cacheprovider", "--target", "moto"],
                          cwd=REPO, capture_output=True, text=True, env=quiet_env())
    assert proc.returncode == 4, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "missing: boto3" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.fixture
def unprivileged_user():
    """A throw-away Unix user with a home of its own (outside root's private tmp folders), removed
    afterwards whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root (the route itself is what runs without it)")
    name = f"tt-{uuid.uuid4().hex[:8]}"
    home = Path("/home") / name
    subprocess.run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/bash", name], check=True)
    try:
        yield name, home
    finally:
        subprocess.run(["userdel", "--remove", name], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(not DEBIAN_PYTHON.exists(), reason="needs Debian's own /usr/bin/python3 (python3-venv)")
def test_check_only_route_without_root_in_a_fresh_venv(unprivileged_user):
    """README's check-only route as written, by a user who has neither root nor this machine's
    pyenv: Debian's python3 with venv, the lock from PyPI, then the moto target end to end."""
    name, home = unprivileged_user
    repo = home / "twotier"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / rel)
    user = pwd.getpwnam(name)
    subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(home)], check=True)
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "AWS_EC2_METADATA_DISABLED": "true"}
    # This machine's index settings; not root's cache folder, which the user can't write (pip would
    # warn on stderr and the run would not be the user's own).
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_CACHE_DIR"})
    script = ("set -e; cd twotier; bash .ci/venv >/dev/null; "
              ".venv/bin/pytest --target moto --provision -q -p no:cacheprovider")
    proc = subprocess.run(["runuser", "-u", name, "--", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                           "bash", "-c", script], cwd=home, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]
    assert (repo / "reports" / "report.html").stat().st_uid == user.pw_uid
    assert "every checked property holds" in proc.stdout or " passed" in proc.stdout, proc.stdout[-2000:]
