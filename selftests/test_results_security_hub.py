"""--asff and --security-hub on check-only runs against moto server's Security Hub (127.0.0.1).

What moto 5.2.5's Security Hub does and doesn't (moto/securityhub/models.py), and how the tests
deal with it:
- BatchImportFindings and GetFindings exist: the import is read back with GetFindings.
- GetFindings ignores Filters and SortCriteria (it returns every finding): the code filters again
  on its side, so this is no hole in the proof.
- BatchImportFindings accepts findings without the hub enabled, checks no field but Resources,
  and replaces an existing finding's top-level fields wholesale, Workflow and Note too (AWS keeps
  those, which only BatchUpdateFindings changes, and ignores an update that is not newer by
  UpdatedAt). The ASFF shape is checked here against the spec's required fields instead.
- BatchUpdateFindings doesn't exist (HTTP 404): suppressing a finding that existed before its
  waiver, and reopening it when the waiver expires, are proven with botocore's Stubber; on moto
  the run reports the 404 and goes on.
"""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from compliance import asff, securityhub
from compliance import results as res
from selftests.moto_server import REGION, check_suite, provision, up_args
from selftests.test_results_runs import ICMP, MARIADB, SSH, drift

SPREAD_ACROSS_WORKERS = True
ACCOUNT = "123456789012"


