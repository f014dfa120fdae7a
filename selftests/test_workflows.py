"""The GitHub Actions workflows the project ships are safe to copy into an account's CI as they are.

Every workflow under examples/ (and .github/workflows/, once there is one), found by glob so that a
new one is held to the same rule: zizmor, offline, finds nothing (`.ci/workflows`, as CI runs it);
every action is pinned to a full commit SHA with its release in a comment, the same pin everywhere;
checkout keeps no token; the workflow grants nothing (`permissions: {}`) and each job says what it
needs; `id-token: write` (which lets a job assume the AWS role) only in a job that assumes it.
Each check is shown failing on the workflow as shipped before these rules, kept below.

And Dependabot's pip pull requests (examples/dependabot.yml) bump requirements.in only: the lock
must pin what requirements.in pins, so such a pull request fails here until `bash .ci/lock` ran.
No AWS and no moto: these read files and run zizmor.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from selftests.moto_server import REPO

# Tests spread over the workers (selftests/conftest.py): they only read files and run zizmor.
SPREAD_ACROSS_WORKERS = True

ZIZMOR = Path(sys.executable).parent / "zizmor"
AWS_CREDENTIALS_ACTION = "aws-actions/configure-aws-credentials"

# examples/scheduled-compliance.yml as shipped before these rules (its long header comment left out).
BEFORE = """\
name: scheduled-compliance
on:
  schedule:
    - cron: "17 */6 * * *"
  workflow_dispatch: {}
permissions:
  id-token: write     # OIDC token for configure-aws-credentials
  contents: read
jobs:
  check:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
          cache: pip
      - run: pip install -r requirements.txt
      - name: Short-lived AWS credentials (OIDC)
        uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ vars.COMPLIANCE_ROLE_ARN }}
          aws-region: eu-west-1
      - run: python -m pytest --target aws --env twotier -m "not disruptive and not host"
      - name: Upload the report
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: compliance-report-${{ github.run_id }}
          path: reports/
"""


def shipped_workflows(root: Path = REPO) -> list[Path]:
    """The same files `.ci/workflows` gives zizmor, less the Dependabot configs."""
    found = [*root.glob("examples/**/*.yml"), *root.glob("examples/**/*.yaml"),
             *root.glob(".github/workflows/*.yml"), *root.glob(".github/workflows/*.yaml")]
    return sorted(p for p in found if p.stem != "dependabot" and not is_fleet_file(p))


def is_fleet_file(path: Path) -> bool:
    """A fleet file (pytest --fleet) shipped as an example: no workflow (.ci/workflows leaves it out too)."""
    return path.name.endswith((".fleet.yml", ".fleet.yaml"))


# --- the checks: each takes a workflow's text and returns what is wrong with it ------------------

# A `uses:` line, live or in a commented-out job (someone will uncomment it as it is).
USES_LINE = re.compile(r"^[\s#]*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
PINNED = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+(?:/[^@\s]+)?)@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+#\s*v\d+(\.\d+)*\b")


def uses_lines(text: str) -> list[tuple[int, str, str]]:
    return [(n, m["ref"], m["rest"]) for n, line in enumerate(text.splitlines(), 1)
            if (m := USES_LINE.match(line))]


def unpinned_actions(text: str) -> list[str]:
    problems = []
    for n, ref, rest in uses_lines(text):
        if ref.startswith("./"):
            continue    # an action of the same repository, at the same commit: nothing to pin
        if not PINNED.match(ref) or not VERSION_COMMENT.match(rest):
            problems.append(f"line {n}: expected owner/repo@<40-hex commit SHA> # vX.Y.Z, found {ref}{rest}")
    return problems


def differing_pins(text: str) -> list[str]:
    """One pin per action, so that updating the live job's pin can't leave a stale one behind."""
    pins: dict[str, set[str]] = {}
    for _, ref, _ in uses_lines(text):
        if m := PINNED.match(ref):
            pins.setdefault(m["action"], set()).add(ref)
    return [f"{action} is pinned {len(refs)} ways: {sorted(refs)}" for action, refs in pins.items() if len(refs) > 1]


def jobs(workflow: dict) -> dict[str, dict]:
    return workflow.get("jobs") or {}


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps") or [] if str(s.get("uses", "")).startswith(action + "@")]


def checkouts_keeping_the_token(text: str) -> list[str]:
    workflow = yaml.safe_load(text)
    return [f"job {name}: actions/checkout without persist-credentials: false"
            for name, job in jobs(workflow).items() for step in steps_using(job, "actions/checkout")
            if str((step.get("with") or {}).get("persist-credentials")).lower() != "false"]


def permissions_not_per_job(text: str) -> list[str]:
    workflow = yaml.safe_load(text)
    problems = []
    if workflow.get("permissions") != {}:
        problems.append(f"expected `permissions: {{}}` for the workflow, found {workflow.get('permissions')!r}")
    problems += [f"job {name}: no permissions of its own" for name, job in jobs(workflow).items() if "permissions" not in job]
    return problems


def grants_id_token(permissions: object) -> bool:
    if isinstance(permissions, str):
        return permissions == "write-all"
    return isinstance(permissions, dict) and permissions.get("id-token") == "write"


def id_token_beyond_the_aws_role(text: str) -> list[str]:
    workflow = yaml.safe_load(text)
    problems = []
    if grants_id_token(workflow.get("permissions")):
        problems.append("id-token: write for the whole workflow (every job could assume the role)")
    problems += [f"job {name}: id-token: write without {AWS_CREDENTIALS_ACTION}"
                 for name, job in jobs(workflow).items()
                 if grants_id_token(job.get("permissions")) and not steps_using(job, AWS_CREDENTIALS_ACTION)]
    return problems


CHECKS: dict[str, Callable[[str], list[str]]] = {
    "every action pinned to a commit, its version in a comment": unpinned_actions,
    "one pin per action": differing_pins,
    "checkout keeps no token": checkouts_keeping_the_token,
    "permissions: {} for the workflow, per job what it needs": permissions_not_per_job,
    "id-token: write only where the AWS role is assumed": id_token_beyond_the_aws_role,
}


def test_there_are_workflows_to_check():
    names = [p.relative_to(REPO).as_posix() for p in shipped_workflows()]
    assert "examples/scheduled-compliance.yml" in names and "examples/fleet-compliance.yml" in names, names


@pytest.mark.parametrize("check", CHECKS, ids=list(CHECKS))
def test_every_shipped_workflow_keeps_the_rule(check):
    problems = {p.relative_to(REPO).as_posix(): CHECKS[check](p.read_text()) for p in shipped_workflows()}
    assert {path: found for path, found in problems.items() if found} == {}, check


def one_pin_changed(text: str) -> str:
    """The shipped workflow with the commented-out job's checkout pinned elsewhere."""
    commented = next(line for line in text.splitlines() if line.lstrip().startswith("#") and "actions/checkout@" in line)
    return text.replace(commented, commented.replace("actions/checkout@", "actions/checkout@" + "0" * 40 + " # v0.0.0 was "))


