"""The report opens offline in a real browser (Debian's headless Chromium) with its summary,
picture, inventory and per-check properties, and a screenshot is kept for a person to look at.

The report is built by the JavaScript pytest-html ships inside it, so only a browser shows what a
reviewer sees: the results rows, for instance, exist only after that script ran.
"""
import re
import shutil
import struct
import subprocess

import pytest

from selftests.suite_runner import REPO, run_suite

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Offline and private: no component updates, sync, first-run pages or background fetches, and a
# fresh profile each time, so nothing from an earlier run leaks in and nothing leaves the machine.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = REPO / "reports" / "report.png"
WINDOW = (1400, 2000)

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="needs Debian's chromium package (/usr/bin/chromium)")


def chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    html = tmp / "report.html"
    v = run_suite(tmp, "--target", "moto", "--provision", "--state-dir", str(tmp),
                  f"--html={html}", "--self-contained-html")
    assert v.returncode == 0 and html.exists(), v.output[-3000:]
    return tmp, html, v


def test_report_is_one_self_contained_file(report):
    _, html, _ = report
    text = html.read_text(encoding="utf-8")
    # No stylesheet, script, image or frame is fetched from anywhere: it must open offline.
    assert not re.search(r"<(link|script|img|iframe)[^>]+(href|src)=\"(?!data:|\")", text), "external resource found"
    assert "<svg" in text and 'id="tt-diagram"' in text


def test_browser_shows_summary_picture_inventory_and_properties(report, tmp_path):
    _, html, v = report
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    for element in ("tt-summary", "tt-section-1", "tt-section-2", "tt-section-3", "tt-section-4", "tt-section-5",
                    "tt-section-H", "tt-failures", "tt-accepted", "tt-diagram", "tt-inventory", "tt-addresses"):
        assert f'id="{element}"' in dom, f"expected #{element} in the rendered report"
    for part in ("vpc", "public-subnet", "private-subnet", "igw", "nat", "web", "db", "path-internet-web-80",
                 "path-web-db-3306", "path-db-nat-internet"):
        assert f'id="tt-part-{part}" data-verdict="passed"' in dom, f"expected part {part} drawn as proven"
    # Rows are rendered by the report's own script: the property column proves it ran.
    rows = re.findall(r'<td class="col-property">(.*?)</td>', dom)
    checks = v.passed | v.skipped | v.failed | getattr(v, "xfailed", set())
    assert len(rows) == len(checks), f"expected one row with a property per check ({len(checks)}), found {len(rows)}"
    assert any(r.startswith("<b>1.4</b> The public subnet is associated with a route table") for r in rows)
    assert any("ACCEPTED" in r and "accepted by design:" in r for r in rows)
    assert 'class="tt-evidence"' in dom and "0.0.0.0/0" in dom
    # The inventory lists what the run found (moto's IDs change every run, so match their shape).
    inventory = dom.split('id="tt-inventory"', 1)[1]
    for shape in (r"vpc-[0-9a-f]{8,}", r"nat-[0-9a-f]{8,}", r"igw-[0-9a-f]{8,}", r"eipalloc-[0-9a-f]{8,}",
                  r"\.compute-1\.amazonaws\.com|\.compute\.amazonaws\.com|\.ec2\.internal"):
        assert re.search(shape, inventory), f"expected {shape} in the inventory"


def test_browser_screenshot_is_saved(report, tmp_path):
    _, html, _ = report
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.unlink(missing_ok=True)
    chromium(tmp_path, f"--screenshot={SCREENSHOT}", f"--window-size={WINDOW[0]},{WINDOW[1]}", html.as_uri())
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "expected a PNG screenshot"
    assert struct.unpack(">II", data[16:24]) == WINDOW
    # A blank page compresses to a few kB; the summary and the picture make it far larger.
    assert len(data) > 100_000, f"expected a screenshot with content, found {len(data)} bytes"
