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


@pytest.hookimpl(tryfirst=True)     # before xdist's own hook, which reads the groups into the node IDs
def pytest_collection_modifyitems(items):
    """Which tests may run on different workers (`-n 4 --dist loadgroup`, as README and CI run them).

    A module's tests stay together on one worker (its module fixtures, labs and env names are its
    own) unless the module says `SPREAD_ACROSS_WORKERS = True`: its tests share nothing but the
    worker's own moto server and their tmp_path. A test may name its own group with
    @pytest.mark.xdist_group(name) (test_local_target: one group per kept environment)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if not getattr(item.module, "SPREAD_ACROSS_WORKERS", False):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
