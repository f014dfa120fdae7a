"""Article section 5: tearing down deletes the NAT gateway, releases every Elastic IP, leaves nothing."""
import pytest


@pytest.mark.api
@pytest.mark.teardown
@pytest.mark.article("5.1")
@pytest.mark.fails_on("foreign-subnet-blocks-teardown")
def test_teardown_leaves_nothing(tear_down, evidence):
    left = tear_down()
    evidence("after teardown", left.lines() or ["nothing tagged with the environment is left"])
    assert not left, "expected nothing left after teardown, found:\n" + "\n".join(left.lines())
