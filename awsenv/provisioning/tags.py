"""How everything we create is marked, so it can be found and deleted again."""
from __future__ import annotations

import datetime as dt

PROJECT = "twotier"
DEFAULT_TTL_HOURS = 8
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
RUN_ID = "RunId"        # which `up` made it: a failed `up` removes its own resources, never an earlier one's
LIFETIME = "Lifetime"
LONG_LIVED = "long-lived"


def tags_for(env: str, role: str, ttl_hours: float = DEFAULT_TTL_HOURS, long_lived: bool = False,
             run_id: str | None = None) -> list[dict]:
    # CreatedAt and ExpiresAt let `provision.py sweep` remove what a crashed or forgotten run left;
    # a long-lived environment (up --long-lived) carries Lifetime=long-lived instead of an expiry.
    now = dt.datetime.now(dt.UTC)
    out = [{"Key": "Name", "Value": f"{env}-{role}"}, {"Key": "Env", "Value": env},
           {"Key": "Role", "Value": role}, {"Key": "Project", "Value": PROJECT},
           {"Key": "CreatedAt", "Value": now.strftime(TIME_FORMAT)}]
    if run_id:
        out.append({"Key": RUN_ID, "Value": run_id})
    if long_lived:
        return [*out, {"Key": LIFETIME, "Value": LONG_LIVED}]
    return [*out, {"Key": "ExpiresAt", "Value": (now + dt.timedelta(hours=ttl_hours)).strftime(TIME_FORMAT)}]


def parse_time(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        return dt.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


def spec(resource_type: str, env: str, role: str, long_lived: bool = False, run_id: str | None = None) -> list[dict]:
    return [{"ResourceType": resource_type, "Tags": tags_for(env, role, long_lived=long_lived, run_id=run_id)}]


def value(tag_list: list[dict] | None, key: str) -> str | None:
    return next((t["Value"] for t in tag_list or [] if t.get("Key") == key), None)


def env_filter(env: str, role: str | None = None) -> list[dict]:
    f = [{"Name": "tag:Env", "Values": [env]}, {"Name": "tag:Project", "Values": [PROJECT]}]
    if role:
        f.append({"Name": "tag:Role", "Values": [role]})
    return f


def is_ours(tag_list: list[dict] | None, env: str, role: str | None = None) -> bool:
    """The tag filter, applied again on our side: moto ignores tag filters on NAT gateways, and a
    teardown that trusted a filter it can't verify could delete another environment's gateway."""
    t = {x["Key"]: x["Value"] for x in tag_list or []}
    return t.get("Env") == env and t.get("Project") == PROJECT and (role is None or t.get("Role") == role)
