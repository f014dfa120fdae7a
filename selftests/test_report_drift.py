"""A drifted environment: the report lists the failure and the picture colours the broken part.

Runs the suite on moto with one drift from the catalogue and reads the written report (the
summary and the picture are rendered into the file, no browser needed for them).
"""
import re

from selftests.suite_runner import run_suite


def part_verdicts(html: str) -> dict[str, str]:
    return dict(re.findall(r'id="tt-part-([\w-]+)" data-verdict="(\w+)"', html))


def test_lost_public_default_route_colours_the_public_route_red(tmp_path):
    html = tmp_path / "report.html"
    v = run_suite(tmp_path, "--target", "moto", "--provision", "--state-dir", str(tmp_path),
                  "--drift", "public-default-route-removed", f"--html={html}", "--self-contained-html")
    assert v.returncode == 1 and "test_public_subnet_routes_default_to_igw" in v.failed, v.output[-3000:]
    text = html.read_text(encoding="utf-8")
    parts = part_verdicts(text)
    # 1.4 fails (no default route) and so does 2.1 (the web server is no longer in a public subnet).
    assert {p for p, verdict in parts.items() if verdict == "failed"} == {"public-route", "igw", "web"}
    assert parts["vpc"] == parts["private-route"] == parts["db"] == parts["nat"] == "passed"
    # The route table is drawn as the snapshot holds it: the local route only.
    route_box = text.split('id="tt-part-public-route"', 1)[1].split("</g>", 1)[0]
    assert "0.0.0.0/0" not in route_box and "local" in route_box
    failures = text.split('id="tt-failures"', 1)[1].split("</div>", 1)[0]
    assert "<b>1.4</b> test_public_subnet_routes_default_to_igw: AssertionError: expected 0.0.0.0/0 in" in failures
    assert re.search(r'id="tt-section-1" data-verdict="failed"', text)
    assert re.search(r'id="tt-section-4" data-verdict="passed"', text)
