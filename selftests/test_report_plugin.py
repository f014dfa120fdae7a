"""The report plugin's own logic, without a run: verdicts from pytest reports, the xdist transport
of what a worker puts on a report, and the per-section counts."""
import re
from types import SimpleNamespace

from _pytest.reports import TestReport

from fixtures.report import Check, ReviewReport, _verdict
from fixtures.report.article import parse_article
from fixtures.report.html import not_applicable_html, sections_html
from fixtures.verdicts import ADVISORY_PREFIX, Tally, count_lines


def report(outcome="passed", when="call", longrepr=None, **attrs) -> TestReport:
    r = TestReport("tests/t.py::test_x", ("tests/t.py", 1, "test_x"), {}, outcome, longrepr, when, [])
    for k, v in attrs.items():
        setattr(r, k, v)
    return r


def test_what_a_worker_puts_on_a_report_reaches_the_controller():
    # pytest-xdist ships reports through _to_json/_from_json: the property and evidence must survive.
    sent = report(tt_article="4.2", tt_param="icmp", tt_hardening=False,
                  extras=[{"format_type": "html", "content": "<pre>rules</pre>"}])
    got = TestReport._from_json(sent._to_json())
    assert (got.tt_article, got.tt_param, got.tt_hardening) == ("4.2", "icmp", False)
    assert got.extras == sent.extras


def test_verdicts_from_reports():
    assert _verdict(report("skipped", wasxfail="accepted by design: public")) == ("accepted", "accepted by design: public")
    assert _verdict(report("skipped", wasxfail=ADVISORY_PREFIX + "expected x, found y")) == (
        "advisory", "expected x, found y")
    assert _verdict(report("skipped", "setup", ("f.py", 1, "Skipped: not applicable: no hosts on moto"))) == (
        "not-applicable", "no hosts on moto")
    assert _verdict(report("skipped", "call", ("f.py", 1, "Skipped: not checked: no route to 10.0.1.4"))) == (
        "not-checked", "no route to 10.0.1.4")
    # A skip that says neither can't claim anything held.
    assert _verdict(report("skipped", "setup", ("f.py", 1, "Skipped: whatever"))) == ("not-checked", "whatever")
    assert _verdict(report("failed", longrepr="E   AssertionError: expected x\nfound y")) == ("failed", "found y")
    assert _verdict(report("passed")) == ("passed", "")


def test_exit_status_from_the_verdicts():
    def tally(*verdicts, enforce=False):
        t = Tally(enforce_hardening=enforce)
        for n, (verdict, hardening) in enumerate(verdicts):
            t.entries[str(n)] = Check(str(n), "1.1" if not hardening else None, None, hardening, verdict)
        return t
    assert tally(("passed", False), ("not-applicable", False)).exit_code() == 0
    assert tally(("passed", False), ("not-checked", False)).exit_code() == 6
    assert tally(("failed", False), ("not-checked", False)).exit_code() == 1
    # Hardening decides nothing unless enforced (its findings are advisory then, not failures).
    assert tally(("passed", False), ("not-checked", True)).exit_code() == 0
    assert tally(("passed", False), ("failed", True), enforce=True).exit_code() == 1
    assert tally(("passed", False), ("not-checked", True), enforce=True).exit_code() == 6


def test_a_teardown_error_after_a_pass_fails_the_check():
    rr = ReviewReport(SimpleNamespace(stash={}))     # no run: nothing to read a snapshot from
    for r in (report("passed", "setup", tt_article="1.1"), report("passed", "call", tt_article="1.1"),
              report("failed", "teardown", "E boom", tt_article="1.1")):
        rr.pytest_runtest_logreport(r)
    assert rr.checks["tests/t.py::test_x"].verdict == "failed"
    assert rr.verdict_map() == {"1.1": "failed"}


def test_sections_count_each_verdict():
    art = parse_article("## 1. VPC\n- 1.1 A VPC.\n- 1.2 Subnets.\n")
    checks = [Check("a", "1.1", None, False, "passed"), Check("b", "1.2", None, False, "failed"),
              Check("e", "1.2", None, False, "not-checked", "no route"),
              Check("f", "1.2", None, False, "not-applicable", "the installing stage's check"),
              Check("g", "1.1", None, False, "not-applicable", "deselected (-m 'not host')"),
              Check("c", None, None, True, "accepted", "accepted by design: x"),
              Check("d", None, None, True, "not-applicable")]
    html = sections_html(art, checks)
    assert 'id="tt-section-1" data-verdict="failed"' in html
    assert 'id="tt-section-H" data-verdict="accepted"' in html
    row_1 = html.split('id="tt-section-1"', 1)[1].split("</tr>", 1)[0]
    # holds, violated, not checked, not applicable, accepted, advisory, waived, deselected, checks
    assert [int(n) for n in re.findall(r'<td class="n">(\d+)</td>', row_1)] == [1, 1, 1, 1, 0, 0, 0, 1, 5]
    assert "Not applicable (2 skipped, 1 deselected)" in not_applicable_html(checks)


def test_the_summary_counts_article_and_hardening_apart_and_deselected_apart():
    t = Tally()
    for n, (article, hardening, verdict, reason) in enumerate([
            ("1.1", False, "passed", ""), ("1.2", False, "passed", ""), ("1.3", False, "failed", "expected x"),
            ("1.4", False, "not-applicable", "the installing stage's check"),
            ("1.5", False, "not-applicable", "deselected (-m 'api')"),
            (None, True, "passed", ""), (None, True, "advisory", "expected y"),
            (None, True, "not-applicable", "deselected (-m 'api')")]):
        t.entries[str(n)] = Check(str(n), article, None, hardening, verdict, reason)
    assert count_lines(t) == [
        "article checks: 2 hold, 1 violated, 0 not checked",
        "hardening checks (advisory): 1 hold, 1 advisory, 0 accepted by design, 0 not checked",
        "not applicable: 1 skipped (they do not apply to this run), 2 deselected (-m 'api')"]
    t.enforce_hardening = True
    assert count_lines(t)[1].startswith("hardening checks (enforced): 1 hold, 0 violated, 0 accepted by design, "
                                        "0 not checked, 1 advisory")
