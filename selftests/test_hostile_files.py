"""No file is written or read through a link, and no folder of another user is used (DESIGN.md,
"Trust": the world may be hostile or shared). Each harm once reproduced as root, and shown gone.

The aws target against moto in server mode on 127.0.0.1; the second-user tests create a Unix user
of their own (useradd) and remove it afterwards, whatever happened; the lab's log is proven on the
local target (marked `local`: run it under the lab lock).
"""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selftests.moto_server import REPO, account_state, check_suite, provision, stderr_lines, up_args

VICTIM_TEXT = "root's own file: nothing of this tool may ever be written here\n"


def _victim(tmp_path: Path, name: str = "victim") -> Path:
    """A file of root's that a link planted by someone else points at."""
    path = tmp_path / name
    path.write_text(VICTIM_TEXT)
    path.chmod(0o600)
    return path


def _one_error_line(proc, *needles: str) -> str:
    lines = stderr_lines(proc)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], f"expected {needle!r} in {lines[0]!r}"
    return lines[0]


# -- links in a state folder of ours: replaced, or refused; never followed -----------------------------
def test_linked_key_mark_is_replaced_not_written_through(aws, tmp_path):
    """Reproduced as root: `.twotier-key` linked to a root file; `up` exited 0 and the file held the key."""
    victim = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / ".twotier-key").symlink_to(victim)
    up = provision(aws, state, *up_args("lnkey"))
    assert up.returncode == 0, up.stderr[-2000:]
    assert victim.read_text() == VICTIM_TEXT, "the key's mark was written through the link"
    assert not (state / ".twotier-key").is_symlink() and (state / ".twotier-key").read_text().startswith("ssh-ed25519")
    assert provision(aws, state, "down", "--env", "lnkey").returncode == 0


@pytest.mark.parametrize("name,needle", [("ledger.jsonl", "ledger.jsonl is a symbolic link"),
                                         (".twotier-lock", ".twotier-lock is a symbolic link")])
def test_linked_ledger_or_lock_is_one_line_and_creates_nothing(aws, tmp_path, name, needle):
    """The ledger is appended to and the lock opened by name: a link there is refused, never followed."""
    victim = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / name).symlink_to(victim)
    before = account_state(aws)
    up = provision(aws, state, *up_args("lnled"))
    assert up.returncode == 2, up.stdout[-2000:] + up.stderr[-2000:]
    _one_error_line(up, needle)
    assert victim.read_text() == VICTIM_TEXT
    assert account_state(aws) == before, "a refused up created something"


def test_pins_are_replaced_not_written_through_and_never_read_through_a_link(tmp_path):
    import paramiko

    from awsenv.hosts import ssh
    from common import files

    victim = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    pins = state / ssh.PIN_FILE
    pins.symlink_to(victim)
    client = paramiko.SSHClient()
    with pytest.raises(files.UnsafePath, match="is a symbolic link"):
        ssh.load_pins(client, pins)
    ssh.PinOnFirstContact(pins).missing_host_key(client, "198.51.100.20", paramiko.ECDSAKey.generate())
    assert victim.read_text() == VICTIM_TEXT
    assert not pins.is_symlink() and "198.51.100.20" in pins.read_text()
    assert oct(pins.stat().st_mode & 0o777) == "0o600"


def test_reports_are_renamed_over_links_never_written_through(tmp_path):
    """Reproduced as root: reports/report.html, junit.xml and run-stats.json linked to root's files
    were written through. pytest-html and junitxml now write a new file that is renamed over the name."""
    reports = tmp_path / "reports"
    reports.mkdir()
    victims = {name: _victim(tmp_path, f"victim-{name}") for name in ("report.html", "junit.xml", "run-stats.json")}
    for name in ("report.html", "junit.xml"):
        (reports / name).symlink_to(victims[name])
    # run-stats.json always goes to the repository's reports/ (another run may replace the link first:
    # either way, nothing may reach the file it points at).
    stats = REPO / "reports" / "run-stats.json"
    stats.unlink(missing_ok=True)
    stats.symlink_to(victims["run-stats.json"])
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q",
                               "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "--target", "moto", "--provision",
                               f"--state-dir={tmp_path / 'state'}", "-m", "api and not disruptive",
                               f"--html={reports / 'report.html'}", f"--junitxml={reports / 'junit.xml'}"],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    finally:
        if stats.is_symlink():
            stats.unlink()
    assert proc.returncode == 0, proc.stdout[-3000:]
    for name, victim in victims.items():
        assert victim.read_text() == VICTIM_TEXT, f"{name} was written through its link"
    assert "<html" in (reports / "report.html").read_text() and "<testsuites" in (reports / "junit.xml").read_text()
    assert sorted(p.name for p in reports.iterdir()) == ["junit.xml", "report.html"], "a temporary file was left"
    assert f"Generated html report: {(reports / 'report.html').as_uri()}" in proc.stdout, proc.stdout[-1500:]


