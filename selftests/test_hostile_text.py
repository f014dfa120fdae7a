"""Text from the API is data (DESIGN.md, "Trust"): tags, group names, key pair names and rule
descriptions are written by whoever may tag or name a resource, and they reach the terminal, the
report and junit only neutralised (common/display.py).

Reproduced as an attacker once: a VPC Name tag holding newlines, a fake line "=== 48 passed: every
property holds (exit 0) ===", U+009B (a one-character CSI) and U+202E (right-to-left override),
checked with --vpc-id: the terminal printed the fake line as a line of its own with the control
characters, the report's heading showed the fake verdict while the real one rendered reversed, and
a 10,000-character Name was one terminal line. Here the same tag goes on the VPC, the instances, the
groups and the subnets, a group with such a name is let into MariaDB (so 4.2's message quotes it), a
key pair gets such a name and a rule such a description. Plain moto server on 127.0.0.1 (the
environment is built by hand, call after call, as test_external_env.py builds it).
"""
from __future__ import annotations

import re
from html import unescape

import pytest

from common.display import ELLIPSIS, NAME, for_report, for_terminal
from selftests.suite_runner import run_suite
from selftests.test_external_env import build_article_by_hand, tcp

FAKE = "=== 48 passed: every property holds (exit 0) ==="
# No ESC or other C0 control but the line breaks: XML 1.0 can't carry them, so no EC2 answer holds
# them (botocore would fail to parse it: "could not check"). U+009B, XML's C1 range, it can.
EVIL = f"prod\n{FAKE}\n\u009b2J\u009b31m\u202eesrever\u2028" + "A" * 10000
RAW = {"U+202E": "\u202e", "U+009B": "\u009b", "ESC": "\x1b", "U+2028": "\u2028"}
LONG = "A" * 200        # a 10,000-character name is capped far below this
SCRIPT = "<script>alert(1)</script>"


def _hostile(server) -> dict:
    built = build_article_by_hand(server)
    ec2, vpc = built["ec2"], built["vpc"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]]
    ec2.create_tags(Resources=[vpc, built["web"], built["db"], built["web_sg"], built["db_sg"], *subnets],
                    Tags=[{"Key": "Name", "Value": EVIL}])
    intruder = ec2.create_security_group(GroupName=EVIL[:255], Description="not the web server", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=built["db_sg"], IpPermissions=[
        tcp(3306, UserIdGroupPairs=[{"GroupId": intruder, "Description": EVIL[:255]}])])
    ec2.authorize_security_group_ingress(GroupId=built["web_sg"], IpPermissions=[
        tcp(443, IpRanges=[{"CidrIp": "198.51.100.0/24", "Description": EVIL[:255]}])])
    ec2.create_key_pair(KeyName=EVIL[:255], KeyType="ed25519")
    ec2.create_key_pair(KeyName=SCRIPT, KeyType="ed25519")      # listed in 2.4's evidence
    return built


def _no_raw_text(where: str, text: str) -> None:
    for name, ch in RAW.items():
        assert ch not in text, f"{name} reached the {where} raw"
    assert LONG not in text, f"a 10,000-character name reached the {where} uncapped"


def test_hostile_names_reach_terminal_report_and_junit_only_neutralised(tmp_path, plain_aws):
    built = _hostile(plain_aws)
    html, junit = tmp_path / "report.html", tmp_path / "junit.xml"
    v = run_suite(tmp_path, "--target", "aws", "--vpc-id", built["vpc"], "--web", built["web"], "--db", built["db"],
                  f"--state-dir={tmp_path / 'state'}", f"--html={html}", "--self-contained-html", env=plain_aws.env())
    # The intruder group is a real violation (4.2), quoted in its message: the verdicts stay honest.
    assert v.returncode == 1 and "test_db_allows_only_the_web_server[mariadb]" in v.failed, v.output[-3000:]

    # The terminal: no fake line, no control or bidi character, no endless line; one verdict, ours.
    _no_raw_text("terminal", v.output)
    lines = v.output.splitlines()
    assert not [line for line in lines if line.lstrip().startswith("=== 48 passed")], "the tag printed a line of its own"
    assert [line for line in lines if line.startswith("verdict:")] == [
        "verdict: out of compliance (a property is violated) (exit 1)"]
    said = next(line for line in lines if line.startswith("environment "))
    assert said.startswith(f"environment VPC {built['vpc']} (Name: prod\\n=== 48 passed"), said
    assert "\\x9b31m\\u202e" in said and ELLIPSIS in said and len(said) < 300, said

    # The report: its heading names the VPC by ID, the tag beside it; the verdict is the real one.
    report = html.read_text(encoding="utf-8")
    _no_raw_text("report", report)
    heading = unescape(re.search(r'<h1 id="title">(.*?)</h1>', report, re.S).group(1))
    assert heading.startswith(f"Two-tier environment VPC {built['vpc']} (Name: prod\\n{FAKE}\\n\\x9b2J\\x9b31m"), heading
    assert 'id="tt-outcome" data-exit="1">Verdict: a property is violated (exit 1).' in report
    assert SCRIPT not in report and "&lt;script&gt;alert(1)&lt;/script&gt;" in report, "markup from a name reached the report"

    # junit: the violated check's message quotes the group's name, neutralised.
    xml = junit.read_text(encoding="utf-8")
    _no_raw_text("junit XML", xml)
    assert "\\x9b31m\\u202e" in unescape(xml)


def test_for_terminal_shows_every_control_format_and_separator_character_escaped():
    assert for_terminal("a\nb\r\tc") == "a\\nb\\r\\tc"
    assert for_terminal("\x1b[31m\x7f\x9b\x85") == "\\x1b[31m\\x7f\\x9b\\x85"
    bidi = "".join(chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C])
    assert for_terminal(bidi, None) == "".join(f"\\u{ord(c):04x}" for c in bidi)
    assert for_terminal("x\u2028y\u2029z\u200bw\ufeff") == "x\\u2028y\\u2029z\\u200bw\\ufeff"
    # Everything else stays as it is: names in any script, spaces of any width.
    assert for_terminal("ウェブサーバー 1\u3000台 café") == "ウェブサーバー 1\u3000台 café"


def test_names_are_capped_with_an_ellipsis():
    shown = for_terminal("A" * 10000)
    assert len(shown) == NAME and shown.endswith(ELLIPSIS)
    assert for_terminal("A" * NAME) == "A" * NAME
    assert for_terminal("A" * 10000, None) == "A" * 10000


@pytest.mark.parametrize("text", [EVIL, "a\u202eb\nc\u009bd"])
def test_report_text_keeps_only_its_own_line_breaks(text):
    single = for_report(text)
    assert "\n" not in single and "\u202e" not in single
    kept = for_report(text, multiline=True)
    assert kept.count("\n") == text.count("\n") and "\u202e" not in kept and "\u009b" not in kept
