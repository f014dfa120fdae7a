"""Shards of a fleet (each its own run and results.json) merged into one result.

The merged file has every shard's environments and records, its history and waiver sections
recomputed from the records (so a waiver one shard didn't use but another did counts as used),
and one exit status: the worst of the shards' (1 > 6 > 0). Merging shards of one run gives back
that run's environments, records, history and waivers; the run block says which shards it holds.
A record (environment x check) found in two shards is refused: shards must not overlap.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

from . import history, waivers
from .results import Environment, Record, Results, ResultsError, Run, load, worst


class MergeError(Exception):
    """Shards that can't be merged into one result; one line."""


def _environment(into: Environment, other: Environment) -> None:
    for name in ("region", "vpc_id", "account", "error"):
        if getattr(into, name) is None:
            setattr(into, name, getattr(other, name))


def merge(shards: list[Results], sources: list[str] | None = None) -> Results:
    if not shards:
        raise MergeError("nothing to merge: give at least one results.json")
    sources = sources or [s.run.id for s in shards]
    envs: dict[str, Environment] = {}
    records: dict[tuple[str, str], tuple[Record, str]] = {}
    definitions: dict[str, dict] = {}
    for shard, source in zip(shards, sources, strict=True):
        for env in shard.environments:
            if env.key in envs:
                _environment(envs[env.key], env)
            else:
                envs[env.key] = Environment(env.key, env.name, env.region, env.vpc_id, env.account, env.error)
        for r in shard.records:
            if r.key in records:
                raise MergeError(f"{source}: environment {r.environment} check {r.check_id} is also in "
                                 f"{records[r.key][1]}: shards must not overlap")
            records[r.key] = (r, source)
        for w in shard.waivers.get("entries", []):
            definition = {k: w.get(k) for k in ("id", "environment", "property", "check", "reason", "expires")}
            if w["id"] in definitions and definitions[w["id"]] != definition:
                raise MergeError(f"{source}: waiver {w['id']} differs from another shard's: the shards used "
                                 "different waiver files")
            definitions[w["id"]] = definition
    merged_records = [r for r, _ in sorted(records.values(), key=lambda x: x[0].key)]
    runs = [s.run for s in shards]
    ids = sorted({r.id for r in runs})
    started = min(r.started_at for r in runs)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:6]
    run = Run(id=f"{started[:19].replace('-', '').replace(':', '')}Z-merged-{digest}", started_at=started,
              ended_at=max(r.ended_at for r in runs),
              tool_version=", ".join(sorted({r.tool_version for r in runs})),
              target=", ".join(sorted({r.target for r in runs})),
              exit_status=worst(r.exit_status for r in runs),
              hardening=", ".join(sorted({r.hardening for r in runs})),
              stages=sorted({s for r in runs for s in r.stages}),
              shards=[{"run_id": r.id, "file": src, "exit_status": r.exit_status, "started_at": r.started_at,
                       "ended_at": r.ended_at} for r, src in zip(runs, sources, strict=True)])
    baselines = {b["run_id"]: b for s in shards for b in s.history.get("baselines", [])}
    merged = Results(run, [envs[k] for k in sorted(envs)], merged_records,
                     history.summarise(merged_records, [baselines[k] for k in sorted(baselines)]))
    if definitions:
        checked_on = max(s.waivers.get("checked_on", "") for s in shards if s.waivers)
        files_ = sorted({str(s.waivers.get("file")) for s in shards if s.waivers.get("file")})
        parsed = [waivers.Waiver.from_json(definitions[k]) for k in sorted(definitions, key=lambda i: int(i[1:]))]
        merged.waivers = waivers.report(parsed, merged_records, {e.key: e.name for e in merged.environments},
                                        dt.date.fromisoformat(checked_on), ", ".join(files_) or None)
    exports: dict = {}
    for s in shards:
        for name, value in s.exports.items():
            exports.setdefault(name, []).extend(value)
    merged.exports = exports
    return merged


def merge_files(paths: list[Path]) -> Results:
    loaded = []
    for p in paths:
        try:
            loaded.append(load(p))
        except ResultsError as exc:
            raise MergeError(str(exc)) from None
    return merge(loaded, [str(p) for p in paths])
