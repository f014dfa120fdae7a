"""Waivers: a known violation, named with a reason and an end date (InSpec's waivers, for this suite).

The file (YAML) is a list of entries, or a mapping with the list under `waivers:`:

    waivers:
      - environment: "*"              # an environment's key (NAME@REGION), its name, or * for all
        property: "4.6"               # an article number or a hardening id (H:imdsv2_required) ...
        # check: tests/test_hardening.py::test_imdsv2_required[web]   # ... or a check id (no [..]: every parameter)
        reason: NAT gateway kept while the DB migrates (OPS-123)
        expires: 2026-12-31           # the last day it holds (UTC)

A violation a waiver names is "waived": shown with the reason and the expiry, not hidden, not
counted in the exit status. After `expires` it is a violation again and says its waiver expired.
A waiver that waives nothing this run is reported: one that names no check of the run, and one
whose checks were not violated. Waivers apply to violations only: "not checked" means the run
could not look, which no waiver can settle.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from common import files

from .results import VIOLATED, WAIVED, Record

KEYS = {"environment", "property", "check", "reason", "expires"}
ACTIVE, EXPIRED = "active", "expired"
# What a waiver did this run (results.json: waivers.entries[].status).
USED, UNMATCHED, NOTHING_TO_WAIVE = "used", "unmatched", "nothing-to-waive"


class WaiverError(Exception):
    """A waivers file that can't be used; the message is one line."""


@dataclass(frozen=True)
class Waiver:
    id: str                  # W1, W2, ...: its place in the file
    environment: str
    property: str | None
    check: str | None
    reason: str
    expires: dt.date

    def state(self, today: dt.date) -> str:
        return ACTIVE if today <= self.expires else EXPIRED

    def names(self, env_key: str, env_name: str, prop: str, check_id: str) -> bool:
        if self.environment not in ("*", env_key, env_name):
            return False
        if self.property is not None:
            return prop == self.property
        assert self.check is not None
        return check_id == self.check or (check_id.startswith(self.check + "[") and "[" not in self.check)

    def as_record_field(self, today: dt.date) -> dict:
        return {"id": self.id, "state": self.state(today), "reason": self.reason, "expires": self.expires.isoformat()}

    def to_json(self) -> dict:
        return {"id": self.id, "environment": self.environment, "property": self.property, "check": self.check,
                "reason": self.reason, "expires": self.expires.isoformat()}

    @classmethod
    def from_json(cls, d: dict) -> Waiver:
        return cls(d["id"], d["environment"], d.get("property"), d.get("check"), d["reason"],
                   dt.date.fromisoformat(d["expires"]))


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def load(path: Path) -> list[Waiver]:
    try:
        data = files.read_given_yaml(path)
    except files.FileError as exc:
        raise WaiverError(f"bad --waivers: {exc}") from None
    return parse(data, str(path))


def parse(data, source: str = "waivers") -> list[Waiver]:
    if isinstance(data, dict) and set(data) == {"waivers"}:
        data = data["waivers"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise WaiverError(f"bad --waivers {source}: expected a list of waivers (or `waivers:` holding one)")
    out = []
    for n, entry in enumerate(data, 1):
        out.append(_entry(entry, n, source))
    return out


def _entry(entry, n: int, source: str) -> Waiver:
    where = f"bad --waivers {source}: waiver {n}"
    if not isinstance(entry, dict):
        raise WaiverError(f"{where}: expected a mapping with environment, property or check, reason, expires")
    unknown = sorted(str(k) for k in entry if k not in KEYS)
    if unknown:
        raise WaiverError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(KEYS))})")
    for key in ("environment", "reason", "expires"):
        if entry.get(key) in (None, ""):
            raise WaiverError(f"{where}: {key} is missing")
    if ("property" in entry) == ("check" in entry):
        raise WaiverError(f"{where}: give exactly one of property (an article number or H:NAME) or check (a check id)")
    texts = {}
    for key in ("environment", "property", "check", "reason"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, float | int) and key == "property":
            raise WaiverError(f"{where}: property {value!r} must be quoted (\"{value}\"), or YAML reads it as a number")
        if not isinstance(value, str) or not value.strip():
            raise WaiverError(f"{where}: {key} must be non-empty text")
        if any(ord(c) < 32 for c in value):
            raise WaiverError(f"{where}: {key} holds a control character")
        texts[key] = value.strip()
    expires = entry["expires"]
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    elif isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires.strip())
        except ValueError:
            raise WaiverError(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)") from None
    elif not isinstance(expires, dt.date):
        raise WaiverError(f"{where}: expires {expires!r} is not a date (YYYY-MM-DD)")
    return Waiver(f"W{n}", texts["environment"], texts.get("property"), texts.get("check"), texts["reason"], expires)


def find(waivers: list[Waiver], env_key: str, env_name: str, prop: str, check_id: str,
         on: dt.date) -> Waiver | None:
    """The waiver for this check: the first active one that names it, else the first expired one."""
    named = [w for w in waivers if w.names(env_key, env_name, prop, check_id)]
    return next((w for w in named if w.state(on) == ACTIVE), named[0] if named else None)


def report(waivers: list[Waiver], records: list[Record], names: dict[str, str], on: dt.date,
           source: str | None) -> dict:
    """The waivers section of results.json: each waiver with what it did this run. Computed from
    the records (names: environment key -> name), so merged shards get what one run would."""
    entries = []
    for w in waivers:
        named = [r for r in records if w.names(r.environment, names.get(r.environment, ""), r.property, r.check_id)]
        mine = [r for r in named if (r.waiver or {}).get("id") == w.id]
        waived = [r for r in mine if r.verdict == WAIVED]
        expired = [r for r in mine if r.verdict == VIOLATED]
        status = USED if mine else (NOTHING_TO_WAIVE if named else UNMATCHED)
        entries.append({**w.to_json(), "state": w.state(on), "status": status, "named": len(named),
                        "waived": len(waived), "expired_on": len(expired)})
    return {"file": source, "checked_on": on.isoformat(), "entries": entries}


def unused(section: dict) -> list[dict]:
    return [e for e in section.get("entries", []) if e["status"] != USED]


def explain(entry: dict) -> str:
    """Why a waiver waived nothing, in words."""
    if entry["status"] == UNMATCHED:
        return "names no check of this run"
    return f"names {entry['named']} check(s), none violated: nothing to waive"
