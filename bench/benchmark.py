#!/usr/bin/env python3
"""Benchmarks of the local target, printed as figures and ratios to their targets (never asserted in tests).

    .venv/bin/python bench/benchmark.py                # warm end-to-end by stage (median of 3), check-only vs floor
    .venv/bin/python bench/benchmark.py --cold         # first the fresh-machine path: image + mirror, then a cold
                                                       # end-to-end run (each with an empty lab cache), ~1.5 min more
    .venv/bin/python bench/benchmark.py --cold-image   # only the cold image + mirror build
    .venv/bin/python bench/benchmark.py --quick-start  # README's two commands in a fresh clone (~10 min)

Its environments are named PREFIX-cold, PREFIX-warm and PREFIX-keep (`--env-prefix`, default
`bench`), so they never meet a user's own. The figures go to bench/figures.json (bench/figures.py
makes README's table from it).

Targets (2 cores): cold `pytest --provision` (fresh machine: no image, no mirror) <= 150 s,
warm `pytest --provision` <= 25 s, a check-only run <= 1.2 x its floor (the same API reads and host
commands and probes done bare by bench/floor.py), <= 15 API calls, one SSH login per host.

"Cold" moves the lab's caches aside: TWOTIER_LAB_CACHE points at an empty temporary folder, so the
base image and the package mirror are built from scratch (the packages are downloaded again) and
the default cache (/var/cache/twotier-lab) is neither used nor touched.

Only the command-line interfaces are used (pytest, provision.py, OpenSSH with provision.py's
ssh_config), except in bench/floor.py, which needs the project's own API reads and SSH connections.
"""
from __future__ import annotations

import argparse
import json
import os
import re
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

import figures  # noqa: E402 - bench/figures.py, beside this file

COLD_TARGET = 150.0         # s, fresh machine to the first report
WARM_TARGET = 25.0          # s, image and mirror cached
IMAGE_TARGET = COLD_TARGET - WARM_TARGET   # s, what the cold path may add: the image and the mirror
CHECK_ONLY_FLOOR_RATIO = 1.2
API_CALLS_TARGET = 15
# Stages that only a cold run has (they take ~0 s warm): their sum is held to IMAGE_TARGET.
IMAGE_STAGES = ("base image", "package mirror", "base image and package mirror")
PREFIX = "bench"     # --env-prefix


def pytest_run(tmp: Path, *args: str, env: dict | None = None) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"),
           f"--html={tmp / 'report.html'}", f"--junitxml={tmp / 'junit.xml'}", *args]
    started = time.time()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    fresh = STATS.is_file() and STATS.stat().st_mtime >= started
    # A verdict (1: violated, 6: not checked) still timed the whole run; anything else did not.
    if proc.returncode not in (0, 1, 6) or not fresh:
        print(proc.stdout[-3000:], proc.stderr[-2000:])
        raise SystemExit(f"pytest {' '.join(args)} exited {proc.returncode}")
    if proc.returncode != 0:
        verdict = [ln for ln in proc.stdout.splitlines() if ln.startswith("verdict:")]
        print(f"  (pytest {' '.join(args[:3])} exited {proc.returncode}: {verdict[-1] if verdict else 'see its report'};"
              f" its times still count)")
    return wall, json.loads(STATS.read_text())


def provision(*args: str, env: dict | None = None) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "provision.py"), *args], cwd=REPO, capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"provision.py {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def ratio(value: float, target: float) -> str:
    return f"ratio {value / target:.2f}" + ("" if value <= target else "  <-- over target")


def stage_table(title: str, wall: float, stats: dict, target: float) -> None:
    print(f"\n{title}: {wall:.1f} s wall (target <= {target:.0f} s, {ratio(wall, target)})")
    print("  stages (they nest: the teardown runs as the last check):")
    stages = stats.get("stages_seconds", {})
    image = sum(secs for name, secs in stages.items() if name in IMAGE_STAGES)
    for name, secs in stages.items():
        print(f"  {name:<46} {secs:7.2f} s   {100 * secs / target:5.1f} % of the {target:.0f} s target")
    if image > 1:
        print(f"  {'image + mirror (the cold-only stages)':<46} {image:7.2f} s   "
              f"(target <= {IMAGE_TARGET:.0f} s = cold - warm, {ratio(image, IMAGE_TARGET)})")


