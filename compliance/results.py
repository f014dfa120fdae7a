"""results.json: one record per environment x check, versioned ("schema": "twotier-results/1").

The shape is documented in results.schema.json beside this file (JSON Schema 2020-12) and in
README's "Machine-readable results". A run writes one; `python -m compliance merge` joins
shards' into one; the next run reads it as its baseline (history.py). Records carry their
environment's key from the start, so a fleet only adds environments and records.
"""
from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from common import files

SCHEMA = "twotier-results/1"
SCHEMA_FILE = Path(__file__).with_name("results.schema.json")

HOLDS, VIOLATED, NOT_CHECKED, NOT_APPLICABLE, ACCEPTED, ADVISORY, WAIVED = (
    "holds", "violated", "not-checked", "not-applicable", "accepted", "advisory", "waived")
VERDICTS = (HOLDS, VIOLATED, NOT_CHECKED, NOT_APPLICABLE, ACCEPTED, ADVISORY, WAIVED)
# What history follows: a property that is out of compliance (waived ones still are) or unproven.
FINDINGS = frozenset({VIOLATED, NOT_CHECKED, WAIVED})
EXIT_OK, EXIT_VIOLATED, EXIT_NOT_CHECKED = 0, 1, 6
# A check of the environment as a whole: the record an environment that could not be reached gets.
ENVIRONMENT_CHECK = "environment"
# How the plugin's tally begins the message of a check deselected with -m or -k ("deselected (-m
# 'api')"): not applicable like a check that does not apply here, but counted apart from those.
DESELECTED = "deselected"


