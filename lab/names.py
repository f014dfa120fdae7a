"""Every Linux object the lab makes carries a per-env prefix, so leftovers can be found by name.

Namespaces are named `tl-<tag>-<what>`; interfaces inside them start with the short tag too and stay
within Linux's 15-character limit. The tag is a hash of the env name so that two envs never share
a name and a long env name still fits.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .errors import LabError

# The base image and package mirror are built once per machine and kept here (CI may point it at
# a cached volume).
CACHE_DIR = Path(os.environ.get("TWOTIER_LAB_CACHE", "/var/cache/twotier-lab"))
RUN_DIR = Path("/run/twotier-lab")
# The repository: the daemon and OpenSSH's ProxyCommand run `-m lab....` from it.
REPO_ROOT = Path(__file__).resolve().parent.parent
NETNS_DIR = Path("/run/netns")
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")  # nspawn leaves one dir per machine name
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


# The CLI's rule for an env name (awsenv/settings.py), checked again here because paths are built
# from it (/run/twotier-lab/<env>, .state/<env>): `../../etc` must never become one.
ENV_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
# AWS ids as the API hands them out: they become namespace, interface and directory names.
AWS_ID = re.compile(r"(vpc|subnet|i|eni|sg|rtb|igw|nat|eipalloc)-[0-9a-f]{8,17}")


def check_env(env: str) -> str:
    """The env name, if it is one (full match: no trailing newline, no slash, no dot); else LabError."""
    if not isinstance(env, str) or not ENV_NAME.fullmatch(env):
        raise LabError(f"invalid env name {str(env)[:40]!r}: lowercase letters, digits and '-', "
                       f"starting with a letter, at most 31 characters")
    return env


def is_aws_id(value, kind: str | None = None) -> bool:
    if not isinstance(value, str):
        return False
    m = AWS_ID.fullmatch(value)
    return bool(m and (kind is None or m.group(1) == kind))


def is_instance_id(value) -> bool:
    return is_aws_id(value, "i")


def tag(env: str) -> str:
    return hashlib.sha1(env.encode()).hexdigest()[:5]


def netns_prefix(env: str) -> str:
    return f"tl-{tag(env)}-"


def internet_ns(env: str) -> str:
    return f"{netns_prefix(env)}inet"


def probe_ns(env: str) -> str:
    return f"{netns_prefix(env)}probe"


def vpc_ns(env: str, vpc_id: str) -> str:
    return f"{netns_prefix(env)}{vpc_id}"


def instance_ns(env: str, instance_id: str) -> str:
    return f"{netns_prefix(env)}{instance_id}"


def natgw_ns(env: str, natgw_id: str) -> str:
    return f"{netns_prefix(env)}{natgw_id}"


def short(aws_id: str, n: int = 8) -> str:
    """The tail of an AWS id (hex), enough to be unique inside one env's namespaces."""
    return aws_id.rsplit("-", 1)[-1][-n:]


def link(kind: str, aws_id: str) -> str:
    """Interface name in a router namespace: one letter for the kind + the id's tail (<= 15 chars)."""
    name = f"{kind}{short(aws_id, 12)}"
    assert len(name) <= 15, name
    return name


def machine_name(env: str, instance_id: str) -> str:
    return f"tl-{tag(env)}-{short(instance_id, 17)}"


def cgroup_name(env: str, instance_id: str) -> str:
    return f"twotier-lab/{machine_name(env, instance_id)}"


def run_dir(env: str) -> Path:
    """Per-env runtime files any process can find from the env name alone (vantage is told only that)."""
    return RUN_DIR / check_env(env)


def cache_in_use(path: Path) -> bool:
    """Is a cached image/mirror used by a running lab (an overlay's lowerdir or a daemon's argument)?

    Never delete one that is: another env (or another engineer's test) may be running on it.
    """
    needle = str(path)
    with open("/proc/self/mounts") as f:
        if any(needle in line for line in f):
            return True
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if needle.encode() in (d / "cmdline").read_bytes():
                    return True
            except OSError:
                pass
    return False