def empty_cache(tmp: Path, name: str) -> tuple[Path, dict]:
    """An empty lab cache folder, and the environment that points the lab at it."""
    cache = tmp / name
    cache.mkdir()
    return cache, dict(os.environ, TWOTIER_LAB_CACHE=str(cache))


def drop_cache(cache: Path) -> None:
    """Remove a cache this benchmark made, unless a lab still runs on it (then say so and keep it)."""
    from lab.names import cache_in_use

    for d in cache.iterdir() if cache.is_dir() else ():
        if cache_in_use(d):
            print(f"  (keeping {cache}: a running lab still uses {d.name}; remove it after `provision.py down`)")
            return
    shutil.rmtree(cache, ignore_errors=True)


IMAGE_SCRIPT = """
import sys, time
from lab import image
t0 = time.monotonic()
def say(line):
    print(f"{time.monotonic() - t0:7.1f}s {line}", flush=True)
base, repo = image.ensure_image_and_mirror(say)
print(f"TOTAL {time.monotonic() - t0:.2f}", flush=True)
"""


def cold_image(tmp: Path, run: int) -> float:
    """The fresh-machine build of the base image and the package mirror (both at once), in an empty cache."""
    cache, env = empty_cache(tmp, f"cold-image-{run}")
    try:
        proc = subprocess.run([sys.executable, "-c", IMAGE_SCRIPT], cwd=REPO, capture_output=True, text=True,
                              env=dict(env, PYTHONPATH=str(REPO)), timeout=1800)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-2000:])
            raise SystemExit("building the image and the mirror failed")
        lines = proc.stdout.splitlines()
        total = float(lines[-1].split()[1])
        marks = {"package lists": "apt: package lists fetched", "image": "lab: base image ready",
                 "mirror": "lab: package mirror ready"}
        print(f"\ncold image + mirror (lab.image.ensure_image_and_mirror, empty cache), run {run}: {total:.1f} s "
              f"(target <= {IMAGE_TARGET:.0f} s = cold - warm, {ratio(total, IMAGE_TARGET)})")
        for what, needle in marks.items():
            at = next((ln.split("s ", 1)[0].strip() for ln in lines if needle in ln), None)
            if at is not None:
                print(f"  {what + ' ready at':<46} {float(at):7.1f} s")
        return total
    finally:
        drop_cache(cache)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cold", action="store_true",
                    help="also measure the fresh-machine path (image + mirror, then end to end, each with an empty cache)")
    ap.add_argument("--cold-image", action="store_true", help="only the cold image + mirror build")
    ap.add_argument("--image-runs", type=int, default=1, help="cold image + mirror builds to run (figures of each)")
    ap.add_argument("--warm-runs", type=int, default=3, help="warm end-to-end runs to take the median of")
    ap.add_argument("--repeat", type=int, default=3, help="check-only runs to take the median of")
    ap.add_argument("--check-only", action="store_true", help="only the check-only measurements")
    ap.add_argument("--quick-start", action="store_true",
                    help="only README's two quick-start commands, timed in a fresh clone with empty caches")
    ap.add_argument("--env-prefix", default="bench", metavar="PREFIX",
                    help="name the benchmark's environments PREFIX-cold, PREFIX-warm, PREFIX-keep [bench]")
    args = ap.parse_args()
    global PREFIX
    PREFIX = args.env_prefix
    from awsenv.errors import EnvError
    from awsenv.settings import check_env_name

    try:
        check_env_name(f"{PREFIX}-cold")
    except EnvError as exc:
        ap.error(f"--env-prefix: {exc}")
    if args.quick_start:
        return quick_start()
    tmp = Path(tempfile.mkdtemp(prefix="twotier-bench-"))
    try:
        if args.cold or args.cold_image:
            totals = [cold_image(tmp, run) for run in range(1, args.image_runs + 1)]
            if len(totals) > 1:
                print(f"  median of {len(totals)}: {statistics.median(totals):.1f} s")
            if args.cold_image:
                return 0
            cache, env = empty_cache(tmp, "cold-cache")
            try:
                wall, stats = pytest_run(tmp, "--provision", "--env", f"{PREFIX}-cold", f"--state-dir={tmp / 'cold'}",
                                         env=env)
                stage_table("cold pytest --provision (empty lab cache)", wall, stats, COLD_TARGET)
                image = sum(s for n, s in stats.get("stages_seconds", {}).items() if n in IMAGE_STAGES)
                figures.record("cold_total", wall, f"image + mirror {image:.1f} s")
            finally:
                drop_cache(cache)
        if not args.check_only:
            # The installs inside the hosts vary by a few seconds from run to run (two package
            # installs on two cores): the median of a few runs, each run's wall time shown.
            runs = [pytest_run(tmp, "--provision", "--env", f"{PREFIX}-warm", f"--state-dir={tmp / f'warm-{i}'}")
                    for i in range(args.warm_runs)]
            runs.sort(key=lambda r: r[0])
            wall, stats = runs[len(runs) // 2]
            stage_table(f"warm pytest --provision, median of {len(runs)} runs "
                        f"({', '.join(f'{w:.1f}' for w, _ in runs)} s)", wall, stats, WARM_TARGET)
            installs = stats.get("stages_seconds", {}).get("install Apache and MariaDB", 0.0)
            figures.record("warm_median", wall, f"median of {len(runs)}: {', '.join(f'{w:.1f}' for w, _ in runs)} s; "
                                                f"Apache's and MariaDB's installs {installs:.1f} s of it")

        kept = tmp / "kept"
        provision("up", "--env", f"{PREFIX}-keep", f"--state-dir={kept}")
        try:
            disk_memory(kept)
            check_only(tmp, kept, args.repeat)
        finally:
            provision("down", "--env", f"{PREFIX}-keep", f"--state-dir={kept}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def quick_start() -> int:
    """README's two quick-start commands as a new user runs them: a fresh clone of HEAD, empty pip and
    lab caches (everything downloaded and built again); the Debian packages are what this machine has."""
    tmp = Path(tempfile.mkdtemp(prefix="twotier-quick-start-"))
    try:
        clone = tmp / "twotier"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        cache = tmp / "lab-cache"
        cache.mkdir()
        env = dict(os.environ, TWOTIER_LAB_CACHE=str(cache), PIP_CACHE_DIR=str(tmp / "pip-cache"),
                   AWS_EC2_METADATA_DISABLED="true")
        times = {}
        for key, command in (("quick_start_main", "bash .ci/setup && .venv/bin/pytest --provision"),
                             ("quick_start_tests", "bash .ci/run")):
            print(f"\n{command}  (in {clone})", flush=True)
            t0 = time.monotonic()
            proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True)
            times[key] = time.monotonic() - t0
            tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:] or [""]
            print(f"  exit {proc.returncode} in {times[key]:.1f} s: {tail[0]}")
            if proc.returncode != 0:
                print(proc.stdout[-3000:], proc.stderr[-2000:])
                raise SystemExit(f"{command} failed")
        figures.record("quick_start_main", times["quick_start_main"])
        passed = re.search(r"(\d+) passed", proc.stdout)
        figures.record("quick_start_tests", times["quick_start_tests"],
                       f"{times['quick_start_tests'] / 60:.1f} min, {passed.group(1) if passed else '?'} tests")
    finally:
        drop_cache(tmp / "lab-cache")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def counting_config(ssh_config: Path, tmp: Path) -> Path:
    """provision.py's ssh_config with a master connection of our own (its own ControlPath): the
    counts below log in once per host, and the suite can never borrow our connection."""
    out = []
    for line in ssh_config.read_text().splitlines():
        if line.strip().startswith(("ControlMaster", "ControlPath", "ControlPersist")):
            continue
        out.append(line)
        if line.startswith("Host "):
            out += ["  ControlMaster auto", f'  ControlPath "{tmp}/count-%r@%h:%p"', "  ControlPersist 600"]
    path = tmp / "ssh_config.count"
    path.write_text("\n".join(out) + "\n")
    return path