# -- bad state folders: one line, nothing created, no half-made folder left ----------------------------
def test_state_dir_that_is_a_file_is_one_line(aws, tmp_path):
    """Reproduced: `--state-dir=/etc/hostname` gave FileExistsError: [Errno 17]."""
    up = provision(aws, Path("/etc/hostname"), *up_args("sfile"))
    assert up.returncode == 2
    _one_error_line(up, "/etc/hostname is not a folder")
    suite = check_suite(aws, tmp_path, "--env", "sfile", "--state-dir=/etc/hostname")
    out = suite.stdout + suite.stderr
    assert suite.returncode == 4 and "Traceback" not in out, out[-2000:]
    assert [line for line in out.splitlines() if "is not a folder" in line] == [
        "ERROR: state folder /etc/hostname is not a folder; give a folder (it is created if missing)"], out[-2000:]


def test_failed_up_leaves_no_state_folder_it_made(aws, tmp_path):
    """Reproduced: an `up` that failed (here: an image that doesn't exist) left its state folder
    behind, holding only its lock."""
    state = tmp_path / "fresh" / "state"
    up = provision(aws, state, *up_args("gone"), "--image", "ami-0123456789abcdef0")
    assert up.returncode == 2, up.stderr[-2000:]
    assert not state.exists(), f"left behind: {sorted(p.name for p in state.iterdir())}"
    # A folder that was there before stays, with what the user keeps in it.
    state.mkdir(parents=True, mode=0o700)
    (state / "notes.txt").write_text("mine\n")
    again = provision(aws, state, *up_args("gone"), "--image", "ami-0123456789abcdef0")
    assert again.returncode == 2 and (state / "notes.txt").read_text() == "mine\n"


