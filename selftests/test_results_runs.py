"""results.json, history, waivers, step summary and merge on real check-only runs of the aws target
against moto server (behind the realism layer) on 127.0.0.1: the suite run as a scheduled job runs
it, drifts applied and reverted between runs with `provision.py drift [--revert]`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from compliance import results as res
from selftests.moto_server import REPO, account_state, check_suite, provision, stderr_lines, up_args

# Each test builds its own environment in its own tmp state dir on the worker's moto server.
SPREAD_ACROSS_WORKERS = True
ICMP = "tests/test_4_db_server.py::test_db_allows_only_the_web_server[icmp]"
SSH = "tests/test_4_db_server.py::test_db_allows_only_the_web_server[ssh]"
MARIADB = "tests/test_4_db_server.py::test_db_allows_only_the_web_server[mariadb]"


def drift(aws, state: Path, env: str, name: str, revert: bool = False) -> None:
    proc = provision(aws, state, "drift", name, "--env", env, *(["--revert"] if revert else []))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def load(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert res.validate(data) == [], res.validate(data)[:5]
    return data


def record(data: dict, check_id: str) -> dict:
    return next(r for r in data["records"] if r["check_id"] == check_id)


def violated(data: dict) -> set[str]:
    return {r["check_id"] for r in data["records"] if r["verdict"] == "violated"}


def test_a_second_run_tells_new_still_failing_and_fixed(aws, tmp_path):
    state, hist, step = tmp_path / "state", tmp_path / "history", tmp_path / "step-summary.md"
    assert provision(aws, state, *up_args("hist")).returncode == 0
    drift(aws, state, "hist", "db-icmp-revoked")
    drift(aws, state, "hist", "db-3306-revoked")
    first = check_suite(aws, tmp_path, "--env", "hist", "--state-dir", str(state), f"--history={hist}",
                        f"--results={tmp_path / 'r1.json'}")
    assert first.returncode == 1, first.stdout[-3000:]
    r1 = load(tmp_path / "r1.json")
    assert {ICMP, MARIADB} <= violated(r1) and SSH not in violated(r1)
    assert r1["run"]["exit_status"] == 1 and r1["run"]["target"] == "aws"
    assert r1["environments"][0]["key"] == "hist@us-east-1" and r1["environments"][0]["account"] == "123456789012"
    assert r1["history"] == {"baselines": [], "counts": {"new": 0, "still_failing": 0, "fixed": 0}, "environments": {}}
    assert all(r["evidence_sha256"] for r in r1["records"] if r["verdict"] in ("holds", "violated"))
    assert [p.name for p in hist.iterdir()] == [f"results-{r1['run']['id']}.json"]

    # Fix one thing, break another.
    drift(aws, state, "hist", "db-icmp-revoked", revert=True)
    drift(aws, state, "hist", "db-ssh-revoked")
    second = check_suite(aws, tmp_path, "--env", "hist", "--state-dir", str(state), f"--history={hist}",
                         f"--results={tmp_path / 'r2.json'}", env=aws.env(GITHUB_STEP_SUMMARY=str(step)))
    assert second.returncode == 1, second.stdout[-3000:]
    r2 = load(tmp_path / "r2.json")
    assert record(r2, ICMP)["verdict"] == "holds" and record(r2, ICMP)["history"]["status"] == "fixed"
    assert record(r2, SSH)["history"]["status"] == "new"
    assert record(r2, MARIADB)["history"]["status"] == "still-failing"
    assert record(r2, MARIADB)["history"]["since"]["run_id"] == r1["run"]["id"]
    assert r2["history"]["baselines"][0]["run_id"] == r1["run"]["id"]
    changes = r2["history"]["environments"]["hist@us-east-1"]
    assert changes["fixed"] == [ICMP] and SSH in changes["new"] and MARIADB in changes["still-failing"]
    assert len(list(hist.iterdir())) == 2

    # The terminal: new first, then still failing (since run 1), then fixed.
    out = second.stdout
    block = out.split("two-tier history", 1)[1]
    assert block.index("new (") < block.index("still failing (") < block.index("fixed (")
    assert f"since {r1['run']['started_at'][:10]} (run {r1['run']['id']})" in block
    # The CI step summary: the verdict, then new findings first.
    md = step.read_text()
    assert md.startswith("## twotier compliance: out of compliance"), md[:300]
    assert md.index("### New") < md.index("### Still failing") < md.index("### Fixed")
    assert "| hist\\@us\\-east\\-1 |" in md
    assert provision(aws, state, "down", "--env", "hist").returncode == 0


def test_waivers_active_expired_and_unmatched(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("waive")).returncode == 0
    drift(aws, state, "waive", "db-icmp-revoked")
    drift(aws, state, "waive", "db-ssh-revoked")
    file = tmp_path / "waivers.yml"
    file.write_text(f"""waivers:
  - environment: waive
    check: "{ICMP}"
    reason: ICMP blocked on purpose while the monitoring moves (OPS-1)
    expires: 2999-12-31
  - environment: "*"
    check: "{SSH}"
    reason: the bastion migration
    expires: 2020-01-31
  - environment: "*"
    property: "9.9"
    reason: a property the article doesn't have
    expires: 2999-12-31
