#!/usr/bin/env python3
"""What a fleet costs: N environments on one moto server, checked in one run (check-only, API checks).

    .venv/bin/python bench/fleet.py [N ...]          (default: 1 10 100; N = 100 is recorded)
    .venv/bin/python bench/fleet.py --workers 2 100  (the same under pytest-xdist, -n 2)

It starts plain moto in server mode on 127.0.0.1 (its own process), builds N environments there
through the provisioner (no host setup, the article's last step done), writes a fleet file and runs
`pytest --target aws --fleet=FILE -m "not host"` once per N, as a user would. Printed, and for
N = 100 recorded in bench/figures.json (README's table):
- wall time of the run, its ratio to the 20 s target, and to N runs of one (N times the N = 1 run:
  what checking each environment in its own process costs);
- API calls per environment (reports/run-stats.json), target <= 15;
- writing the report, junit and results.json: from the end of the last check to the end of the
  session (bench/fleet_timing.py, a plugin of this benchmark), target <= 2 s;
- the run's peak memory (its own VmHWM, bench/fleet_timing.py) and the growth per environment
  between the smallest and the largest N.
Figures and ratios, never asserted.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import figures  # noqa: E402 - bench/figures.py, beside this file

WALL_TARGET = 20.0          # s for N = 100
API_CALLS_TARGET = 15       # per environment, as a run of one
WRITE_TARGET = 2.0          # s: report, junit and results.json for N = 100
ADMIN = "198.51.100.7/32"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"), stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"moto server did not start; see {log}")


def api_environment(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "GITHUB_STEP_SUMMARY"}
    env.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def account_of(i: int) -> str:
    return f"{100000000000 + i}"


def profile_in_account(account: str) -> tuple[str, str]:
    """An access key of IAM user `fleet` in `account` (moto files a key under the account whose IAM
    made it): reached through an assumed role once, as an administrator would set one up."""
    import boto3

    creds = boto3.client("sts").assume_role(RoleArn=f"arn:aws:iam::{account}:role/fleet-setup",
                                            RoleSessionName="fleet-setup")["Credentials"]
    iam = boto3.client("iam", aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    iam.create_user(UserName="fleet")
    key = iam.create_access_key(UserName="fleet")["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def build(name: str, profile: str, state: Path) -> None:
    """One environment as `provision.py up --target aws --no-host-setup` builds it, in this process,
    through the profile of its own account."""
    from awsenv.provisioning.provisioner import Provisioner
    from awsenv.targets import make_target

    target = make_target({"target": "aws", "env": name, "region": REGION, "admin_cidr": ADMIN, "profile": profile,
                          "state_dir": str(state / name)})
    target.open(progress=lambda _: None)
    provisioner = Provisioner(target, target.settings, progress=lambda _: None)
    provisioner.up()
    provisioner.finish()


def build_fleet(n: int, per_account: int, state: Path, credentials: Path) -> None:
    """N environments, `per_account` in each account (profiles fleet000, fleet001, ... in `credentials`,
    one per account). moto's Describe* calls filter every resource of the account in Python: with N
    environments in one account each call is about N times slower (0.03 s alone, 0.4 s beside 36
    others, measured), a cost of the emulator that EC2 doesn't have; spread over accounts, as a fleet
    by account is, each call costs what it costs alone."""
    accounts = (n + per_account - 1) // per_account
    keys = [profile_in_account(account_of(a)) for a in range(accounts)]
    credentials.write_text("".join(f"[fleet{a:03d}]\naws_access_key_id = {k}\naws_secret_access_key = {s}\n\n"
                                   for a, (k, s) in enumerate(keys)))
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for done in concurrent.futures.as_completed([pool.submit(build, name(i), profile(i, per_account), state)
                                                     for i in range(n)]):
            done.result()


def name(i: int) -> str:
    return f"fleet{i:03d}"


def profile(i: int, per_account: int) -> str:
    return f"fleet{i // per_account:03d}"


def fleet_file(path: Path, n: int, per_account: int, state: Path) -> None:
    lines = ["defaults:", f"  region: {REGION}", "environments:"]
    lines += [f"  - {{env: {name(i)}, profile: {profile(i, per_account)}, settings: {{state-dir: {state / name(i)}}}}}"
              for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


def run(n: int, per_account: int, workers: int, tmp: Path, env: dict, state: Path) -> dict:
    path = tmp / f"fleet-{n}.yml"
    fleet_file(path, n, per_account, state)
    timing = tmp / f"timing-{n}.json"
    out = tmp / f"out-{n}"
    out.mkdir(mode=0o700, exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(REPO / "pytest.ini"),
           "-p", "fleet_timing", "--target", "aws", f"--fleet={path}", "-m", "not host",
           f"--html={out / 'report.html'}", f"--junitxml={out / 'junit.xml'}", f"--results={out / 'results.json'}"]
    if workers:
        cmd += ["-n", str(workers)]
    child = dict(env, PYTHONPATH=str(REPO / "bench"), TWOTIER_BENCH_TIMING=str(timing))
    load = os.getloadavg()[0]       # others' work on the machine slows the run: said with its figures
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=child)
    output = proc.stdout.read().decode() if proc.stdout else ""
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1, 6):
        raise SystemExit(f"the fleet run of {n} ended with {code}:\n{output[-3000:]}")
    stats = json.loads((REPO / "reports" / "run-stats.json").read_text())
    calls = [e["api_calls"] for e in stats["environments"]]
    marks = json.loads(timing.read_text())
    results = json.loads((out / "results.json").read_text())
    return {"n": n, "wall": wall, "exit": code, "load": load, "api_calls_max": max(calls), "api_calls_mean": sum(calls) / len(calls),
            "write": marks["end"] - marks["checks_done"], "checks": marks["checks_done"] - marks["checks_start"],
            "start": marks["checks_start"] - marks["configured"], "peak_mb": marks["peak_kb"] / 1024,
            "configured_mb": marks["rss_configured_kb"] / 1024,
            "html_mb": (out / "report.html").stat().st_size / 1e6, "records": len(results["records"]),
            "exits": sorted({e["exit_status"] for e in results["environments"]})}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[1, 10, 100])
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers (-n); 0: one process")
    parser.add_argument("--per-account", type=int, default=10, help="environments per account [default: 10]")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes))
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        server, url = start_moto(tmp / "moto.log")
        try:
            env = api_environment(url)
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            state = tmp / "state"
            state.mkdir(mode=0o700)
            t0 = time.monotonic()
            build_fleet(max(sizes), args.per_account, state, tmp / "credentials")
            env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp / "credentials")
            print(f"built {max(sizes)} environments on {url} in {time.monotonic() - t0:.1f} s")
            rows = [run(n, args.per_account, args.workers, tmp, env, state) for n in sizes]
        finally:
            server.terminate()
            server.wait(timeout=10)
    report(rows, args.workers)


def report(rows: list[dict], workers: int) -> None:
    how = f"-n {workers}" if workers else "one process"
    print(f"fleet check-only runs ({how}; API checks, -m 'not host'):")
    for r in rows:
        print(f"  N = {r['n']:>3}: {r['wall']:5.1f} s wall (start {r['start']:.1f} s, checks {r['checks']:.1f} s, "
              f"report + junit + results.json {r['write']:.2f} s); API calls per environment {r['api_calls_mean']:.1f} "
              f"(max {r['api_calls_max']}); peak memory {r['peak_mb']:.0f} MB; report {r['html_mb']:.1f} MB; "
              f"{r['records']} records; exit {r['exit']}; load average {r['load']:.1f} before it")
    one = next((r for r in rows if r["n"] == 1), None)
    big = rows[-1]
    if len(rows) > 1:
        small = rows[0]
        growth = (big["peak_mb"] - small["peak_mb"]) / (big["n"] - small["n"])
        print(f"  memory growth per environment: {growth * 1024:.0f} KB (N = {small['n']} to {big['n']})")
    else:
        growth = None
    n = big["n"]
    print(f"  N = {n}: wall {big['wall']:.1f} s vs target {WALL_TARGET:.0f} s: {big['wall'] / WALL_TARGET:.2f}x of it")
    if one:
        print(f"  vs {n} runs of one ({n} x {one['wall']:.2f} s = {n * one['wall']:.0f} s): "
              f"{n * one['wall'] / big['wall']:.1f}x faster")
    print(f"  API calls per environment {big['api_calls_max']} vs target {API_CALLS_TARGET}: "
          f"{big['api_calls_max'] / API_CALLS_TARGET:.2f}x of it")
    print(f"  writing the report and results {big['write']:.2f} s vs target {WRITE_TARGET:.0f} s: "
          f"{big['write'] / WRITE_TARGET:.2f}x of it")
    if big["exit"] != 0:
        # Every environment of the benchmark holds: anything else is a fault of the run, not a figure.
        print(f"  not recorded: the run of {n} exited {big['exit']} (environments' exits {big['exits']}); "
              "reports/run-stats.json says why")
    elif n == 100 and not workers:
        detail = (f"{big['api_calls_max']} API calls per environment; report, junit and results.json written in "
                  f"{big['write']:.2f} s; peak memory {big['peak_mb']:.0f} MB"
                  + (f", {growth * 1024:.0f} KB more per environment" if growth is not None else "")
                  + (f"; {n} runs of one: {n * one['wall']:.0f} s" if one else "")
                  + f"; load average {big['load']:.1f} before the run (2 cores)")
        figures.record("fleet_100", big["wall"], detail)


if __name__ == "__main__":
    main(sys.argv[1:])