NEGATIVE = {
    "every action pinned to a commit, its version in a comment": (lambda: BEFORE, 4),
    "one pin per action": (lambda: one_pin_changed((REPO / "examples" / "scheduled-compliance.yml").read_text()), 1),
    "checkout keeps no token": (lambda: BEFORE, 1),
    "permissions: {} for the workflow, per job what it needs": (lambda: BEFORE, 2),
    "id-token: write only where the AWS role is assumed": (lambda: BEFORE, 1),
}


@pytest.mark.parametrize("check", NEGATIVE, ids=list(NEGATIVE))
def test_each_check_fails_on_the_workflow_as_it_was(check):
    text, expected = NEGATIVE[check]
    problems = CHECKS[check](text())
    assert len(problems) == expected, f"{check}: expected {expected} problems, found {problems}"


def test_the_id_token_check_follows_the_job_that_assumes_the_role():
    workflow = yaml.safe_load(BEFORE)
    workflow["permissions"] = {}
    workflow["jobs"]["check"]["permissions"] = {"contents": "read", "id-token": "write"}
    workflow["jobs"]["other"] = {"runs-on": "ubuntu-latest", "permissions": "write-all", "steps": [{"run": "true"}]}
    assert id_token_beyond_the_aws_role(yaml.safe_dump(workflow)) == [
        f"job other: id-token: write without {AWS_CREDENTIALS_ACTION}"]


# --- the fleet's workflow: shards over a matrix, one merge --------------------------------------

FLEET_WORKFLOW = REPO / "examples" / "fleet-compliance.yml"


