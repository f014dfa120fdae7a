"""Sweep: remove every environment of this project that expired or is older than a given age.

The safety net for runs that never reached their teardown (a killed CI job, a laptop closed
mid-run): everything provision.py creates carries Project=twotier, Env, CreatedAt and ExpiresAt,
so a scheduled `provision.py sweep --older-than 2h` finds what was left and removes it through
the same teardown as `down`, per environment. Sweep is the tool for environments we have no ledger
for (a CI job's state folder is gone with its runner), so its rule is the tags alone: it removes
what carries our Project tag and a due environment's Env tag (`down --include-tagged`), whoever made
it. Resources without our Project tag are never touched.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace

from ..errors import EnvError
from ..settings import Settings, check_env_name
from ..targets import Target
from . import kinds, tags, teardown
from .ledger import Ledger
from .lock import environment_lock

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: str) -> dt.timedelta:
    """'30m', '2h', '1d', '1h30m' -> timedelta; anything else is a one-line error."""
    m = _DURATION.match(text.strip()) if text else None
    if not m or not any(m.groups()):
        raise EnvError(f"bad --older-than {text!r}: a duration such as 30m, 2h, 1d or 1h30m")
    days, hours, minutes = (int(g or 0) for g in m.groups())
    try:
        return dt.timedelta(days=days, hours=hours, minutes=minutes)
    except OverflowError:
        raise EnvError(f"bad --older-than {text!r}: longer than any environment can be old") from None


@dataclass
class EnvFound:
    env: str
    created: dt.datetime | None = None
    expires: dt.datetime | None = None
    long_lived: bool = False
    resources: list[tuple[str, str]] = field(default_factory=list)   # (kind, id)

    def note(self, tag_list: list[dict], kind: str, rid: str) -> None:
        t = {x["Key"]: x["Value"] for x in tag_list or []}
        self.resources.append((kind, rid))
        self.long_lived = self.long_lived or t.get(tags.LIFETIME) == tags.LONG_LIVED
        for attr, key, pick in (("created", "CreatedAt", min), ("expires", "ExpiresAt", min)):
            value = tags.parse_time(t.get(key))
            if value:
                current = getattr(self, attr)
                setattr(self, attr, pick(value, current) if current else value)

    def why_due(self, now: dt.datetime, older_than: dt.timedelta) -> str | None:
        if self.long_lived:
            return None     # built with `up --long-lived`: only `down` removes it
        if self.expires and self.expires <= now:
            return f"expired at {self.expires:%Y-%m-%d %H:%M}Z"
        if self.created and now - self.created >= older_than:
            return f"created {_age(now - self.created)} ago, at {self.created:%Y-%m-%d %H:%M}Z"
        return None


def _age(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def project_environments(ec2, progress=print) -> dict[str, EnvFound]:
    """Every environment that carries our Project tag, with its oldest CreatedAt and ExpiresAt."""
    envs: dict[str, EnvFound] = {}
    for kind in kinds.KINDS:
        for rid, tag_list in kind.listing(ec2, [{"Name": "tag:Project", "Values": [tags.PROJECT]}]):
            env = next((t["Value"] for t in tag_list or [] if t["Key"] == "Env"), None)
            if env is None or not tags.is_ours(tag_list, env):   # moto ignores some tag filters
                continue
            try:
                check_env_name(env)
            except EnvError:
                # A name like "../x" would become a path; such a resource is not one of ours.
                progress(f"ignored {kind.name} {rid}: its Env tag {env!r} is not an environment name")
                continue
            envs.setdefault(env, EnvFound(env)).note(tag_list, kind.name, rid)
    return envs


def sweep(target: Target, settings: Settings, older_than: dt.timedelta, dry_run: bool = False,
          progress=print, now: dt.datetime | None = None) -> list[str]:
    """Remove every due environment; returns what could not be removed (empty when all went)."""
    now = now or dt.datetime.now(dt.UTC)
    envs = project_environments(target.ec2, progress)
    due = [(e, why) for e in envs.values() if (why := e.why_due(now, older_than))]
    kept = [e for e in envs.values() if not e.why_due(now, older_than)]
    for e in kept:
        reason = ("long-lived (tag Lifetime=long-lived)" if e.long_lived else
                  "no CreatedAt/ExpiresAt tag" if not (e.created or e.expires) else "not due yet")
        progress(f"env {e.env}: kept ({reason})")
    if not due:
        progress(f"nothing to sweep: no environment of project {tags.PROJECT} expired or older than {_age(older_than)}")
        return []
    left: list[str] = []
    for e, why in sorted(due, key=lambda x: x[0].env):
        state_dir = (settings.state_dir if e.env == settings.env
                     else type(target).default_state_dir(e.env, settings.region))
        # Exactly what `down` would delete (tags, and ledger entries whose tags say they're ours),
        # so --dry-run never lists less than a real run removes.
        found = teardown.find_env(target.ec2, e.env, Ledger(state_dir), include_tagged=True)
        progress(f"env {e.env}: {why}; {'would remove' if dry_run else 'removing'}:")
        for kind, rid in kinds.billed_first([(k, i) for k, ids in found.ours.items() for i in ids]):
            progress(f"  {kind:<17} {rid}{kinds.cost_note(kind, settings.region)}")
        if dry_run:
            continue
        with environment_lock(state_dir, e.env, "sweep"):
            remaining = teardown.down(target, replace(settings, env=e.env, state_dir=state_dir),
                                      progress=lambda m: progress(f"  {m}"), include_tagged=True)
        if remaining:
            left += [f"env {e.env}: {line}" for line in remaining.lines()]
        else:
            progress(f"env {e.env}: removed {len(e.resources)} resources")
    return left