class ResultsError(Exception):
    """A results file that is not ours or not this schema; one line."""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def timestamp(when: dt.datetime | float | None = None) -> str:
    """RFC 3339 in UTC with milliseconds and Z (what ASFF accepts too)."""
    if when is None:
        when = now()
    elif isinstance(when, (int, float)):
        when = dt.datetime.fromtimestamp(when, dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_run_id(started: dt.datetime) -> str:
    return f"{started.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def tool_version(repo: Path) -> str:
    """`git describe` of the checkout the suite runs from, or "unknown" (an export without .git)."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"], cwd=repo, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def environment_key(name: str | None = None, vpc_id: str | None = None, region: str | None = None,
                    account: str | None = None) -> str:
    """How records name their environment, from how it was selected (never from what was found, so
    the key of an environment that could not be read this time is the same as last time):
    NAME@REGION for one found by its Env tag, VPC-ID@REGION for one found by VPC, prefixed with
    ACCOUNT/ where the selection names the account (a fleet entry with a role to assume)."""
    base = name or vpc_id or "?"
    key = f"{base}@{region}" if region else base
    return f"{account}/{key}" if account else key


def evidence_digest(items: list[tuple[str, str]]) -> str | None:
    """sha256 of the evidence attached for the report: the JSON array of [title, body] pairs,
    compact (separators "," and ":"), UTF-8, non-ASCII kept. None when the check attached none."""
    if not items:
        return None
    text = json.dumps([[t, b] for t, b in items], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Environment:
    """One environment of the run: the key records use, and what is known about it."""
    key: str
    name: str
    region: str | None = None
    vpc_id: str | None = None
    account: str | None = None
    error: str | None = None              # why it could not be checked at all (then it has no check records)

    def to_json(self, records: list[Record]) -> dict:
        counts = {v: 0 for v in VERDICTS}
        for r in records:
            counts[r.verdict] += 1
        return {"key": self.key, "name": self.name, "region": self.region, "vpc_id": self.vpc_id,
                "account": self.account, "error": self.error, "exit_status": environment_exit(self, records),
                "counts": counts, "counts_apart": counts_apart(records)}

    @classmethod
    def from_json(cls, d: dict) -> Environment:
        return cls(d["key"], d["name"], d.get("region"), d.get("vpc_id"), d.get("account"), d.get("error"))


@dataclass
class Record:
    environment: str
    check_id: str
    property: str                  # an article number ("4.2") or a hardening id ("H:imdsv2_required")
    title: str
    verdict: str
    message: str
    time: str
    deciding: bool = True          # takes part in the exit status (hardening only with --hardening=enforce)
    evidence_sha256: str | None = None
    history: dict | None = None    # history.py: status, since, previous
    waiver: dict | None = None     # waivers.py: id, state, reason, expires

    # builtins.: the field `property` (results.json's name for it) hides the builtin in this class.
    @builtins.property
    def key(self) -> tuple[str, str]:
        return (self.environment, self.check_id)

    @builtins.property
    def finding(self) -> bool:
        return self.verdict in FINDINGS

    def to_json(self) -> dict:
        return {"environment": self.environment, "check_id": self.check_id, "property": self.property,
                "title": self.title, "verdict": self.verdict, "message": self.message, "time": self.time,
                "deciding": self.deciding, "evidence_sha256": self.evidence_sha256, "history": self.history,
                "waiver": self.waiver}

    @classmethod
    def from_json(cls, d: dict) -> Record:
        return cls(d["environment"], d["check_id"], d["property"], d.get("title", ""), d["verdict"], d.get("message", ""),
                   d["time"], d.get("deciding", True), d.get("evidence_sha256"), d.get("history"), d.get("waiver"))


def is_deselected(record: Record) -> bool:
    return record.verdict == NOT_APPLICABLE and record.message.startswith(f"{DESELECTED} (")


def counts_apart(records: list[Record]) -> dict:
    """The same records counted as the terminal summary and the report count them: article checks and
    hardening checks (property H:...) apart, each by verdict, and deselected checks apart from both.
    For every verdict, counts = article + hardening (+ deselected, for not-applicable)."""
    out: dict = {"article": {v: 0 for v in VERDICTS}, "hardening": {v: 0 for v in VERDICTS}, DESELECTED: 0}
    for r in records:
        if is_deselected(r):
            out[DESELECTED] += 1
        else:
            out["hardening" if r.property.startswith("H:") else "article"][r.verdict] += 1
    return out


def environment_exit(env: Environment, records: list[Record]) -> int:
    """The exit status of one environment, from its records alone (the rule of the plugin's tally)."""
    deciding = [r for r in records if r.deciding]
    if any(r.verdict == VIOLATED for r in deciding):
        return EXIT_VIOLATED
    if env.error or any(r.verdict == NOT_CHECKED for r in deciding):
        return EXIT_NOT_CHECKED
    return EXIT_OK


def worst(codes) -> int:
    """The fleet's exit status: 1 (out of compliance) over 6 (could not check) over 0; any other
    status (a run that broke off) counts as could not check."""
    codes = list(codes)
    if EXIT_VIOLATED in codes:
        return EXIT_VIOLATED
    if any(c != EXIT_OK for c in codes):
        return EXIT_NOT_CHECKED
    return EXIT_OK


@dataclass
class Run:
    id: str
    started_at: str
    ended_at: str
    tool_version: str
    target: str
    exit_status: int
    hardening: str = "advisory"
    stages: list[str] = field(default_factory=list)
    shards: list[dict] = field(default_factory=list)     # merged results: one entry per shard run

    def to_json(self) -> dict:
        return {"id": self.id, "started_at": self.started_at, "ended_at": self.ended_at,
                "tool_version": self.tool_version, "target": self.target, "exit_status": self.exit_status,
                "hardening": self.hardening, "stages": list(self.stages), "shards": list(self.shards)}

    @classmethod
    def from_json(cls, d: dict) -> Run:
        return cls(d["id"], d["started_at"], d["ended_at"], d.get("tool_version", "unknown"), d.get("target", "?"),
                   d["exit_status"], d.get("hardening", "advisory"), list(d.get("stages", [])), list(d.get("shards", [])))


@dataclass
class Results:
    run: Run
    environments: list[Environment]
    records: list[Record]
    history: dict = field(default_factory=dict)          # history.summarise()
    waivers: dict = field(default_factory=dict)          # waivers.report()
    exports: dict = field(default_factory=dict)          # asff / security_hub outcomes

    def by_environment(self) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {e.key: [] for e in self.environments}
        for r in self.records:
            out.setdefault(r.environment, []).append(r)
        return out

    def environment(self, key: str) -> Environment | None:
        return next((e for e in self.environments if e.key == key), None)

    def of(self, *verdicts: str) -> list[Record]:
        return [r for r in self.records if r.verdict in verdicts]

    def to_json(self) -> dict:
        grouped = self.by_environment()
        return {"schema": SCHEMA, "run": self.run.to_json(),
                "environments": [e.to_json(grouped.get(e.key, [])) for e in self.environments],
                "records": [r.to_json() for r in self.records],
                "history": self.history or {}, "waivers": self.waivers or {}, "exports": self.exports or {}}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"

    def write(self, path: Path) -> None:
        files.write_atomic(path, self.dumps())

    @classmethod
    def from_json(cls, d: dict, source: str = "results") -> Results:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ResultsError(f"{source}: not a {SCHEMA} file (schema: {found!r})")
        try:
            return cls(Run.from_json(d["run"]), [Environment.from_json(e) for e in d["environments"]],
                       [Record.from_json(r) for r in d["records"]], d.get("history") or {}, d.get("waivers") or {},
                       d.get("exports") or {})
        except (KeyError, TypeError, AttributeError) as exc:
            raise ResultsError(f"{source}: malformed {SCHEMA} file (missing or wrong {exc})") from None


def load(path: Path) -> Results:
    try:
        data = files.read_json(path)
    except files.FileError as exc:
        raise ResultsError(str(exc)) from None
    return Results.from_json(data, str(path))


def validate(data: dict) -> list[str]:
    """Every way data departs from results.schema.json (empty when it conforms)."""
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(data)]
