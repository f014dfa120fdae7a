"""Whether this Python holds the project's packages, asked before anything imports them.

A `python3` that is not the project's venv (another one first on PATH, Debian's own) would
otherwise end in an ImportError traceback; this names the install instead, in one line. Only the
standard library here: it runs before the packages are known to be there.
"""
from __future__ import annotations

import importlib.util
import sys

# One module of each package the suite, the provisioner and the lab import at start.
NEEDED = {"boto3": "boto3", "botocore": "botocore", "paramiko": "paramiko", "pytest": "pytest",
          "testinfra": "pytest-testinfra", "pytest_html": "pytest-html", "xdist": "pytest-xdist",
          "moto": "moto", "yaml": "PyYAML"}
INSTALL = ("run `bash .ci/setup` (Debian, root: the lab too) or `bash .ci/venv` (check-only: no root), "
           "then use .venv/bin/pytest and .venv/bin/python provision.py")


def missing() -> list[str]:
    return [dist for module, dist in NEEDED.items() if importlib.util.find_spec(module) is None]


def missing_line(tool: str) -> str | None:
    """The one line to print, or None when every package is there."""
    gone = missing()
    if not gone:
        return None
    return (f"{tool}: the project's Python packages are not installed for {sys.executable} "
            f"(missing: {', '.join(gone)}): {INSTALL}")


def provision_command(args: str) -> str:
    """`provision.py ARGS` as the user can type it: with the interpreter running now (the project's
    venv, `.venv/bin/python`), never a bare `python` that a fresh machine lacks."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    exe = Path(sys.executable)
    try:
        python = str(exe.relative_to(repo))
    except ValueError:
        python = str(exe)
    return f"{python} provision.py {args}"
