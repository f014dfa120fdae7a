"""Article section 5: tearing down deletes the NAT gateway, releases every Elastic IP, leaves nothing."""
import pytest


@pytest.mark.api
@pytest.mark.teardown
@pytest.mark.article("5.1")
def test_teardown_leaves_nothing(run, evidence):
    if not run.provision:
        pytest.skip("checks an environment it did not build: tearing it down is not this run's to do")
    if run.keep:
        pytest.skip("--keep: the environment stays (remove it with `python provision.py down`)")
    left = run.tear_down()
    evidence("after teardown", left.lines() or ["nothing tagged with the environment is left"])
    assert not left, "expected nothing left after teardown, found:\n" + "\n".join(left.lines())
