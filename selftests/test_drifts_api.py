"""Every API drift, applied to a good environment on the moto target, fails exactly its checks
(hardening enforced, so its findings count; both of the article's stages proven in turn)."""
import pytest

from awsenv.provisioning.drifts import BY_NAME, CATALOGUE
from selftests.expectations import checks, expected_failures
from selftests.suite_runner import run_suite

# Tests spread over the workers (selftests/conftest.py):
# each drift builds its own in-process moto environment.
SPREAD_ACROSS_WORKERS = True

API_DRIFTS = [d for d in CATALOGUE if not d.needs_hosts]


def test_markers_name_real_drifts_and_every_check_has_one():
    named = {d for c in checks().values() for d in c.fails_on | c.fails_on_with_hosts}
    assert named <= set(BY_NAME), f"markers name drifts the catalogue doesn't have: {sorted(named - set(BY_NAME))}"
    without = sorted(name for name, c in checks().items() if not (c.fails_on or c.fails_on_with_hosts))
    assert not without, f"checks that no drift makes fail (a check that can't fail proves nothing): {without}"
    unused = sorted(set(BY_NAME) - named)
    assert not unused, f"drifts that no check catches: {unused}"


def test_good_environment_passes_every_api_check(tmp_path):
    v = run_suite(tmp_path, "--target", "moto", "--provision", "--state-dir", str(tmp_path), "--hardening=enforce")
    assert v.returncode == 0 and not v.failed, v.output[-3000:]
    assert not v.not_checked, f"expected every API check to look, found not checked: {sorted(v.not_checked)}"
    assert len(v.passed) >= 20, f"expected the API checks to run, found {len(v.passed)} passed"


@pytest.mark.parametrize("drift", API_DRIFTS, ids=[d.name for d in API_DRIFTS])
def test_drift_fails_exactly_its_checks(tmp_path, drift):
    v = run_suite(tmp_path, "--target", "moto", "--provision", "--state-dir", str(tmp_path), "--drift", drift.name,
                  "--hardening=enforce")
    expected = expected_failures(drift.name, host_access=False)
    assert v.failed == expected, (
        f"drift {drift.name}: expected failures {sorted(expected)}, found {sorted(v.failed)}\n"
        f"unexpected: {sorted(v.failed - expected)}; missing: {sorted(expected - v.failed)}\n{v.output[-2000:]}")
    assert v.returncode == 1