def hub(aws):
    return boto3.client("securityhub", endpoint_url=aws.url, region_name=REGION, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


def ours(aws) -> dict[str, dict]:
    """Security Hub's findings of this tool, by check id (moto ignores GetFindings' filters)."""
    out = {}
    for page in hub(aws).get_paginator("get_findings").paginate():
        for f in page["Findings"]:
            if f["GeneratorId"].startswith("twotier/"):
                out[f["ProductFields"]["twotier/check"]] = f
    return out


def test_findings_go_to_security_hub_and_come_back_updated_and_archived(aws, tmp_path):
    state, hist = tmp_path / "state", tmp_path / "history"
    assert provision(aws, state, *up_args("hub")).returncode == 0
    drift(aws, state, "hub", "db-icmp-revoked")
    drift(aws, state, "hub", "db-3306-revoked")
    first = check_suite(aws, tmp_path, "--env", "hub", "--state-dir", str(state), f"--history={hist}",
                        f"--asff={tmp_path / 'a1.json'}", "--security-hub", f"--results={tmp_path / 'r1.json'}")
    assert first.returncode == 1, first.stdout[-3000:]
    written = json.loads((tmp_path / "a1.json").read_text())["Findings"]
    assert {f["ProductFields"]["twotier/check"] for f in written} >= {ICMP, MARIADB}
    assert all(f["ProductArn"] == f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default" for f in written)
    seen = ours(aws)
    assert set(seen) == {f["ProductFields"]["twotier/check"] for f in written}
    assert {seen[c]["Id"] for c in seen} == {f["Id"] for f in written}
    assert seen[ICMP]["RecordState"] == "ACTIVE" and seen[ICMP]["Compliance"]["Status"] == "FAILED"
    r1 = json.loads((tmp_path / "r1.json").read_text())
    assert r1["exports"]["security_hub"][0]["imported"] == len(written) and not r1["exports"]["security_hub"][0]["failed"]
    assert f"Security Hub {ACCOUNT} {REGION}: {len(written)} of {len(written)} findings imported" in first.stdout

    # Fix ICMP, break SSH, waive a new finding; MariaDB stays broken.
    drift(aws, state, "hub", "db-icmp-revoked", revert=True)
    drift(aws, state, "hub", "db-ssh-revoked")
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(f'- {{environment: hub, check: "{SSH}", reason: bastion move, expires: 2999-01-01}}\n')
    second = check_suite(aws, tmp_path, "--env", "hub", "--state-dir", str(state), f"--history={hist}",
                         "--security-hub", f"--waivers={waivers}", f"--results={tmp_path / 'r2.json'}")
    assert second.returncode == 1, second.stdout[-3000:]
    r2 = json.loads((tmp_path / "r2.json").read_text())
    after = ours(aws)
    # The same environment and check: the same finding, updated by this run.
    assert after[MARIADB]["Id"] == seen[MARIADB]["Id"]
    assert after[MARIADB]["UpdatedAt"] > seen[MARIADB]["UpdatedAt"]
    assert after[MARIADB]["ProductFields"]["twotier/run"] == r2["run"]["id"]
    assert after[MARIADB]["CreatedAt"] == seen[MARIADB]["CreatedAt"], "first seen in run 1"
    # Fixed: archived, passed.
    assert (after[ICMP]["RecordState"], after[ICMP]["Compliance"]["Status"]) == ("ARCHIVED", "PASSED")
    # New and waived at once: created suppressed, the waiver's reason as its note.
    assert after[SSH]["Workflow"]["Status"] == "SUPPRESSED" and "bastion move" in after[SSH]["Note"]["Text"]
    outcome = r2["exports"]["security_hub"][0]
    assert outcome["archived"] == 1 and not outcome["failed"] and not outcome["errors"], outcome
    assert provision(aws, state, "down", "--env", "hub").returncode == 0


def test_a_fix_is_archived_without_a_baseline_from_what_security_hub_holds(aws, tmp_path):
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("hubnb")).returncode == 0
    drift(aws, state, "hubnb", "db-icmp-revoked")
    assert check_suite(aws, tmp_path, "--env", "hubnb", "--state-dir", str(state), "--security-hub").returncode == 1
    assert ours(aws)[ICMP]["RecordState"] == "ACTIVE"
    drift(aws, state, "hubnb", "db-icmp-revoked", revert=True)
    fixed = check_suite(aws, tmp_path, "--env", "hubnb", "--state-dir", str(state), "--security-hub")
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert ours(aws)[ICMP]["RecordState"] == "ARCHIVED"
    assert provision(aws, state, "down", "--env", "hubnb").returncode == 0


def test_moto_lacks_batch_update_findings_and_the_run_says_so(aws, tmp_path):
    """A finding that existed before its waiver needs BatchUpdateFindings, which moto lacks: reported, not fatal."""
    state = tmp_path / "state"
    assert provision(aws, state, *up_args("hubup")).returncode == 0
    drift(aws, state, "hubup", "db-icmp-revoked")
    assert check_suite(aws, tmp_path, "--env", "hubup", "--state-dir", str(state), "--security-hub").returncode == 1
    waivers = tmp_path / "waivers.yml"
    waivers.write_text(f'- {{environment: "*", check: "{ICMP}", reason: known, expires: 2999-01-01}}\n')
    run = check_suite(aws, tmp_path, "--env", "hubup", "--state-dir", str(state), "--security-hub",
                      f"--waivers={waivers}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert "error: BatchUpdateFindings (Workflow SUPPRESSED, 1 findings): 404" in run.stdout, run.stdout[-3000:]
    assert "Traceback" not in run.stdout + run.stderr
    assert provision(aws, state, "down", "--env", "hubup").returncode == 0


def _result(verdicts: dict[str, str], waiver: dict | None = None) -> res.Results:
    env = res.Environment("e@us-east-1", "e", "us-east-1", "vpc-1", ACCOUNT)
    records = [res.Record(env.key, c, "4.2", "", v, "found x", "2026-01-02T00:00:00.000Z",
                          waiver=waiver if v in ("waived", "violated") else None) for c, v in verdicts.items()]
    return res.Results(res.Run("20260102T000000Z-abcdef", "2026-01-02T00:00:00.000Z", "2026-01-02T00:00:00.000Z",
                               "t", "aws", 1), [env], records)


def _existing(results: res.Results, check: str, workflow: str, note_by: str | None = None) -> dict:
    record = next(r for r in results.records if r.check_id == check)
    f = asff.finding(record, results.environments[0], ACCOUNT, "old", "2026-01-01T00:00:00.000Z")
    f["Workflow"] = {"Status": workflow}
    if note_by:
        f["Note"] = {"Text": "waived until ...", "UpdatedBy": note_by, "UpdatedAt": "2026-01-01T00:00:00.000Z"}
    return f


@pytest.mark.parametrize("case", ["waived-now", "waiver-expired", "suppressed-by-hand"])
def test_workflow_follows_the_waiver_on_existing_findings(case):
    """BatchUpdateFindings as AWS documents it (moto lacks it): suppress a finding waived after it
    was created; reopen one this tool suppressed once its waiver expired; leave a person's alone."""
    waiver = {"id": "W1", "state": "active" if case == "waived-now" else "expired", "reason": "known",
              "expires": "2030-01-01"}
    results = _result({ICMP: "waived" if case == "waived-now" else "violated"}, waiver)
    old = _existing(results, ICMP, "NEW" if case == "waived-now" else "SUPPRESSED",
                    asff.WAIVER_NOTE_BY if case == "waiver-expired" else "a person" if case == "suppressed-by-hand" else None)
    client = boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("get_findings", {"Findings": [old]})
    stub.add_response("batch_import_findings", {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []})
    ident = [{"Id": old["Id"], "ProductArn": old["ProductArn"]}]
    if case == "waived-now":
        stub.add_response("batch_update_findings", {"ProcessedFindings": ident, "UnprocessedFindings": []}, {
            "FindingIdentifiers": ident, "Workflow": {"Status": "SUPPRESSED"},
            "Note": {"Text": "waived until 2030-01-01 (W1): known", "UpdatedBy": asff.WAIVER_NOTE_BY}})
    elif case == "waiver-expired":
        stub.add_response("batch_update_findings", {"ProcessedFindings": ident, "UnprocessedFindings": []}, {
            "FindingIdentifiers": ident, "Workflow": {"Status": "NEW"},
            "Note": {"Text": "waiver expired: a violation again", "UpdatedBy": asff.WAIVER_NOTE_BY}})
    with stub:
        [outcome] = securityhub.publish(results, lambda region: client)
    stub.assert_no_pending_responses()
    assert not outcome.errors and not outcome.failed, outcome      # no call made that the case doesn't expect
    assert (outcome.suppressed, outcome.reopened) == {"waived-now": (1, 0), "waiver-expired": (0, 1),
                                                      "suppressed-by-hand": (0, 0)}[case]


def test_imports_go_in_batches_of_100_and_refused_findings_are_reported():
    results = _result({f"tests/t.py::test_{i}": "violated" for i in range(230)})
    client = boto3.client("securityhub", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("get_findings", {"Findings": []})
    sizes = []
    for size in (100, 100, 30):
        refused = [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "Finding\x1b[31m too big"}] if size == 30 else []
        stub.add_response("batch_import_findings", {"FailedCount": len(refused), "SuccessCount": size - len(refused),
                                                    "FailedFindings": refused})
        sizes.append(size)

    def count(params, **_):
        assert len(params["Findings"]) == sizes.pop(0)
    client.meta.events.register("provide-client-params.securityhub.BatchImportFindings", count)
    with stub:
        [outcome] = securityhub.publish(results, lambda region: client)
    assert (outcome.sent, outcome.imported, len(outcome.failed)) == (230, 229, 1)
    lines = outcome.lines()
    assert any("refused x: InvalidInput" in line and "\x1b" not in line for line in lines), lines
