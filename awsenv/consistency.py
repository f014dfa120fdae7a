"""EC2's eventual consistency: the answers that mean "not yet", and what a target just made.

AWS, "Eventual consistency in the Amazon EC2 API": the ID a create call returns may not have
propagated when the next call names it, and that call then answers that the resource does not
exist (its examples: InvalidInstanceID.NotFound after RunInstances, for DescribeInstances and for
TerminateInstances too, where it does NOT mean the instance is gone; InvalidGroup.NotFound after
CreateSecurityGroup). Its advice: run the call again with exponential backoff, from a short wait up
to minutes. botocore's standard retry mode retries throttling and transient errors, never these
codes; awsenv/retries.py does, and only where the ID is one the target just created: a NotFound for
anything else is an answer (a wrong ID, or a resource already gone), not a reason to wait.

`Recent` is that memory, one per target (`Target.recent`): the IDs its session created and when
(until a call naming one has succeeded: then it has propagated, and a NotFound means what it says),
and the create calls whose answer never came (interrupted, or a 5xx after the call may have
happened): a rollback waits until a listing can show what such a call made before it trusts the listing.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable

from botocore.exceptions import ClientError

# EC2's codes for an ID it doesn't know (AWS: "Error codes for the Amazon EC2 API"); right after the
# create call that returned the ID, each can mean "not propagated yet" (AWS: "Eventual consistency in
# the Amazon EC2 API" names the first two). DescribeNatGateways and DeleteNatGateway answer
# NatGatewayNotFound, CreateRoute InvalidNatGatewayID.NotFound, for the same NAT gateway;
# CreateNatGateway answers InvalidElasticIpID.NotFound for an address allocated a moment ago
# (terraform-provider-aws #27087, amazon.aws #1872; emulator/EC2-ANSWERS.md lists them all).
NOT_FOUND_AFTER_CREATE = frozenset({
    "InvalidInstanceID.NotFound", "InvalidGroup.NotFound", "InvalidVpcID.NotFound", "InvalidSubnetID.NotFound",
    "InvalidInternetGatewayID.NotFound", "InvalidGatewayID.NotFound", "InvalidRouteTableID.NotFound",
    "InvalidNatGatewayID.NotFound", "NatGatewayNotFound", "InvalidAllocationID.NotFound",
    "InvalidElasticIpID.NotFound", "InvalidNetworkInterfaceID.NotFound", "InvalidKeyPair.NotFound",
})
# What a delete answers while something still holds the resource (a terminated instance's or a
# deleting NAT gateway's network interface, a public address still mapped in the VPC): it goes once
# that is gone. terraform-provider-aws retries these on delete with a deadline too.
DEPENDENCY = frozenset({"DependencyViolation", "InvalidIPAddress.InUse"})
# What ReleaseAddress answers for a NAT gateway's Elastic IP while the gateway (or, right after it
# is deleted, what is left of its interface) still holds it: InvalidIPAddress.InUse (AWS API
# reference "ReleaseAddress"), AuthFailure (terraform-provider-aws #13763) and
# InvalidNetworkInterfaceID.NotFound (terraform-provider-aws #49299). None of them says the address
# is gone: it is still allocated, and billed.
RELEASE_REFUSED = frozenset({"InvalidIPAddress.InUse", "AuthFailure", "InvalidNetworkInterfaceID.NotFound"})
ADDRESS_NOT_FOUND = "InvalidAllocationID.NotFound"
# How long after its create call an ID counts as "just created" (AWS speaks of seconds, at worst minutes).
FRESH_FOR = 600.0
ID_IN_MESSAGE = re.compile(r"\b[a-z]+-[0-9a-f]{8,17}\b")


def error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


class Recent:
    """What one target's session created (ID -> when) and the create calls still in doubt. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._created: dict[str, float] = {}
        self._in_doubt: dict[int, float] = {}
        self._next = 0

    def created(self, resource_id: str) -> None:
        with self._lock:
            self._created.setdefault(resource_id, self._clock())

    def is_fresh(self, resource_id: object) -> bool:
        """Created a moment ago, and not yet named by a call that succeeded."""
        if not isinstance(resource_id, str):
            return False
        with self._lock:
            at = self._created.get(resource_id)
        return at is not None and self._clock() - at < FRESH_FOR

    def unseen(self) -> list[str]:
        """The IDs created a moment ago that no call or listing has named since."""
        with self._lock:
            now = self._clock()
            return [i for i, at in self._created.items() if now - at < FRESH_FOR]

    def seen(self, values: Iterable[object]) -> None:
        """A call naming these succeeded (or a listing showed them): they have propagated."""
        with self._lock:
            for value in leaves(values):
                if isinstance(value, str):
                    self._created.pop(value, None)

    def gave_up(self, resource_id: str) -> None:
        """Waited for it to show until the deadline: from now on a NotFound for it is an answer."""
        with self._lock:
            self._created.pop(resource_id, None)

    def fresh_among(self, values: Iterable[object]) -> list[str]:
        return [v for v in leaves(values) if isinstance(v, str) and self.is_fresh(v)]

    def about_fresh(self, message: str, values: Iterable[object]) -> list[str]:
        """The just-created IDs a NotFound concerns. EC2's message names the ID it didn't find ("The
        vpc ID 'vpc-...' does not exist"); without one, any just-created ID among the call's parameters."""
        named = ID_IN_MESSAGE.findall(message or "")
        return [i for i in named if self.is_fresh(i)] if named else self.fresh_among(values)

    def attempt(self) -> int:
        """A create call is about to be made: in doubt until `answered(token)`."""
        with self._lock:
            self._next += 1
            self._in_doubt[self._next] = self._clock()
            return self._next

    def answered(self, token: int) -> None:
        """Its answer came (the ID, or an error that says nothing was made)."""
        with self._lock:
            self._in_doubt.pop(token, None)

    def in_doubt_since(self) -> float | None:
        """When the oldest create call without an answer was made (None: there is none)."""
        with self._lock:
            return min(self._in_doubt.values()) if self._in_doubt else None


def leaves(values) -> Iterable[object]:
    for value in values:
        if isinstance(value, dict):
            yield from leaves(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            yield from leaves(value)
        else:
            yield value