def ssh(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", *args], capture_output=True, text=True,
                          timeout=60)


def login_counts(config: Path) -> dict[str, int]:
    """SSH logins as the hosts' sshd logged them."""
    out = {}
    for role in ("web", "db"):
        r = ssh(config, role, "sudo journalctl -u ssh --no-pager -o cat | grep -c '^Accepted publickey'")
        if r.returncode not in (0, 1):
            raise SystemExit(f"counting SSH logins on {role} failed: {r.stderr.strip()[-300:]}")
        out[role] = int(r.stdout.strip() or 0)
    return out


def disk_memory(kept: Path) -> None:
    """What the instances' disks (their own tmpfs each) hold in memory once both hosts are set up."""
    from lab.instances import DISK_GIB

    print("\ninstance disks of a kept environment (tmpfs, memory taken only for what is written):")
    seen = []
    for disk in sorted((kept / "instances").glob("i-*/disk")):
        st = os.statvfs(disk)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        print(f"  {disk.parent.name:<22} {used / 2**20:7.0f} MB  (cap {DISK_GIB} GiB, {ratio(used, DISK_GIB * 2**30)})")
        seen.append(used / 2**20)
    if len(seen) == 2:
        # The web server installs less than the DB (Apache vs MariaDB): the smaller disk is the web server's.
        web, db = sorted(seen)
        figures.record("disk_memory", db, f"web {web:.0f} MB, DB {db:.0f} MB")