def fleet_workflow_problems(text: str) -> list[str]:
    """What would make the sharded workflow check less than the whole fleet, or not decide once."""
    workflow = yaml.safe_load(text)
    shards = int(workflow["env"]["SHARDS"])
    shard, merge = jobs(workflow).get("shard", {}), jobs(workflow).get("merge", {})
    problems = []
    matrix = (shard.get("strategy") or {}).get("matrix", {}).get("shard")
    if matrix != list(range(1, shards + 1)):
        problems.append(f"the matrix's shards {matrix} are not 1 to SHARDS ({shards})")
    if (shard.get("strategy") or {}).get("fail-fast") is not False:
        problems.append("fail-fast: one shard's failure would cancel the others' checks")
    runs = "\n".join(s.get("run", "") for s in shard.get("steps") or [])
    if '--fleet-shard="$SHARD/$SHARDS"' not in runs or '--fleet="$FLEET"' not in runs:
        problems.append("the shard job does not check its shard of the fleet file")
    uploads = steps_using(shard, "actions/upload-artifact")
    if not uploads or uploads[0].get("if") != "always()" or uploads[0]["with"].get("path") != "reports/":
        problems.append("the shard job does not upload its reports/ whatever it found")
    if merge.get("needs") != "shard" or "!cancelled()" not in str(merge.get("if")):
        problems.append("the merge job does not wait for every shard, or not after a failed one")
    if not any("python -m compliance merge" in s.get("run", "") for s in merge.get("steps") or []):
        problems.append("the merge job does not run python -m compliance merge")
    return problems


def merge_script() -> str:
    workflow = yaml.safe_load(FLEET_WORKFLOW.read_text())
    return next(s["run"] for s in jobs(workflow)["merge"]["steps"] if "compliance merge" in s.get("run", ""))


def test_the_fleet_workflow_checks_every_shard_and_decides_once():
    assert fleet_workflow_problems(FLEET_WORKFLOW.read_text()) == []
    text = FLEET_WORKFLOW.read_text()
    assert len(fleet_workflow_problems(text.replace("shard: [1, 2, 3, 4]", "shard: [1, 2, 3]"))) == 1
    assert len(fleet_workflow_problems(text.replace("    needs: shard\n", ""))) == 1
    assert len(fleet_workflow_problems(text.replace("fail-fast: false", "fail-fast: true"))) == 1


def run_merge_step(tmp_path: Path, shards: dict[str, object], expected: int) -> tuple[str, str]:
    """The merge job's script as the runner runs it (bash -e, a checkout with .venv, the shards'
    artifacts downloaded), in a folder of its own."""
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    for name, results in shards.items():
        (tmp_path / "shards" / name).mkdir(parents=True)
        (tmp_path / "shards" / name / "results.json").write_text(results.dumps())  # type: ignore[attr-defined]
    step = tmp_path / "step-summary.md"
    env = {"PATH": os.environ["PATH"], "SHARDS": "2", "GITHUB_STEP_SUMMARY": str(step), "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", "-e", "-c", merge_script()], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == expected, done.stdout + done.stderr
    return done.stdout + done.stderr, step.read_text() if step.exists() else ""


def test_the_fleet_workflows_merge_step_gives_one_status_and_keeps_the_history(tmp_path):
    from compliance import history
    from compliance import results as res
    from selftests.test_results_units import ICMP, run_of

    one = run_of({}, "2026-01-01T00:00:00.000Z", envs=("a@us-east-1",))
    two = run_of({("b@eu-west-1", ICMP): res.VIOLATED}, "2026-01-01T00:00:01.000Z", envs=("b@eu-west-1",))
    said, summary = run_merge_step(tmp_path, {"fleet-shard-1": one, "fleet-shard-2": two}, expected=1)
    assert "merged 2 shard(s), 2 environment(s)" in said and "### Violated (1)" in summary
    kept = list((tmp_path / ".fleet-history").iterdir())
    assert len(kept) == 1 and history.HISTORY_FILE.fullmatch(kept[0].name), kept
    assert len(res.load(kept[0]).environments) == 2


def test_the_fleet_workflows_merge_step_fails_on_a_missing_shard(tmp_path):
    from selftests.test_results_units import run_of

    said, _ = run_merge_step(tmp_path, {"fleet-shard-1": run_of({}, "2026-01-01T00:00:00.000Z")}, expected=4)
    assert "error: 1 of 2 shards left a results.json" in said
    assert not (tmp_path / "merged").exists() and not (tmp_path / ".fleet-history").exists()


def test_the_example_fleet_files_are_fleet_files_and_no_workflow_is_one():
    from fixtures import fleetfile

    examples = sorted(p for p in (REPO / "examples").rglob("*") if is_fleet_file(p))
    assert [p.name for p in examples] == ["twotier.fleet.yml"]
    for p in examples:
        assert len(fleetfile.load(p)) >= 2, p
    # A workflow named like a fleet file (left out of zizmor's run) is no fleet file: it can't hide.
    for p in shipped_workflows():
        with pytest.raises(fleetfile.FleetError, match="unknown key"):
            fleetfile.parse(yaml.safe_load(p.read_text()), str(p))


# --- zizmor, through .ci/workflows as CI runs it ------------------------------------------------

