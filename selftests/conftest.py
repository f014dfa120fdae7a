"""The project's own tests: they run the verification suite (tests/) as a user would."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The moto-server fixtures (`moto_server`, `aws`) for every test of the aws target.
pytest_plugins = ["selftests.moto_server"]


@pytest.fixture(scope="module")
def plain_lab_api():
    """A lab whose API is plain moto, without the realism layer (TWOTIER_EMULATOR_REALISM=off for
    the daemons a module starts). For the lab's own tests: they build with raw boto3 calls and use
    each new ID at once, which EC2 (and the layer) may answer with NotFound; what they test is the
    data plane. The provisioner meets the layer in test_aws_realism.py and the local end-to-end tests."""
    old = os.environ.get("TWOTIER_EMULATOR_REALISM")
    os.environ["TWOTIER_EMULATOR_REALISM"] = "off"
    yield
    if old is None:
        os.environ.pop("TWOTIER_EMULATOR_REALISM", None)
    else:
        os.environ["TWOTIER_EMULATOR_REALISM"] = old
