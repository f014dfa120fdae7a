"""EC2's eventual consistency: retries with backoff and a deadline, and what this process just made.

AWS, "Eventual consistency in the Amazon EC2 API": the ID a create call returns may not have
propagated when the next call names it, and that call then answers that the resource does not
exist (its examples: InvalidInstanceID.NotFound after RunInstances, for DescribeInstances and for
TerminateInstances too, where it does NOT mean the instance is gone; InvalidGroup.NotFound after
CreateSecurityGroup). Its advice: run the call again with exponential backoff, from a short wait up
to minutes. botocore's standard retry mode retries throttling and transient errors, never these
codes, so this module does, and only where the ID is one this process just created: a NotFound for
anything else is an answer (a wrong ID, or a resource already gone), not a reason to wait.

`RECENT` remembers, for this process, the IDs it created and when (until a call naming one has
succeeded: then it has propagated, and a NotFound means what it says), and the create calls whose
answer never came (interrupted, or a 5xx after the call may have happened): a rollback waits until
a listing can show what such a call made before it trusts the listing.
"""
from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")

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
_ID_IN_MESSAGE = re.compile(r"\b[a-z]+-[0-9a-f]{8,17}\b")


def error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


class Recent:
    """What this process created (ID -> when) and the create calls still in doubt. Thread-safe."""

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
        """Created by this process a moment ago, and not yet named by a call that succeeded."""
        if not isinstance(resource_id, str):
            return False
        with self._lock:
            at = self._created.get(resource_id)
        return at is not None and self._clock() - at < FRESH_FOR

    def seen(self, values: Iterable[object]) -> None:
        """A call naming these succeeded (or a listing showed them): they have propagated."""
        with self._lock:
            for value in _leaves(values):
                if isinstance(value, str):
                    self._created.pop(value, None)

    def any_fresh(self, values: Iterable[object]) -> bool:
        return any(self.is_fresh(v) for v in _leaves(values))

    def about_fresh(self, exc: ClientError, values: Iterable[object]) -> bool:
        """Does this NotFound concern an ID this process just created? EC2's message names the ID it
        didn't find ("The vpc ID 'vpc-...' does not exist"); without one, any just-created ID among
        the call's parameters counts."""
        named = _ID_IN_MESSAGE.findall(exc.response.get("Error", {}).get("Message") or "")
        return any(self.is_fresh(i) for i in named) if named else self.any_fresh(values)

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

    def gone(self, resource_id: str) -> None:
        """This process deleted it (the article's last step): a NotFound for it now means gone."""
        with self._lock:
            self._created.pop(resource_id, None)

    def forget(self) -> None:
        with self._lock:
            self._created.clear()
            self._in_doubt.clear()


RECENT = Recent()


def _leaves(values) -> Iterable[object]:
    for value in values:
        if isinstance(value, dict):
            yield from _leaves(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            yield from _leaves(value)
        else:
            yield value


def retry_codes(call: Callable[[], T], codes: Iterable[str], timeout: float, *, first: float = 0.25,
                cap: float = 5.0, what: str = "", progress: Callable[[str], object] | None = None,
                only_if: Callable[[ClientError], bool] | None = None,
                sleep: Callable[[float], object] = time.sleep, clock: Callable[[], float] = time.monotonic) -> T:
    """call() again while it answers one of `codes` (and `only_if(error)` holds, when given), with
    exponential backoff (from `first`, doubling, at most `cap`, each wait jittered to 50-100%) until
    `timeout` seconds have passed; then the last ClientError is raised as it came. Any other error is
    raised at once."""
    codes = frozenset(codes)
    start = clock()
    delay = first
    said = False
    while True:
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if code not in codes or (only_if is not None and not only_if(exc)):
                raise
            remaining = timeout - (clock() - start)
            if remaining <= 0:
                raise
            if progress and not said and what and clock() - start >= 2 * cap:
                progress(f"  {what}: {code}, retrying for up to {timeout:.0f}s")
                said = True
            sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
            delay = min(cap, delay * 2)


def retry_not_found(call: Callable[[], T], timeout: float, **kwargs) -> T:
    """call() again while EC2 answers that a just-created ID doesn't exist (see the module's doc)."""
    return retry_codes(call, NOT_FOUND_AFTER_CREATE, timeout, **kwargs)


def release_address(ec2, allocation_id: str, timeout: float, *, first: float = 0.25, cap: float = 5.0,
                    progress: Callable[[str], object] | None = None, sleep: Callable[[float], object] = time.sleep,
                    clock: Callable[[], float] = time.monotonic) -> None:
    """ReleaseAddress, retried with backoff within `timeout` while EC2 answers that the address is
    still held (RELEASE_REFUSED); returns once it is released or truly gone. InvalidAllocationID.NotFound
    counts as gone only when DescribeAddresses agrees and the address isn't one this process just
    allocated (eventual consistency: then it means "not yet"); otherwise it is retried too. After
    the deadline the last ClientError is raised as it came: the address may still be billed."""
    def attempt() -> None:
        try:
            ec2.release_address(AllocationId=allocation_id)
        except ClientError as exc:
            if error_code(exc) == ADDRESS_NOT_FOUND and not RECENT.is_fresh(allocation_id) \
                    and not _address_listed(ec2, allocation_id):
                return      # gone: released earlier (by us, or someone else)
            raise
    retry_codes(attempt, RELEASE_REFUSED | {ADDRESS_NOT_FOUND}, timeout, first=first, cap=cap,
                what=f"release Elastic IP {allocation_id}", progress=progress, sleep=sleep, clock=clock)
    RECENT.gone(allocation_id)


def _address_listed(ec2, allocation_id: str) -> bool:
    """Does DescribeAddresses still list it? (By filter: naming it by ID would answer NotFound too.)"""
    found = ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [allocation_id]}])["Addresses"]
    return any(a.get("AllocationId") == allocation_id for a in found)
