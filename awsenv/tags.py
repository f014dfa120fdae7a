"""How everything we create is marked, so it can be found and deleted again."""
from __future__ import annotations

import datetime as dt

PROJECT = "twotier"
DEFAULT_TTL_HOURS = 8


def tags_for(env: str, role: str, ttl_hours: float = DEFAULT_TTL_HOURS) -> list[dict]:
    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=ttl_hours)
    return [{"Key": "Name", "Value": f"{env}-{role}"}, {"Key": "Env", "Value": env},
            {"Key": "Role", "Value": role}, {"Key": "Project", "Value": PROJECT},
            {"Key": "ExpiresAt", "Value": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}]


def spec(resource_type: str, env: str, role: str) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": tags_for(env, role)}]


def env_filter(env: str, role: str | None = None) -> list[dict]:
    f = [{"Name": "tag:Env", "Values": [env]}, {"Name": "tag:Project", "Values": [PROJECT]}]
    if role:
        f.append({"Name": "tag:Role", "Values": [role]})
    return f