def run_workflows_script(script: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZIZMOR": str(ZIZMOR)}
    return subprocess.run(["bash", str(script), *files], capture_output=True, text=True, env=env, timeout=120)


def test_zizmor_finds_nothing_in_what_the_project_ships():
    done = run_workflows_script(REPO / ".ci" / "workflows")
    assert done.returncode == 0, done.stdout + done.stderr
    for path in ("examples/scheduled-compliance.yml", "examples/fleet-compliance.yml", "examples/dependabot.yml"):
        assert path in done.stdout, f"expected .ci/workflows to check {path}: {done.stdout}"
    assert "No findings to report" in done.stdout, done.stdout


IGNORE = re.compile(r"#\s*zizmor:\s*ignore\[[^\]]*\](?P<why>.*)$")


def silenced_without_a_reason(text: str) -> list[str]:
    return [f"line {n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
            if (m := IGNORE.search(line)) and len(m["why"].strip(" -:#")) < 10]


def test_a_finding_is_silenced_only_inline_with_the_reason():
    shipped = [*shipped_workflows(), *REPO.glob("examples/**/dependabot.y*ml")]
    assert {p.name: silenced_without_a_reason(p.read_text()) for p in shipped} == {p.name: [] for p in shipped}
    assert silenced_without_a_reason("      - uses: x/y@v1  # zizmor: ignore[unpinned-uses]\n") != []
    assert silenced_without_a_reason("persist-credentials: true  # zizmor: ignore[artipacked] the job pushes tags\n") == []


def test_zizmor_fails_ci_on_the_workflow_as_it_was(tmp_path):
    before = tmp_path / "before.yml"
    before.write_text(BEFORE)
    done = run_workflows_script(REPO / ".ci" / "workflows", str(before))
    assert done.returncode == 1, done.stdout + done.stderr
    for audit in ("unpinned-uses", "artipacked"):
        assert f"[{audit}]" in done.stdout, done.stdout
    assert "error: zizmor found something" in done.stderr


def test_a_new_workflow_is_checked_without_being_named(tmp_path):
    """The fleet's shard and merge workflows will land beside the first one: the glob takes them."""
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO / ".ci" / "workflows", tmp_path / ".ci" / "workflows")
    (tmp_path / "examples" / "fleet").mkdir(parents=True)
    shutil.copy(REPO / "examples" / "scheduled-compliance.yml", tmp_path / "examples")
    (tmp_path / "examples" / "fleet" / "merge.yml").write_text(BEFORE)
    done = run_workflows_script(tmp_path / ".ci" / "workflows")
    assert done.returncode == 1 and "examples/fleet/merge.yml" in done.stdout, done.stdout + done.stderr
    assert [p.relative_to(tmp_path).as_posix() for p in shipped_workflows(tmp_path)] == [
        "examples/fleet/merge.yml", "examples/scheduled-compliance.yml"]


def test_a_workflow_zizmor_cannot_read_fails_instead_of_being_skipped(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: oops\n")
    done = run_workflows_script(REPO / ".ci" / "workflows", str(broken), str(REPO / "examples" / "scheduled-compliance.yml"))
    assert done.returncode == 1, done.stdout + done.stderr


# --- Dependabot's pip pull requests ---------------------------------------------------------------

PIN = re.compile(r"^(?P<name>[A-Za-z0-9][\w.-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)", re.MULTILINE)


def pins(text: str) -> dict[str, str]:
    return {re.sub(r"[-_.]+", "-", m["name"]).lower(): m["version"] for m in PIN.finditer(text)}


def lock_disagreements(requirements_in: str, lock: str) -> list[str]:
    locked = pins(lock)
    return [f"requirements.in pins {name}=={version}, requirements.lock has {locked.get(name, 'nothing')}"
            for name, version in pins(requirements_in).items() if locked.get(name) != version]


def test_the_lock_pins_what_requirements_in_pins():
    requirements_in = (REPO / "requirements.in").read_text()
    assert len(pins(requirements_in)) > 10, "expected requirements.in to pin the project's packages"
    assert lock_disagreements(requirements_in, (REPO / "requirements.lock").read_text()) == [], \
        "run bash .ci/lock (a Dependabot pull request bumps requirements.in only)"


def test_a_dependabot_bump_of_requirements_in_alone_fails():
    requirements_in = (REPO / "requirements.in").read_text().replace("\npytest==", "\npytest==99.0.0  # was ")
    assert lock_disagreements(requirements_in, (REPO / "requirements.lock").read_text()) == [
        "requirements.in pins pytest==99.0.0, requirements.lock has 9.0.3"]
