#!/usr/bin/env python3
"""Benchmarks of the local target, printed as figures and ratios (never asserted in tests).

    python bench/benchmark.py            # warm end-to-end by stage, check-only vs floor
    python bench/benchmark.py --cold     # also a cold run (fresh image and mirror cache, ~2.5 min more)

Targets (2 cores): warm `pytest --provision` <= 90 s, cold <= 5 min, check-only <= 5 s;
check-only: <= 15 API calls, one SSH connection per host, time <= 1.5 x the floor.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATS = REPO / "reports" / "run-stats.json"
sys.path.insert(0, str(REPO))


def pytest_run(tmp: Path, *args: str, env: dict | None = None) -> tuple[float, dict, int]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"),
           f"--html={tmp / 'report.html'}", f"--junitxml={tmp / 'junit.xml'}", *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        raise SystemExit(f"pytest {' '.join(args)} exited {proc.returncode}")
    return wall, json.loads(STATS.read_text()), proc.returncode


def provision(*args: str) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "provision.py"), *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"provision.py {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")


def stage_table(title: str, wall: float, stats: dict, target: float) -> None:
    print(f"\n{title}: {wall:.1f} s wall (target <= {target:.0f} s, ratio {wall / target:.2f})")
    for name, secs in stats["stages_seconds"].items():
        print(f"  {name:<34} {secs:7.2f} s")


def accepted_logins(conns) -> dict[str, int]:
    """SSH logins as the hosts saw them (sshd's journal), through a connection opened beforehand."""
    out = {}
    for role in ("web", "db"):
        r = conns.run(role, "sudo journalctl -u ssh --no-pager -o cat | grep -c '^Accepted publickey'")
        out[role] = int(r.stdout.strip() or 0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cold", action="store_true", help="also measure a cold run (fresh image and mirror cache)")
    ap.add_argument("--repeat", type=int, default=3, help="check-only runs to take the median of")
    ap.add_argument("--check-only", action="store_true", help="only the check-only measurements")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="twotier-bench-"))
    try:
        if args.cold:
            cache = tmp / "cold-cache"
            env = dict(os.environ, TWOTIER_LAB_CACHE=str(cache))
            wall, stats, _ = pytest_run(tmp, "--provision", "--env", "bench-cold", f"--state-dir={tmp / 'cold'}", env=env)
            stage_table("cold pytest --provision", wall, stats, 300)
        if not args.check_only:
            wall, stats, _ = pytest_run(tmp, "--provision", "--env", "bench-warm", f"--state-dir={tmp / 'warm'}")
            stage_table("warm pytest --provision", wall, stats, 90)

        kept = tmp / "kept"
        provision("up", "--env", "bench-keep", f"--state-dir={kept}")
        try:
            check_only(tmp, kept, args.repeat)
        finally:
            provision("down", "--env", "bench-keep", f"--state-dir={kept}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def check_only(tmp: Path, kept: Path, repeat: int) -> None:
    from awsenv.session import Run
    from awsenv.settings import Settings

    run = Run.create(Settings.build({"target": "local", "env": "bench-keep", "state_dir": str(kept)}),
                     provision=False, keep=True, selectors=None)
    assert run.target.attach()
    conns = run.connections()
    walls, stats = [], {}
    before = accepted_logins(conns)
    for _ in range(repeat):
        wall, stats, _ = pytest_run(tmp, "--env", "bench-keep", f"--state-dir={kept}")
        walls.append(wall)
    after = accepted_logins(conns)
    conns.close()
    per_run = {role: (after[role] - before[role]) / repeat for role in after}

    floors = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, str(REPO / "bench" / "floor.py"), "bench-keep", str(kept), str(STATS)],
                             cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        if out.returncode != 0:
            raise SystemExit(f"floor failed: {out.stderr[-800:]}")
        floors.append(float(out.stdout.split()[0]))
    wall, floor = statistics.median(walls), statistics.median(floors)
    print(f"\ncheck-only run against a kept environment (median of {repeat}):")
    print(f"  wall time                      {wall:6.2f} s  (target <= 5 s, ratio {wall / 5:.2f})")
    print(f"  API calls                      {stats['api_calls']:6d}    (target <= 15, ratio {stats['api_calls'] / 15:.2f})")
    print(f"  SSH logins seen by the hosts   web {per_run['web']:.0f}, db {per_run['db']:.0f} per run (target 1 each)")
    print(f"  host commands                  {len(stats['host_commands']):6d}")
    print(f"  floor (same API reads and host commands, bare): {floor:.2f} s")
    print(f"  check-only / floor             {wall / floor:6.2f}    (target <= 1.5)")


if __name__ == "__main__":
    sys.exit(main())
