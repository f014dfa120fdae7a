"""The targets: where the AWS API is, how hosts are reached, and each one's whole lifecycle.

A target is the only thing that knows which target it is. Each is named here by a dotted path
(as pytest-testinfra names its backends) and imported only when chosen, so the moto and lab code
never load on the aws target. Callers get decisions from the target (region, state directory,
boot timeout, proxy command, persistence), never its name to compare with.
"""
from __future__ import annotations

import importlib

from ..errors import EnvError
from ..settings import DEFAULTS
from .base import Target

TARGETS = {
    "local": "awsenv.targets.local.LocalTarget",
    "moto": "awsenv.targets.moto.MotoTarget",
    "aws": "awsenv.targets.aws.AwsTarget",
}


def target_class(name: str) -> type[Target]:
    try:
        module, cls = TARGETS[name].rsplit(".", 1)
    except KeyError:
        raise EnvError(f"unknown target {name!r}: choose one of {', '.join(TARGETS)}") from None
    return getattr(importlib.import_module(module), cls)


def make_target(values: dict) -> Target:
    """The target named by values["target"], with the settings it decided (raw option values in)."""
    cls = target_class(str(values.get("target") or DEFAULTS["target"]))
    return cls(cls.decide_settings(values))


__all__ = ["TARGETS", "Target", "make_target", "target_class"]