def check_only(tmp: Path, kept: Path, repeat: int) -> None:
    provision("ssh-config", "--env", f"{PREFIX}-keep", f"--state-dir={kept}")
    config = counting_config(kept / "ssh_config", tmp)
    try:
        # The first reading opens our master connections; a reading adds nothing after that (checked).
        login_counts(config)
        c0 = login_counts(config)
        c1 = login_counts(config)
        per_reading = {role: c1[role] - c0[role] for role in c1}
        walls, stats = [], {}
        for _ in range(repeat):
            wall, stats = pytest_run(tmp, "--env", f"{PREFIX}-keep", f"--state-dir={kept}")
            walls.append(wall)
        c2 = login_counts(config)
    finally:
        for role in ("db", "web"):
            ssh(config, "-O", "exit", role)
    per_run = {role: (c2[role] - c1[role] - per_reading[role]) / repeat for role in c2}

    floors = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, str(REPO / "bench" / "floor.py"), f"{PREFIX}-keep", str(kept), str(STATS)],
                             cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
        if out.returncode != 0:
            raise SystemExit(f"floor failed: {out.stderr[-800:]}")
        floors.append(float(out.stdout.split()[0]))
    wall, floor = statistics.median(walls), statistics.median(floors)
    target = CHECK_ONLY_FLOOR_RATIO * floor
    print(f"\ncheck-only run against a kept environment (median of {repeat}):")
    print(f"  wall time                      {wall:6.2f} s  (target <= {CHECK_ONLY_FLOOR_RATIO} x floor = "
          f"{target:.2f} s, {ratio(wall, target)})")
    print(f"  floor (same API reads, host commands and probes, bare): {floor:.2f} s")
    print(f"  check-only / floor             {wall / floor:6.2f}    (target <= {CHECK_ONLY_FLOOR_RATIO})")
    print(f"  API calls                      {stats['api_calls']:6d}    (target <= {API_CALLS_TARGET}, "
          f"{ratio(stats['api_calls'], API_CALLS_TARGET)})")
    print(f"  SSH logins seen by the hosts   web {per_run['web']:.0f}, db {per_run['db']:.0f} per run (target 1 each)")
    print(f"  host commands                  {len(stats['host_commands']):6d}")
    figures.record("check_only_ratio", wall / floor,
                   f"{wall:.1f} s vs {floor:.1f} s; {stats['api_calls']} API calls; SSH logins per run: "
                   f"web {per_run['web']:.0f}, db {per_run['db']:.0f}")


if __name__ == "__main__":
    sys.exit(main())
