"""compliance/ without a run: history's chain, waivers' file and matching, ASFF's required fields
and stable ids, merge (shards of one result merge back to it), and hostile text made inert."""
from __future__ import annotations

import copy
import datetime as dt
import json
import re

import pytest

from compliance import asff, history, merge, summary, waivers
from compliance import results as res
from compliance.results import Environment, Record, Results, Run

SPREAD_ACROSS_WORKERS = True
CHECKS = [("tests/test_1_vpc.py::test_internet_gateway_attached", "1.3"),
          ("tests/test_1_vpc.py::test_public_subnet_routes_default_to_igw", "1.4"),
          ("tests/test_4_db_server.py::test_db_allows_only_the_web_server[icmp]", "4.2"),
          ("tests/test_4_db_server.py::test_db_allows_only_the_web_server[ssh]", "4.2"),
          ("tests/test_hardening.py::test_imdsv2_required[web]", "H:imdsv2_required")]


def run_of(verdicts: dict[tuple[str, str], str], started: str, envs=("a@us-east-1", "b@eu-west-1"),
           exit_status: int | None = None) -> Results:
    """A result with one record per environment x check: `verdicts` names the ones that don't hold."""
    run_id = started.replace("-", "").replace(":", "")[:15] + "Z-" + started[-6:-1].replace(":", "").replace(".", "")
    records = [Record(e, c, p, "", verdicts.get((e, c), res.HOLDS), "found x" if (e, c) in verdicts else "",
                      started, not p.startswith("H:"))
               for e in envs for c, p in CHECKS]
    environments = [Environment(e, e.split("@")[0], e.split("@")[1], f"vpc-{i}", "123456789012")
                    for i, e in enumerate(envs)]
    out = Results(Run(run_id, started, started, "test", "moto", 0), environments, records)
    out.run.exit_status = exit_status if exit_status is not None else res.worst(
        res.environment_exit(e, [r for r in records if r.environment == e.key]) for e in environments)
    return out


IGW, ROUTE, ICMP, SSH, IMDS = (c for c, _ in CHECKS)


