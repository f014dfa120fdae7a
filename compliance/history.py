"""What changed since the previous run: new findings, findings still failing since when, fixed ones.

A finding is a record that is violated, not checked, or waived (a waived violation is still one).
Each record of this run is compared with the baseline's record of the same environment and check:
- new: a finding now, none in the baseline (absent there, or another verdict);
- still failing: a finding in both; `since` (time and run id of the first run it failed in) is
  carried forward from the baseline, so the chain of runs keeps the first date;
- fixed: a finding in the baseline that holds now.
A check that was a finding and is now not applicable (deselected, say) is neither still failing
nor fixed: it was not looked at; it shows as a changed verdict. Environments the baseline has
and this run doesn't (another shard's) are left alone.

`--history DIR` keeps previous results files: the newest is the baseline, and the run adds its
own file and keeps the last N (README: "Machine-readable results").
"""
from __future__ import annotations

import re
from pathlib import Path

from common import files

from .results import HOLDS, Record, Results, ResultsError, load

NEW, STILL_FAILING, FIXED = "new", "still-failing", "fixed"
HISTORY_FILE = re.compile(r"results-\d{8}T\d{6}Z-[0-9a-z-]+\.json")


def compare(records: list[Record], baseline: Results | None, run_id: str) -> None:
    """Annotate each record's `history` against the baseline (None without one)."""
    if baseline is None:
        for r in records:
            r.history = None
        return
    before = {r.key: r for r in baseline.records}
    for r in records:
        prev = before.get(r.key)
        status, since = None, None
        if r.finding:
            if prev is not None and prev.finding:
                status = STILL_FAILING
                since = (prev.history or {}).get("since") or {"time": prev.time, "run_id": baseline.run.id}
            else:
                status, since = NEW, {"time": r.time, "run_id": run_id}
        elif r.verdict == HOLDS and prev is not None and prev.finding:
            status = FIXED
        r.history = {"status": status, "since": since, "previous": prev.verdict if prev else None}


def summarise(records: list[Record], baselines: list[dict]) -> dict:
    """The history section of results.json, from the records' own annotations (so a merge of
    shards gets the same summary as the run that was not split)."""
    per_env: dict[str, dict] = {}
    counts = {NEW: 0, STILL_FAILING: 0, FIXED: 0}
    for r in records:
        h = r.history
        if not h:
            continue
        env = per_env.setdefault(r.environment, {NEW: [], STILL_FAILING: [], FIXED: [], "changed": []})
        if h["status"] in counts:
            counts[h["status"]] += 1
            env[h["status"]].append(r.check_id)
        if h.get("previous") != r.verdict:
            env["changed"].append({"check_id": r.check_id, "from": h.get("previous"), "to": r.verdict})
    for env in per_env.values():
        for k in (NEW, STILL_FAILING, FIXED):
            env[k].sort()
        env["changed"].sort(key=lambda c: c["check_id"])
    return {"baselines": baselines, "counts": {"new": counts[NEW], "still_failing": counts[STILL_FAILING],
                                               "fixed": counts[FIXED]},
            "environments": {k: per_env[k] for k in sorted(per_env)}}


def baseline_ref(results: Results, source: str) -> dict:
    return {"run_id": results.run.id, "ended_at": results.run.ended_at, "file": source}


# -- the history folder ------------------------------------------------------------------------
def history_files(folder: Path) -> list[Path]:
    """This project's results files in the folder, oldest first (their names start with the run's
    start time in UTC); anything else there is not ours and is left alone."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if HISTORY_FILE.fullmatch(p.name))


def newest(folder: Path) -> tuple[Results | None, str | None, list[str]]:
    """(the newest readable results in the folder, its path, a line per file skipped)."""
    skipped: list[str] = []
    for path in reversed(history_files(folder)):
        try:
            return load(path), str(path), skipped
        except ResultsError as exc:
            skipped.append(f"skipped {exc}")
    return None, None, skipped


def keep(folder: Path, results: Results, last: int) -> tuple[Path, list[str]]:
    """Add this run's results to the folder and keep its `last` newest files (ours only)."""
    path = folder / f"results-{results.run.id}.json"      # the run id starts with its start time
    results.write(path)
    removed = []
    for old in history_files(folder)[:-last] if last > 0 else []:
        if files.remove_own(old):
            removed.append(old.name)
    return path, removed
