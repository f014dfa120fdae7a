"""README as executable documentation: every fenced shell block of the READMEs runs as written.

Each block runs in a clean shell, from the top of a copy of the repository (so its reports and
state folders are its own; `.venv` is the project's, linked), in the order the READMEs give them.
A non-zero exit that the text doesn't announce fails. A block that can't run here (a real AWS
account, the CI run itself) carries a skip marker with its reason: those are counted, and only the
reasons below are allowed. The local target's blocks use the environments `twotier` and `demo`, and
the labs `shop` and `awslab`: if this machine already runs one of those (a user's own), the test
fails before touching it.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from lab import names
from selftests.readme_blocks import DOCS, SHELLS, blocks, script
from selftests.suite_runner import REPO

# One worker runs every block, in README order: the blocks build on each other and share one copy.
pytestmark = [pytest.mark.xdist_group("readme"), pytest.mark.local,
              pytest.mark.skipif(os.geteuid() != 0, reason="the local target needs root")]

ALL = blocks(REPO)
SHELL_BLOCKS = [b for b in ALL if b.lang in SHELLS]
ALLOWED_SKIPS = ("a real AWS account", "it is the run that holds the README test", "part of bash .ci/run",
                 "minutes of both cores")
README_ENVS = ("twotier", "demo", "shop", "awslab")
CLEAN_ENV = {"HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
             "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             # Not in a new user's shell, but no run here may ask the metadata address for credentials.
             "AWS_EC2_METADATA_DISABLED": "true",
             # The machine's own network settings (a TLS-inspecting proxy's CA, pip's index), which
             # every shell on it has: not the user's, and nothing AWS.
             **{k: v for k, v in os.environ.items()
                if k.startswith("PIP_") or k.lower().endswith("_proxy") or k in ("SSL_CERT_FILE", "SSL_CERT_DIR")}}


def labs_running(envs) -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    return [env for env in envs if any(n.startswith(names.netns_prefix(env)) for n in listed)]


@pytest.fixture(scope="module")
def repo_copy():
    """The repository's files (tracked and new, not ignored) in a folder of their own, outside
    pytest's temporary folders (another pytest session may rotate those away while a lab's disks
    are mounted in them). Afterwards, whatever failed: every README environment is taken down and
    every process started from the copy (a lab daemon, an emulator) is ended."""
    mine = labs_running(README_ENVS)
    assert not mine, (f"this machine runs a local environment named {', '.join(mine)}: the README's commands "
                      "use those names; remove yours first (provision.py down --env NAME)")
    copy = Path(tempfile.mkdtemp(prefix="twotier-readme-")) / "twotier"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (REPO / rel).is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, copy / rel)
    (copy / ".venv").symlink_to(REPO / ".venv")
    try:
        yield copy
    finally:
        left = labs_running(README_ENVS)
        for env in README_ENVS:
            subprocess.run([str(REPO / ".venv/bin/python"), "provision.py", "down", "--env", env], cwd=copy,
                           capture_output=True, env=dict(CLEAN_ENV), timeout=300)
        for pid in started_from(copy):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(copy.parent, ignore_errors=True)
    assert not left, f"the README's commands left a local environment running: {left}"


def started_from(folder: Path) -> list[int]:
    """Processes whose working directory is in folder: what the README's commands left running."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if Path(os.readlink(proc / "cwd")).is_relative_to(folder):
                    pids.append(int(proc.name))
    return pids


def test_every_block_is_run_or_says_why_not():
    """The markers are honest: each skipped block gives an allowed reason, every file's shell blocks
    are parsed into commands, and there is something to run."""
    skipped = [b for b in SHELL_BLOCKS if b.skip]
    bad = [f"{b.id}: {b.skip}" for b in skipped if not b.skip.startswith(ALLOWED_SKIPS)]
    assert not bad, f"skip markers without an allowed reason: {bad}"
    assert all(b.commands for b in SHELL_BLOCKS), [b.id for b in SHELL_BLOCKS if not b.commands]
    ran = [b for b in SHELL_BLOCKS if not b.skip]
    print(f"\nREADME blocks: {len(ran)} run, {len(skipped)} marked as not runnable here "
          f"({'; '.join(f'{b.id} {b.skip}' for b in skipped)})")
    assert len(ran) >= 6
    # Unmarked blocks in a shell-like language that isn't recognised would escape the test.
    odd = [b.id for b in ALL if b.lang in ("", "console", "shell-session", "zsh") and not b.skip]
    assert not odd, f"fenced blocks without a language this test runs (sh, bash): {odd}"


# A fresh Debian 12 has no `python` (exit 127), and its python3 holds none of the project's packages.
NOT_AS_WRITTEN = re.compile(r"python\s|python3\s+(-m\s+(pytest|lab|emulator|awsenv|compliance)\b|provision\.py|bench/)")


def test_no_bare_python_or_pytest_in_any_command():
    """Every command goes through the project's venv (`.venv/bin/...`): in the blocks, and inline in
    the prose (where `pytest --flag` may still name a mode of the suite)."""
    bare = []
    for doc in DOCS:
        for n, line in enumerate((REPO / doc).read_text().splitlines(), 1):
            bare += [f"{doc}:{n}: {m.group(1)}" for m in re.finditer(r"`([^`]*)`", line)
                     if NOT_AS_WRITTEN.match(m.group(1))]
    for b in SHELL_BLOCKS:
        bare += [f"{b.doc}:{c.line}: {c.text}" for c in b.commands
                 if NOT_AS_WRITTEN.match(c.text) or re.match(r"pytest\s", c.text)]
    assert not bare, "commands a new user's shell can't run as written:\n" + "\n".join(bare)


@pytest.mark.parametrize("block", [b for b in SHELL_BLOCKS if not b.skip], ids=lambda b: b.id)
def test_block_runs_as_written(repo_copy, block):
    proc = subprocess.run(["env", "-i", *[f"{k}={v}" for k, v in CLEAN_ENV.items()], "bash", "-c", script(block)],
                          cwd=repo_copy, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (f"{block.id} failed (exit {proc.returncode}):\n{block.source}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")


def test_every_figure_comes_from_the_file_the_benchmark_writes():
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    import figures

    assert figures.readme_table((REPO / "README.md").read_text()) == figures.table(), \
        "README's benchmark table differs from bench/figures.json: run .venv/bin/python bench/figures.py --update-readme"
    assert figures.table().count("\n") >= 3, "bench/figures.json holds no figures"


def test_the_state_files_readme_lists_are_the_ones_the_tools_write():
    from awsenv.statedir import STATE_FILES

    readme = (REPO / "README.md").read_text()
    listed = set(re.findall(r"^\| `([^`]+)` \| .* \| .* \|$", readme, re.M))
    assert {f.name for f in STATE_FILES} <= listed, {f.name for f in STATE_FILES} - listed
