"""`provision.py up --target aws` interrupted at 20 points, by SIGINT or SIGTERM; then `down`.

The test-only fault injector (selftests/faults.py) sends the signal to the process itself at a chosen
API call: "before" (the call is never made) or "after" (AWS made the resource, the answer has not
reached our code: the window where only the tags can find it, not the ledger). Every time, the
account must end up with nothing but AWS's default furniture, tagged by us or not.

Every `up` here starts with SIGINT inherited as ignored, as a CI runner's background job starts (a
non-interactive shell's `cmd &`): Python keeps such a SIGINT ignored unless the tool arms it, and
`up` then built on and exited 0 after the Ctrl-C (10 of these failed so under one CI run).
"""
from __future__ import annotations

import pytest

from selftests.moto_server import nothing_left, provision, stderr_lines, up_args

# Tests spread over the workers (selftests/conftest.py):
# each interruption builds in its own tmp state dir on the worker's own moto server.
SPREAD_ACROSS_WORKERS = True

AFTER = ["ec2.ImportKeyPair#1", "ec2.CreateVpc#1", "ec2.CreateSubnet#1",
         "ec2.CreateInternetGateway#1", "ec2.CreateRouteTable#1",
         "ec2.CreateRoute#1", "ec2.CreateSecurityGroup#1", "ec2.CreateSecurityGroup#2",
         "ec2.AllocateAddress#1", "ec2.CreateNatGateway#1",
         "ec2.RunInstances#1", "ec2.RunInstances#2", "ec2.AllocateAddress#2", "ec2.AssociateAddress#1",
         "ec2.CreateRouteTable#2", "ec2.AssociateRouteTable#2"]
BEFORE = ["ssm.GetParameter#2", "ec2.DescribeVpcs#3", "ec2.DescribeInstances#3", "ec2.DescribeNatGateways#2"]
POINTS = [(at, "after") for at in AFTER] + [(at, "before") for at in BEFORE]
CASES = [(at, phase, ("SIGINT", "SIGTERM")[i % 2]) for i, (at, phase) in enumerate(POINTS)]


@pytest.mark.parametrize("at,phase,signal_name", CASES, ids=[f"{s}-{p}-{a}" for a, p, s in CASES])
def test_interrupted_up_then_down_leaves_nothing(aws, tmp_path, at, phase, signal_name):
    log = tmp_path / "faults.log"
    up = provision(aws, tmp_path / "state", *up_args("intr"), start_ignoring_sigint=True,
                   faults={"signal": signal_name, "at": at, "phase": phase, "log": str(log)})
    fired = [line for line in log.read_text().splitlines() if " signal " in line]
    assert fired, f"the signal never fired at {at} ({phase}); calls were:\n{log.read_text()[-3000:]}"
    assert up.returncode == 130, f"expected exit 130 after {signal_name}, found {up.returncode}\n{up.stderr[-2000:]}"
    assert "Traceback" not in up.stderr, up.stderr[-3000:]
    assert stderr_lines(up)[-1] == "interrupted", stderr_lines(up)
    # up removes what it made before exiting; `down` afterwards must find nothing more to do.
    assert not nothing_left(aws), f"left after the interrupted up itself: {nothing_left(aws)}\n{up.stdout[-2000:]}"

    down = provision(aws, tmp_path / "state", "down", "--env", "intr")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not nothing_left(aws), f"left after down: {nothing_left(aws)}"