def test_history_new_still_failing_since_and_fixed_through_a_chain():
    first = run_of({("a@us-east-1", ICMP): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    history.compare(first.records, None, first.run.id)
    # Run 2: ICMP still violated, the route broken; run 3: ICMP fixed, the route still broken.
    second = run_of({("a@us-east-1", ICMP): res.VIOLATED, ("a@us-east-1", ROUTE): res.VIOLATED},
                    "2026-01-02T00:00:00.000Z")
    history.compare(second.records, first, second.run.id)
    third = run_of({("a@us-east-1", ROUTE): res.VIOLATED, ("b@eu-west-1", IGW): res.NOT_CHECKED},
                   "2026-01-03T00:00:00.000Z")
    history.compare(third.records, second, third.run.id)

    def status(results, env, check):
        return next(r.history for r in results.records if r.key == (env, check))
    assert status(second, "a@us-east-1", ICMP)["status"] == "still-failing"
    assert status(second, "a@us-east-1", ICMP)["since"] == {"time": "2026-01-01T00:00:00.000Z", "run_id": first.run.id}
    assert status(second, "a@us-east-1", ROUTE)["status"] == "new"
    assert status(third, "a@us-east-1", ICMP)["status"] == "fixed"
    # The date of the first failure is carried forward, not reset at each run.
    assert status(third, "a@us-east-1", ROUTE)["since"] == {"time": "2026-01-02T00:00:00.000Z", "run_id": second.run.id}
    assert status(third, "b@eu-west-1", IGW)["status"] == "new"       # not checked is a finding too
    s = history.summarise(third.records, [history.baseline_ref(second, "x")])
    assert s["counts"] == {"new": 1, "still_failing": 1, "fixed": 1}
    assert s["environments"]["a@us-east-1"]["fixed"] == [ICMP]
    assert {"check_id": ICMP, "from": "violated", "to": "holds"} in s["environments"]["a@us-east-1"]["changed"]


def test_a_finding_no_longer_looked_at_is_not_fixed():
    before = run_of({("a@us-east-1", ICMP): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    now = run_of({("a@us-east-1", ICMP): res.NOT_APPLICABLE}, "2026-01-02T00:00:00.000Z")
    history.compare(now.records, before, now.run.id)
    h = next(r.history for r in now.records if r.key == ("a@us-east-1", ICMP))
    assert h == {"status": None, "since": None, "previous": "violated"}


def test_history_folder_keeps_the_newest_and_only_touches_its_own(tmp_path):
    (tmp_path / "notes.txt").write_text("someone else's")
    (tmp_path / "results-20250101T000000Z-aaaaaa.json").write_text("{ torn")      # a cut-off copy
    for day in range(1, 6):
        r = run_of({}, f"2026-01-0{day}T00:00:00.000Z")
        r.run.id = f"2026010{day}T000000Z-00000{day}"
        history.keep(tmp_path, r, last=3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["notes.txt", "results-20260103T000000Z-000003.json", "results-20260104T000000Z-000004.json",
                     "results-20260105T000000Z-000005.json"], names
    newest, source, skipped = history.newest(tmp_path)
    assert newest is not None and newest.run.id == "20260105T000000Z-000005" and skipped == []


def test_history_skips_a_file_it_cannot_read(tmp_path):
    good = run_of({}, "2026-01-01T00:00:00.000Z")
    good.run.id = "20260101T000000Z-000001"
    history.keep(tmp_path, good, last=5)
    (tmp_path / "results-20260102T000000Z-000002.json").write_text('{"schema": "something-else/9"}')
    newest, _, skipped = history.newest(tmp_path)
    assert newest is not None and newest.run.id == "20260101T000000Z-000001"
    assert len(skipped) == 1 and "not a twotier-results/1 file" in skipped[0]


WAIVER_CASES = [
    ("not-a-list", "waivers: 3\n", "expected a list of waivers"),
    ("not-yaml", "- [unclosed\n", "not YAML at line"),
    ("unknown-key", "- {environment: '*', property: '4.2', reason: r, expires: 2030-01-01, owner: me}\n",
     "unknown key 'owner'"),
    ("no-reason", "- {environment: '*', property: '4.2', expires: 2030-01-01}\n", "reason is missing"),
    ("no-expiry", "- {environment: '*', property: '4.2', reason: r}\n", "expires is missing"),
    ("bad-date", "- {environment: '*', property: '4.2', reason: r, expires: next week}\n",
     "expires 'next week' is not a date"),
    ("both", "- {environment: '*', property: '4.2', check: x, reason: r, expires: 2030-01-01}\n", "exactly one of"),
    ("neither", "- {environment: '*', reason: r, expires: 2030-01-01}\n", "exactly one of"),
    ("unquoted-number", "- {environment: '*', property: 4.2, reason: r, expires: 2030-01-01}\n", "must be quoted"),
    ("control-character", "- {environment: '*', property: '4.2', reason: \"a\\x1b[31mb\", expires: 2030-01-01}\n",
     "control character"),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in WAIVER_CASES], ids=[c[0] for c in WAIVER_CASES])
def test_a_bad_waivers_file_is_one_line(tmp_path, text, expected):
    path = tmp_path / "waivers.yml"
    path.write_text(text)
    with pytest.raises(waivers.WaiverError) as err:
        waivers.load(path)
    message = str(err.value)
    assert expected in message and "\n" not in message and message.startswith("bad --waivers"), message


def test_a_waivers_file_behind_a_link_is_refused(tmp_path):
    real = tmp_path / "real.yml"
    real.write_text("[]\n")
    (tmp_path / "link.yml").symlink_to(real)
    with pytest.raises(waivers.WaiverError, match="links are not followed"):
        waivers.load(tmp_path / "link.yml")


def test_waivers_match_by_environment_property_or_check():
    w = waivers.parse([
        {"environment": "*", "property": "4.2", "reason": "r1", "expires": dt.date(2030, 1, 1)},
        {"environment": "a", "check": "tests/test_hardening.py::test_imdsv2_required", "reason": "r2",
         "expires": "2020-01-01"},
        {"environment": "b@eu-west-1", "check": ICMP, "reason": "r3", "expires": "2030-01-01"},
    ])
    on = dt.date(2026, 6, 1)
    assert waivers.find(w, "a@us-east-1", "a", "4.2", SSH, on).id == "W1"
    # A check id without [..] names every parameter of the check; one with names that one alone.
    assert waivers.find(w, "a@us-east-1", "a", "H:imdsv2_required", IMDS, on).id == "W2"
    assert waivers.find(w, "b@eu-west-1", "b", "H:imdsv2_required", IMDS, on) is None
    assert w[1].state(on) == waivers.EXPIRED and w[0].state(on) == waivers.ACTIVE
    # The last day of a waiver is still a day it holds.
    assert w[0].state(dt.date(2030, 1, 1)) == waivers.ACTIVE and w[0].state(dt.date(2030, 1, 2)) == waivers.EXPIRED
    # An active waiver wins over an expired one naming the same check.
    both = waivers.parse([{"environment": "*", "property": "4.2", "reason": "old", "expires": "2020-01-01"},
                          {"environment": "*", "property": "4.2", "reason": "new", "expires": "2030-01-01"}])
    assert waivers.find(both, "a@us-east-1", "a", "4.2", ICMP, on).reason == "new"


def test_waiver_report_tells_used_unmatched_and_nothing_to_waive():
    w = waivers.parse([{"environment": "*", "property": "4.2", "reason": "r", "expires": "2030-01-01"},
                       {"environment": "nosuch", "property": "1.3", "reason": "r", "expires": "2030-01-01"},
                       {"environment": "*", "property": "1.3", "reason": "r", "expires": "2030-01-01"}])
    r = run_of({("a@us-east-1", ICMP): res.WAIVED}, "2026-01-01T00:00:00.000Z")
    next(x for x in r.records if x.key == ("a@us-east-1", ICMP)).waiver = w[0].as_record_field(dt.date(2026, 1, 1))
    report = waivers.report(w, r.records, {"a@us-east-1": "a", "b@eu-west-1": "b"}, dt.date(2026, 1, 1), "w.yml")
    assert [(e["id"], e["status"]) for e in report["entries"]] == [
        ("W1", "used"), ("W2", "unmatched"), ("W3", "nothing-to-waive")]
    assert report["entries"][0]["waived"] == 1


def test_asff_findings_have_the_required_fields_and_stable_ids():
    before = run_of({("a@us-east-1", ICMP): res.VIOLATED, ("a@us-east-1", ROUTE): res.VIOLATED},
                    "2026-01-01T00:00:00.000Z")
    now = run_of({("a@us-east-1", ROUTE): res.VIOLATED, ("b@eu-west-1", IGW): res.NOT_CHECKED,
                   ("a@us-east-1", SSH): res.WAIVED}, "2026-01-02T00:00:00.000Z")
    next(r for r in now.records if r.key == ("a@us-east-1", SSH)).waiver = {
        "id": "W1", "state": "active", "reason": "migration", "expires": "2030-01-01"}
    history.compare(now.records, before, now.run.id)
    found, left_out = asff.findings(now)
    assert not left_out
    by = {(f["ProductFields"]["twotier/environment"], f["ProductFields"]["twotier/check"]): f for f in found}
    assert set(by) == {("a@us-east-1", ROUTE), ("b@eu-west-1", IGW), ("a@us-east-1", SSH), ("a@us-east-1", ICMP)}
    required = ("SchemaVersion", "Id", "ProductArn", "GeneratorId", "AwsAccountId", "Types", "CreatedAt", "UpdatedAt",
                "Severity", "Title", "Description", "Resources")
    for f in found:
        assert all(f.get(k) for k in required), [k for k in required if not f.get(k)]
        assert f["SchemaVersion"] == "2018-10-08" and re.fullmatch(r"\d{12}", f["AwsAccountId"])
        assert f["ProductArn"].endswith(f":{f['AwsAccountId']}:product/{f['AwsAccountId']}/default")
        assert len(f["Title"]) <= 256 and len(f["Description"]) <= 1024
    route, icmp, ssh, igw = (by[k] for k in (("a@us-east-1", ROUTE), ("a@us-east-1", ICMP), ("a@us-east-1", SSH),
                                             ("b@eu-west-1", IGW)))
    assert (route["Compliance"]["Status"], route["RecordState"], route["Workflow"]["Status"]) == ("FAILED", "ACTIVE", "NEW")
    assert route["CreatedAt"] == "2026-01-01T00:00:00.000Z", "CreatedAt is when it first failed (carried forward)"
    assert (icmp["Compliance"]["Status"], icmp["RecordState"]) == ("PASSED", "ARCHIVED")
    assert (ssh["Workflow"]["Status"], ssh["Note"]["UpdatedBy"]) == ("SUPPRESSED", asff.WAIVER_NOTE_BY)
    assert igw["Compliance"]["Status"] == "NOT_AVAILABLE" and igw["ProductArn"].split(":")[3] == "eu-west-1"
    # Same environment and check: the same Id, run after run; another environment: another Id.
    again = run_of({("a@us-east-1", ROUTE): res.VIOLATED}, "2026-01-03T00:00:00.000Z")
    assert asff.findings(again)[0][0]["Id"] == route["Id"]
    assert asff.finding_id("b@eu-west-1", ROUTE) != route["Id"]


def test_an_environment_without_an_account_is_left_out_and_said():
    r = run_of({("a@us-east-1", ROUTE): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    for e in r.environments:
        e.account = None
    found, left_out = asff.findings(r)
    assert found == [] and left_out == ["a@us-east-1: no account ID known, so no ASFF finding"]
    assert asff.findings(r, account_fallback="210987654321")[0][0]["AwsAccountId"] == "210987654321"


def comparable(results: Results) -> dict:
    data = results.to_json()
    data.pop("run")
    data["records"].sort(key=lambda r: (r["environment"], r["check_id"]))
    return data


def test_shards_of_one_result_merge_back_to_it():
    base = run_of({("a@us-east-1", ICMP): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    whole = run_of({("a@us-east-1", ROUTE): res.VIOLATED, ("b@eu-west-1", IGW): res.NOT_CHECKED,
                    ("a@us-east-1", SSH): res.WAIVED}, "2026-01-02T00:00:00.000Z")
    w = waivers.parse([{"environment": "*", "property": "4.2", "reason": "r", "expires": "2030-01-01"},
                       {"environment": "nosuch", "property": "1.3", "reason": "r", "expires": "2030-01-01"}])
    next(r for r in whole.records if r.key == ("a@us-east-1", SSH)).waiver = w[0].as_record_field(dt.date(2026, 1, 2))
    history.compare(whole.records, base, whole.run.id)
    whole.history = history.summarise(whole.records, [history.baseline_ref(base, "base.json")])
    names = {e.key: e.name for e in whole.environments}
    whole.waivers = waivers.report(w, whole.records, names, dt.date(2026, 1, 2), "w.yml")
    whole.records.sort(key=lambda r: r.key)

    # Shards by environment, as a fleet is split: each computes its own waiver usage.
    shards = []
    for env in whole.environments:
        part = copy.deepcopy(whole)
        part.environments = [e for e in part.environments if e.key == env.key]
        part.records = [r for r in part.records if r.environment == env.key]
        part.history = history.summarise(part.records, whole.history["baselines"])
        part.waivers = waivers.report(w, part.records, names, dt.date(2026, 1, 2), "w.yml")
        part.run.exit_status = res.worst(res.environment_exit(e, part.records) for e in part.environments)
        shards.append(Results.from_json(json.loads(part.dumps())))
    # Shard b alone used no waiver: W1 is unused there, used in the merge.
    assert shards[1].waivers["entries"][0]["status"] == "nothing-to-waive"
    merged = merge.merge(shards)
    assert comparable(merged) == comparable(whole)
    assert merged.run.exit_status == whole.run.exit_status == 1
    assert [s["run_id"] for s in merged.run.shards] == [whole.run.id, whole.run.id]
    assert comparable(merge.merge(list(reversed(shards)))) == comparable(whole), "order of the shards matters"


def test_merge_takes_the_worst_exit_status_and_refuses_overlap():
    ok = run_of({}, "2026-01-01T00:00:00.000Z", envs=("a@us-east-1",))
    unchecked = run_of({("b@us-east-1", IGW): res.NOT_CHECKED}, "2026-01-01T00:00:01.000Z", envs=("b@us-east-1",))
    violated = run_of({("c@us-east-1", IGW): res.VIOLATED}, "2026-01-01T00:00:02.000Z", envs=("c@us-east-1",))
    broke = run_of({}, "2026-01-01T00:00:03.000Z", envs=("d@us-east-1",), exit_status=2)
    assert merge.merge([ok]).run.exit_status == 0
    assert merge.merge([ok, unchecked]).run.exit_status == 6
    assert merge.merge([unchecked, violated, ok]).run.exit_status == 1
    assert merge.merge([ok, broke]).run.exit_status == 6, "a shard that broke off can't leave the fleet compliant"
    with pytest.raises(merge.MergeError, match="shards must not overlap"):
        merge.merge([ok, ok])


HOSTILE = "\x1b]0;pwned\x07<script>alert(1)</script> | **bold** [x](http://evil) \u202eevil\nnext-line"


def test_hostile_text_is_inert_in_every_reader():
    r = run_of({("a@us-east-1", ROUTE): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    rec = next(x for x in r.records if x.key == ("a@us-east-1", ROUTE))
    rec.message = HOSTILE
    r.environments[0].error = None
    base = run_of({}, "2025-12-31T00:00:00.000Z")
    history.compare(r.records, base, r.run.id)
    r.history = history.summarise(r.records, [history.baseline_ref(base, "b")])
    for line in summary.terminal_history(r):
        assert "\x1b" not in line and "\x07" not in line and "\n" not in line and "\u202e" not in line, repr(line)
    md = summary.markdown_summary(r)
    finding = next(line for line in md.splitlines() if "routes" in line)
    assert "<script>" not in md and "\x1b" not in md and "\u202e" not in md
    assert "\\*\\*bold\\*\\*" in finding and "\\[x\\]\\(http\\:\\/\\/evil\\)" in finding and "\\|" in finding
    page = summary.html_page(r)
    assert "<script>" not in page and "&lt;script&gt;" in page
    found, _ = asff.findings(r)
    assert "\n" not in found[0]["Description"] and "\x1b" not in found[0]["Description"]


def test_a_results_file_is_written_through_a_temporary_file_and_replaces_a_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "results.json"
    link.symlink_to(victim)
    run_of({}, "2026-01-01T00:00:00.000Z").write(link)
    assert victim.read_text() == "keep me", "the write followed a planted link"
    assert not link.is_symlink() and res.load(link).run.started_at == "2026-01-01T00:00:00.000Z"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_synthetic_results_validate_against_the_schema():
    r = run_of({("a@us-east-1", ROUTE): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    assert res.validate(json.loads(r.dumps())) == []
    broken = json.loads(r.dumps())
    broken["records"][0]["verdict"] = "passed"
    del broken["run"]["tool_version"]
    errors = res.validate(broken)
    assert any("records/0/verdict" in e for e in errors) and any("tool_version" in e for e in errors), errors


def test_what_a_worker_puts_on_a_report_for_results_reaches_the_controller():
    # pytest-xdist ships reports through _to_json/_from_json: the environment, the evidence digest
    # and the waiver (a waived violation is an xfail by then) must survive, and the tally keep them.
    from _pytest.reports import TestReport

    from fixtures.verdicts import WAIVED_PREFIX, Tally
    waiver = {"id": "W1", "state": "active", "reason": "known", "expires": "2030-01-01", "violation": "expected x"}
    sent = TestReport("tests/t.py::test_x", ("tests/t.py", 1, "test_x"), {}, "skipped", None, "call", [],
                      tt_environment="e@us-east-1", tt_evidence_sha256="ab" * 32, tt_waiver=waiver,
                      wasxfail=WAIVED_PREFIX + "known (W1, until 2030-01-01); the violation: expected x", tt_article="1.1")
    got = TestReport._from_json(sent._to_json())
    t = Tally()
    t.record(got)
    entry = t.entries["tests/t.py::test_x"]
    assert (entry.verdict, entry.environment, entry.evidence_sha256, entry.waiver) == (
        "waived", "e@us-east-1", "ab" * 32, waiver)
    assert t.exit_code() == 0, "a waived violation decides nothing"


def test_the_step_summary_without_a_baseline_lists_the_findings_as_they_are():
    r = run_of({("a@us-east-1", ROUTE): res.VIOLATED, ("b@eu-west-1", IGW): res.NOT_CHECKED}, "2026-01-01T00:00:00.000Z")
    md = summary.markdown_summary(r)
    assert "### New" not in md and "No previous run to compare with" in md
    assert md.index("### Violated (1)") < md.index("### Not checked (1)")
    assert "test_public_subnet_routes_default_to_igw" in md.split("### Violated (1)")[1].split("###")[0]


def test_a_verdict_that_changed_otherwise_is_said():
    before = run_of({("a@us-east-1", ICMP): res.VIOLATED}, "2026-01-01T00:00:00.000Z")
    now = run_of({("a@us-east-1", ICMP): res.NOT_APPLICABLE}, "2026-01-02T00:00:00.000Z")
    history.compare(now.records, before, now.run.id)
    now.history = history.summarise(now.records, [history.baseline_ref(before, "b")])
    lines = summary.terminal_history(now)
    assert "verdict changed otherwise (1):" in lines
    assert any("test_db_allows_only_the_web_server[icmp]: violated -> not applicable" in line for line in lines), lines
