"""Every Linux object the lab makes carries a per-env prefix, so leftovers can be found by name.

Namespaces are named `tl-<tag>-<what>`; interfaces inside them start with the short tag too and stay
within Linux's 15-character limit. The tag is a hash of the env name so that two envs never share
a name and a long env name still fits.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

CACHE_DIR = Path("/var/cache/twotier-lab")
RUN_DIR = Path("/run/twotier-lab")
NETNS_DIR = Path("/run/netns")
CGROUP_ROOTS = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


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
    return RUN_DIR / env