""")
    run = check_suite(aws, tmp_path, "--env", "waive", "--state-dir", str(state), f"--waivers={file}")
    out = run.stdout
    assert run.returncode == 1, out[-3000:]          # the expired waiver's violation counts again
    data = load(tmp_path / "results.json")
    icmp, ssh = record(data, ICMP), record(data, SSH)
    assert icmp["verdict"] == "waived" and icmp["waiver"]["state"] == "active" and "ICMP" in icmp["message"]
    assert ssh["verdict"] == "violated" and ssh["waiver"] == {"id": "W2", "state": "expired",
                                                              "reason": "the bastion migration", "expires": "2020-01-31"}
    assert [(e["id"], e["status"]) for e in data["waivers"]["entries"]] == [
        ("W1", "used"), ("W2", "used"), ("W3", "unmatched")]
    assert "1 waived" in out
    assert "waived (not counted): 4.2 test_db_allows_only_the_web_server[icmp]: ICMP blocked on purpose" in out
    assert "waiver expired, violated again: 4.2 test_db_allows_only_the_web_server[ssh]: W2 expired after 2020-01-31" in out
    assert "waiver W3 waived nothing" in out and "names no check of this run" in out
    # junit: the waived check is an xfail with its reason, not a failure.
    drift(aws, state, "waive", "db-ssh-revoked", revert=True)
    html = tmp_path / "report" / "report.html"
    html.parent.mkdir()
    quiet = check_suite(aws, tmp_path, "--env", "waive", "--state-dir", str(state), f"--waivers={file}", html=html)
    assert quiet.returncode == 0, quiet.stdout[-3000:]       # waived: shown, not counted
    junit = (html.parent / "junit.xml").read_text()
    assert 'message="waived: ICMP blocked on purpose while the monitoring moves (OPS-1) (W1, until 2999-12-31)' in junit
    page = html.read_text()
    assert 'id="tt-waivers"' in page and "names no check of this run" in page
    assert provision(aws, state, "down", "--env", "waive").returncode == 0


def test_a_bad_waivers_file_is_one_line_and_builds_nothing(aws, tmp_path):
    file = tmp_path / "waivers.yml"
    file.write_text("- environment: '*'\n  property: '4.2'\n  reason: r\n  expires: soon\n")
    before = account_state(aws)
    proc = check_suite(aws, tmp_path, "--env", "badw", "--state-dir", str(tmp_path / "state"), "--provision",
                       "--admin-cidr", "198.51.100.7/32", f"--waivers={file}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    said = [line for line in out.splitlines() if "bad --waivers" in line]
    assert said == [f"ERROR: bad --waivers {file}: waiver 1: expires 'soon' is not a date (YYYY-MM-DD)"], out[-2000:]
    assert "Traceback" not in out
    assert account_state(aws) == before, "a bad waivers file must stop the run before anything is built"


def test_a_bad_baseline_is_one_line(aws, tmp_path):
    file = tmp_path / "old.json"
    file.write_text('{"schema": "someone-else/2"}')
    proc = check_suite(aws, tmp_path, "--env", "badb", "--state-dir", str(tmp_path / "state"), f"--baseline={file}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4 and "Traceback" not in out, out[-2000:]
    assert f"ERROR: bad --baseline: {file}: not a twotier-results/1 file (schema: 'someone-else/2')" in out


def merge_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compliance", "merge", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_shards_merge_to_one_result_and_the_worst_exit_status(aws, tmp_path):
    for env in ("mga", "mgb"):
        assert provision(aws, tmp_path / env, *up_args(env)).returncode == 0
    drift(aws, tmp_path / "mgb", "mgb", "db-icmp-revoked")
    shards = []
    for env, expected in (("mga", 0), ("mgb", 1)):
        shard = tmp_path / f"shard-{env}" / "results.json"
        run = check_suite(aws, tmp_path, "--env", env, "--state-dir", str(tmp_path / env), f"--results={shard}")
        assert run.returncode == expected, run.stdout[-3000:]
        shards.append(shard)
    out = tmp_path / "merged"
    merged = merge_cli(str(out), *map(str, shards))
    assert merged.returncode == 1, merged.stdout + merged.stderr
    data = load(out / "results.json")
    a, b = (load(s) for s in shards)
    assert [e["key"] for e in data["environments"]] == ["mga@us-east-1", "mgb@us-east-1"]
    assert [e["exit_status"] for e in data["environments"]] == [0, 1]
    key = lambda r: (r["environment"], r["check_id"])  # noqa: E731
    assert sorted(data["records"], key=key) == sorted(a["records"] + b["records"], key=key)
    assert [s["run_id"] for s in data["run"]["shards"]] == [a["run"]["id"], b["run"]["id"]]
    assert "mgb@us-east-1: exit 1" in merged.stdout and "verdict: out of compliance" in merged.stdout
    page = (out / "summary.html").read_text()
    assert 'data-exit="1"' in page and "mga@us-east-1" in page and "<script" not in page

    # The merged result split by environment merges back to itself, in either order.
    parts = []
    for env in data["environments"]:
        part = dict(data, environments=[env], records=[r for r in data["records"] if r["environment"] == env["key"]])
        path = tmp_path / f"part-{env['key']}.json"
        path.write_text(json.dumps(part))
        parts.append(str(path))
    again = merge_cli(str(tmp_path / "again"), *reversed(parts))
    assert again.returncode == 1, again.stderr
    twice = load(tmp_path / "again" / "results.json")
    assert {k: v for k, v in twice.items() if k != "run"} == {k: v for k, v in data.items() if k != "run"}

    missing = merge_cli(str(tmp_path / "x"), str(shards[0]), str(tmp_path / "nope.json"))
    assert missing.returncode == 4 and stderr_lines(missing) == [f"error: {tmp_path / 'nope.json'}: no such file"]
    overlap = merge_cli(str(tmp_path / "y"), str(shards[0]), str(shards[0]))
    assert overlap.returncode == 4 and "shards must not overlap" in overlap.stderr
    for env in ("mga", "mgb"):
        assert provision(aws, tmp_path / env, "down", "--env", env).returncode == 0


def test_checks_deselected_on_xdist_workers_are_recorded_as_in_a_serial_run(aws, tmp_path):
    """-m/-k deselect on each worker, where the controller never sees them: the results, the report's
    counts and the terminal's must still say them, as a serial run does."""
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("xdsel")).returncode == 0
    runs = {}
    for name, extra in (("serial", ()), ("workers", ("-n", "2"))):
        out = tmp_path / name / "results.json"
        run = check_suite(aws, tmp_path, "--env", "xdsel", "--state-dir", str(state), f"--results={out}", *extra)
        assert run.returncode == 0, run.stdout[-3000:]
        runs[name] = (load(out), run.stdout)
    (serial, serial_out), (workers, workers_out) = runs["serial"], runs["workers"]
    deselected = {r["check_id"] for r in serial["records"] if "deselected" in (r.get("message") or "")}
    assert deselected, "the serial run deselected nothing with -m 'not host'"
    assert {r["check_id"] for r in workers["records"]} == {r["check_id"] for r in serial["records"]}
    apart = [[e["counts_apart"] for e in run["environments"]] for run in (serial, workers)]
    assert apart[0] == apart[1], apart
    line = next(x for x in serial_out.splitlines() if x.startswith("not applicable:"))
    assert line in workers_out, workers_out[-2000:]
