"""What the machine has actually done with each instance, for the lab's API: its state gate.

EC2 says `stopped` when the instance is off, `terminated` when it is gone and `running` when it
runs. The lab's API (emulator/realism/, rule instance-states) asks `reached(instance_id, state,
region)` before it shows one of those after a start, stop or terminate, and keeps showing
`pending` / `stopping` / `shutting-down` while the answer is no. The converge loop notes here what
it has done (converge.py: `Converger._note_power`), on its own thread; the API asks on its request
threads. Nothing here calls the API: the converge loop reads the API through the same layer and
must never wait for its own gate.
"""
from __future__ import annotations

import threading

RUNNING = "running"         # its systemd-nspawn runs (the container's systemd boots; sshd may still be starting)
STARTING = "starting"       # its launcher runs but is not systemd-nspawn yet (nothing boots so far)
STOPPED = "stopped"         # no container, its link down: nothing of it answers
OFF = "off"                 # no container, its link still up (a container that died by itself)
ABSENT = "absent"           # nothing of it on this machine: no container, disk or namespace
UNREALISED = "unrealised"   # listed by the API, left alone by the lab (the default VPC's, or rejected)

# What each state the API may show needs the machine to be.
NEEDS = {"running": {RUNNING, UNREALISED}, "stopped": {STOPPED, ABSENT, UNREALISED},
         "terminated": {ABSENT, UNREALISED}}


class PowerRecord:
    def __init__(self, region: str):
        self.region = region
        self._lock = threading.Lock()
        self._machine: dict[str, str] = {}

    def note(self, states: dict[str, str]) -> None:
        """The machine's state of these instances, as of now (the converge thread)."""
        with self._lock:
            self._machine.update(states)

    def machine(self, instance_id: str) -> str | None:
        with self._lock:
            return self._machine.get(instance_id)

    def reached(self, instance_id: str, state: str, region: str) -> bool:
        """Whether the API may show `state` for the instance: the machine has got there, or the lab
        doesn't realise it (another region, the default VPC). An instance no pass has read yet has
        not got anywhere."""
        if region != self.region or state not in NEEDS:
            return True
        return self.machine(instance_id) in NEEDS[state]