# -- a second Unix user ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def other_user():
    """A Unix user of this test's own, removed afterwards whatever happens."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to make a second user")
    name = f"tt17-{secrets.token_hex(3)}"
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False)


def _theirs(path: Path, user, mode: int | None = None) -> Path:
    """Hand `path` (a file, a folder or a link) to the other user."""
    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    if mode is not None:
        path.chmod(mode)
    return path


def _their_folder(path: Path, user, mode: int = 0o755) -> Path:
    path.mkdir()
    return _theirs(path, user, mode)


def _their_link(path: Path, target: Path, user) -> Path:
    path.symlink_to(target)
    return _theirs(path, user)


def test_state_folder_of_another_user_is_refused_and_nothing_is_written_or_read(aws, tmp_path, other_user):
    """Another user owns a shared state folder and plants links in it: to a file of root's (to be
    written) and to a secret of their own (to be read). `up` and `down` refuse the folder in one
    line; neither file is touched, nor the secret shown."""
    tmp_path.chmod(0o755)
    victim = _victim(tmp_path)
    secret = tmp_path / "their-secret"
    secret.write_text('{"kind": "vpc", "id": "vpc-theirs-secret"}\n')
    _theirs(secret, other_user, 0o600)
    state = _their_folder(tmp_path / "shared-state", other_user, 0o700)
    for name, target in ((".twotier-key", victim), ("id_ed25519", victim), ("ledger.jsonl", secret)):
        _their_link(state / name, target, other_user)
    before = account_state(aws)
    for command in (up_args("shared"), ["down", "--env", "shared"], ["status", "--env", "shared"]):
        proc = provision(aws, state, *command)
        assert proc.returncode == 2, proc.stdout[-1500:] + proc.stderr[-1500:]
        _one_error_line(proc, str(state), f"belongs to {other_user.pw_name}")
        assert "vpc-theirs-secret" not in proc.stdout + proc.stderr
    suite = check_suite(aws, tmp_path, "--env", "shared", f"--state-dir={state}")
    out = suite.stdout + suite.stderr
    assert suite.returncode == 4 and "Traceback" not in out, out[-2000:]
    assert len([line for line in out.splitlines() if f"belongs to {other_user.pw_name}" in line]) == 1, out[-2000:]
    assert victim.read_text() == VICTIM_TEXT and "vpc-theirs-secret" in secret.read_text()
    assert account_state(aws) == before


@pytest.mark.parametrize("layout", ["world-writable", "under-their-folder"])
def test_a_folder_others_can_change_is_refused(aws, tmp_path, other_user, layout):
    """Root's own folder, but others can plant in it (mode 777) or swap it (it sits in a folder of
    theirs): refused in one line, before any file in it is opened."""
    tmp_path.chmod(0o755)
    victim = _victim(tmp_path)
    if layout == "world-writable":
        state = tmp_path / "state"
        state.mkdir()
        state.chmod(0o777)
        _their_link(state / "ledger.jsonl", victim, other_user)
        needle = "is writable by group and others"
    else:
        theirs = _their_folder(tmp_path / "theirs", other_user)
        state = theirs / "state"
        state.mkdir(mode=0o700)
        needle = f"the folder above it, {theirs}, belongs to {other_user.pw_name}"
    up = provision(aws, state, *up_args("plant"))
    assert up.returncode == 2, up.stdout[-1500:] + up.stderr[-1500:]
    _one_error_line(up, needle)
    assert victim.read_text() == VICTIM_TEXT


def test_reports_folder_of_another_user_is_a_usage_error(tmp_path, other_user):
    tmp_path.chmod(0o755)
    victim = _victim(tmp_path)
    reports = _their_folder(tmp_path / "reports", other_user)
    _their_link(reports / "report.html", victim, other_user)
    proc = subprocess.run([sys.executable, "-m", "pytest", str(REPO / "tests"), "-p", "no:cacheprovider", "-q",
                           "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "--target", "moto",
                           f"--state-dir={tmp_path / 'state'}", f"--html={reports / 'report.html'}",
                           f"--junitxml={tmp_path / 'junit.xml'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "Traceback" not in out, out[-2000:]
    assert [line for line in out.splitlines() if "reports folder" in line] == [
        f"ERROR: reports folder {reports} belongs to {other_user.pw_name} (uid {other_user.pw_uid}), not to you "
        "(root (uid 0)); refusing to use a folder someone else controls: choose one of your own"], out[-2000:]
    assert victim.read_text() == VICTIM_TEXT


def test_a_file_of_another_user_in_our_folder_is_never_read(aws, tmp_path, other_user):
    """Our folder, but a file in it belongs to someone else (copied in, or chowned): never used."""
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("chown")).returncode == 0
    ledger = state / "ledger.jsonl"
    os.chown(ledger, other_user.pw_uid, other_user.pw_gid)
    down = provision(aws, state, "down", "--env", "chown")
    assert down.returncode == 2
    _one_error_line(down, f"{ledger} belongs to {other_user.pw_name}")
    os.chown(ledger, 0, 0)
    assert provision(aws, state, "down", "--env", "chown").returncode == 0


# -- the lab's log, on the local target ----------------------------------------------------------------
@pytest.mark.local
@pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")
def test_linked_lab_log_is_refused_before_the_lab_starts(tmp_path):
    """Reproduced: the lab daemon's log was appended to through a link (`lab.log` -> a root file)."""
    victim = _victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "lab.log").symlink_to(victim)
    proc = subprocess.run([sys.executable, str(REPO / "provision.py"), "up", "--target", "local", "--env", "hl17log",
                           "--no-host-setup", f"--state-dir={state}"], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    try:
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert stderr_lines(proc)[-1] == f"error: {state / 'lab.log'} is a symbolic link; refusing to follow it " \
                                         "(remove it, or choose another folder)", proc.stderr[-2000:]
        assert victim.read_text() == VICTIM_TEXT
    finally:
        subprocess.run([sys.executable, str(REPO / "provision.py"), "down", "--target", "local", "--env", "hl17log",
                        f"--state-dir={state}"], cwd=REPO, capture_output=True, timeout=300)
