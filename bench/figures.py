"""The benchmark's figures, kept in bench/figures.json, and README's table made from them.

Every figure README's "Benchmarks" table shows comes from this file, which bench/benchmark.py
writes (each figure with the day it was measured); selftests/test_readme.py holds README's table to
`table()`. After a benchmark run: `.venv/bin/python bench/figures.py --update-readme`.
"""
from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

FILE = Path(__file__).resolve().parent / "figures.json"
README = FILE.parent.parent / "README.md"
BEGIN, END = "<!-- bench-figures: begin (bench/figures.py --update-readme) -->", "<!-- bench-figures: end -->"

# (key, what, how it is shown, target)
ROWS = (
    ("quick_start_main", "README's first command on a fresh clone (empty pip and lab caches; Debian packages "
     "already installed)", "{value:.0f} s", ""),
    ("quick_start_tests", "README's second command (`bash .ci/run`) right after it", "{value:.0f} s ({detail})",
     "<= 20 min"),
    ("cold_total", "fresh lab cache: image + mirror, then `pytest --provision`", "{value:.1f} s ({detail})",
     "<= 150 s"),
    ("warm_median", "warm `pytest --provision`", "{value:.1f} s ({detail})", "<= 25 s"),
    ("check_only_ratio", "check-only run vs its floor", "{value:.2f}x ({detail})", "<= 1.2x"),
    ("disk_memory", "the instances' disks in memory (tmpfs) once set up", "{detail}", "(cap 8 GB each)"),
    ("compliance_write_100", "writing a run's data for 100 environments (history, waivers, results.json, step "
     "summary, report section, ASFF; bench/compliance_write.py)", "{value:.2f} s ({detail})", "<= 2 s"),
    ("fleet_100", "a fleet of 100 environments in one check-only run (`pytest --fleet`, API checks, one moto "
     "server; bench/fleet.py)", "{value:.1f} s ({detail})", "<= 20 s, <= 15 API calls each, written in <= 2 s"),
)


def load() -> dict:
    try:
        return json.loads(FILE.read_text())
    except (OSError, ValueError):
        return {}


def record(key: str, value: float, detail: str = "") -> None:
    """One figure, measured today, into bench/figures.json (the others stay as they were)."""
    figures = load()
    figures[key] = {"value": round(value, 3), "detail": detail, "measured": time.strftime("%Y-%m-%d")}
    FILE.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


def table() -> str:
    figures = load()
    lines = ["| what | measured | on | target |", "|---|---|---|---|"]
    for key, what, shown, target in ROWS:
        f = figures.get(key)
        if f:
            lines.append(f"| {what} | {shown.format(**f)} | {f['measured']} | {target} |")
    return "\n".join(lines)


def readme_table(text: str) -> str | None:
    m = re.search(re.escape(BEGIN) + r"\n(.*?)" + re.escape(END), text, re.S)
    return m.group(1).strip() if m else None


def update_readme() -> None:
    text = README.read_text()
    if readme_table(text) is None:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} section")
    README.write_text(re.sub(re.escape(BEGIN) + r"\n.*?" + re.escape(END),
                             lambda _: f"{BEGIN}\n{table()}\n{END}", text, flags=re.S))


if __name__ == "__main__":
    if sys.argv[1:] == ["--update-readme"]:
        update_readme()
    print(table())
