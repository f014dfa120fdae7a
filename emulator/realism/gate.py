"""The state gate: an instance's transitional state lasts until whoever serves the layer says its
machine has got there.

On EC2 `stopped` means the instance is off, `terminated` that it is gone and `running` that it runs
(its sshd may still be starting). A layer alone can only time the states; a server that also runs
the instances (the lab: a container per instance) hands the layer `reached(instance_id, state,
region)`, and rule instance-states keeps answering `pending` / `stopping` / `shutting-down` while
it says no. Never for ever: after `bound` seconds from the call the API shows moto's state anyway
and says so once through `log` (a container that crashed must not make the API lie for ever).

`reached` is called on the API's request threads, never while the layer holds a lock: it must
answer from what the server has recorded, at once, without calling the API (whose converge loop
reads the API through this same layer).
"""
from __future__ import annotations

import threading
from collections.abc import Callable

# Longer than anything the lab does to one instance in one converge pass (a boot waits up to 30 s
# for sshd, a poweroff up to 20 s), far shorter than a waiter's patience (botocore: 10 min).
DEFAULT_BOUND = 60.0


class StateGate:
    def __init__(self, reached: Callable[[str, str, str], bool], bound: float = DEFAULT_BOUND,
                 log: Callable[[str], None] = print):
        if bound <= 0:
            raise ValueError("a state gate's bound must be positive")
        self._reached = reached
        self.bound = bound
        self._log = log
        self._lock = threading.Lock()
        self._said: set[tuple] = set()

    def reached(self, instance_id: str, state: str, region: str, since: float, now: float) -> bool:
        """True once the server says the instance is `state`, or `bound` seconds after the call
        made at `since` (then logged once); a `reached` that raises counts as yes (logged)."""
        try:
            if self._reached(instance_id, state, region):
                return True
        except Exception as exc:  # noqa: BLE001 - the server's fault must not stop the API answering
            self._say((instance_id, since, "error"),
                      f"state gate: asking whether {instance_id} is {state} failed ({type(exc).__name__}: {exc}); "
                      f"the API shows {state}")
            return True
        if now - since < self.bound:
            return False
        self._say((instance_id, since, "bound"),
                  f"state gate: instance {instance_id} is not {state} on this machine {self.bound:.0f}s after "
                  f"the call; the API shows {state} anyway")
        return True

    def _say(self, key: tuple, message: str) -> None:
        with self._lock:
            if key in self._said:
                return
            self._said.add(key)
        self._log(message)
