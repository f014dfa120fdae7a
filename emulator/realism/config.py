"""The layer's settings: the switch (which rules), the windows (Timings), the rates (Rates)."""
from __future__ import annotations

import dataclasses
import os

ENV_SWITCH = "TWOTIER_EMULATOR_REALISM"
ENV_SCALE = "TWOTIER_EMULATOR_REALISM_SCALE"
ENV_COUNTS = "TWOTIER_EMULATOR_REALISM_COUNTS"
_OFF = ("off", "0", "false", "no", "disabled")
_ON = ("", "on", "1", "true", "yes", "all")


@dataclasses.dataclass(frozen=True)
class Timings:
    """How long each transitional answer lasts, in seconds (already scaled down from AWS's).

    On AWS: a new ID usually propagates within a few seconds; an instance is `pending` for ~10-60 s
    and `stopping` / `shutting-down` for ~30-120 s; a NAT gateway is `pending` for ~1-5 min and
    `deleting` for ~1 min; a terminated instance's network interface can hold its security group
    for seconds to minutes, a deleted NAT gateway's its subnet; a deleted NAT gateway's Elastic IP
    can refuse to be released for a moment after the gateway is `deleted`. Only the order of states
    is AWS's, never the durations.
    """

    consistency: float = 1.5
    instance_pending: float = 4.0
    instance_stopping: float = 4.0
    instance_shutting_down: float = 4.0
    nat_pending: float = 6.0
    nat_deleting: float = 4.0
    eni_linger: float = 4.0
    nat_eni_linger: float = 4.0      # a deleted NAT gateway's interface, after `deleted`
    eip_release_lag: float = 3.0     # its Elastic IP's release refused, after `deleted` (see Rates)

    def scaled(self, factor: float) -> Timings:
        if factor < 0:
            raise ValueError("a timing scale can't be negative")
        return Timings(**{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)})

    @classmethod
    def from_env(cls, base: Timings | None = None) -> Timings:
        base = base or cls()
        raw = os.environ.get(ENV_SCALE, "").strip()
        return base.scaled(float(raw)) if raw else base


@dataclasses.dataclass(frozen=True)
class Rates:
    """How often an answer that EC2 gives only sometimes is given (0..1). AWS publishes no figures;
    these follow how often the tools' issue threads meet them: rarely, or "intermittently"."""

    listing_lag: float = 0.05        # a new ID is left out of Describe* lists for a moment (listing-lag)
    nat_release_lag: float = 0.3     # a deleted NAT gateway's address refuses release for a moment (nat-gateway-eip)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if not 0 <= getattr(self, f.name) <= 1:
                raise ValueError(f"rate {f.name} must be between 0 and 1")


def rules_from_env(value: str | None = None) -> frozenset[str]:
    """The rules the switch turns on: all by default, none for `off`, or a comma-separated list."""
    from .rules import RULES

    raw = (os.environ.get(ENV_SWITCH, "") if value is None else value).strip().lower()
    if raw in _ON:
        return frozenset(RULES)
    if raw in _OFF:
        return frozenset()
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = names - set(RULES)
    if unknown:
        raise ValueError(f"{ENV_SWITCH}: unknown rule(s) {sorted(unknown)}; the rules are {', '.join(RULES)}")
    return frozenset(names)
