"""One way to retry an AWS call: decided on the target's botocore session (its `needs-retry` event).

botocore's standard retry mode (every target's client) retries throttling and transient errors.
EC2 also answers "not yet" in ways standard mode never retries; `Retries` decides those for every
client of the target, in Terratest's retry.DoWithRetry shape: each retry says in one line what it
waits for, each has a bounded deadline, and every other answer is final at once. Retried:

- a NotFound of NOT_FOUND_AFTER_CREATE, while the ID it concerns is one the target created a moment
  ago: until consistency_timeout after the call began;
- IncorrectInstanceState of StartInstances / StopInstances (the instance is mid state change): until
  state_change_timeout after the call began;
- inside `waiting_out_dependencies()` (a teardown, the article's last step), until that scope's one
  deadline: DependencyViolation and InvalidIPAddress.InUse (something still holds the resource);
  ReleaseAddress's AuthFailure and InvalidNetworkInterfaceID.NotFound (the NAT gateway's interface
  still holds the address), and its InvalidAllocationID.NotFound while DescribeAddresses still lists it;
- no answer at all (refused, timed out): botocore's standard retries, each named at once, given up
  after NO_ANSWER_ATTEMPTS attempts.

The same events keep the target's memory of what it just made (`Target.recent`,
awsenv/consistency.py): the IDs a create call's answer names, the IDs a call that succeeded named
(they have propagated), and the create calls whose answer has not come (in doubt).
"""
from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import ReadTimeoutError

from .consistency import ADDRESS_NOT_FOUND, DEPENDENCY, NOT_FOUND_AFTER_CREATE, RELEASE_REFUSED
from .errors import EnvError

if TYPE_CHECKING:
    from .targets.base import Target

NO_ANSWER_ATTEMPTS = 4
# The create calls, and the IDs each one's answer names (what it made).
CREATED: dict[str, Callable[[dict], list]] = {
    "CreateVpc": lambda r: [r["Vpc"]["VpcId"]],
    "CreateSubnet": lambda r: [r["Subnet"]["SubnetId"]],
    "CreateInternetGateway": lambda r: [r["InternetGateway"]["InternetGatewayId"]],
    "CreateRouteTable": lambda r: [r["RouteTable"]["RouteTableId"]],
    "CreateSecurityGroup": lambda r: [r["GroupId"]],
    "CreateNatGateway": lambda r: [r["NatGateway"]["NatGatewayId"]],
    "AllocateAddress": lambda r: [r["AllocationId"]],
    "RunInstances": lambda r: [i["InstanceId"] for i in r["Instances"]],
    "ImportKeyPair": lambda r: [r["KeyName"], r.get("KeyPairId")],
}
MID_CHANGE = ("StartInstances", "StopInstances")
# Keys of botocore's per-call context (one dict from the call's parameters to its answer).
_PARAMS, _STARTED, _RETRIES, _DOUBT, _MAYBE_MADE = (f"twotier_{k}" for k in
                                                     ("params", "started", "retries", "doubt", "maybe_made"))


class Retries:
    """The target's retry decisions and its memory of what it made, as handlers of its session's events."""

    def __init__(self, target: Target, say: Callable[[str], object] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.target = target
        self.say = say or (lambda line: print(line, flush=True))
        self._clock = clock
        self._lock = threading.Lock()
        self._dependency_scope: list | None = None     # [its timeout, its deadline once started]

    def install(self, events) -> None:
        events.register_first("needs-retry", self._no_answer)
        events.register("before-parameter-build.ec2", self._keep_params)
        events.register("before-call.ec2", self._before_call)
        events.register("needs-retry.ec2", self._needs_retry)
        events.register("after-call.ec2", self._after_call)

    @contextlib.contextmanager
    def waiting_out_dependencies(self, timeout: float):
        """Within it, answers that say something still holds the resource are retried, all of them
        until one deadline: `timeout` seconds after the first such answer (a teardown's deletes share
        one budget, which its waits for instances and NAT gateways before them don't use up)."""
        with self._lock:
            outer = self._dependency_scope
            if outer is None:
                self._dependency_scope = [timeout, None]
        try:
            yield
        finally:
            if outer is None:
                with self._lock:
                    self._dependency_scope = None

    def _dependency_deadline(self) -> float | None:
        with self._lock:
            scope = self._dependency_scope
            if scope is None:
                return None
            if scope[1] is None:
                scope[1] = self._clock() + scope[0]
            return scope[1]

    # -- the memory ---------------------------------------------------------------------------------
    def _keep_params(self, params=None, context=None, **_):
        if context is not None:
            context[_PARAMS] = dict(params or {})

    def _before_call(self, model=None, context=None, **_):
        context[_STARTED] = self._clock()
        if model.name in CREATED:
            context[_DOUBT] = self.target.recent.attempt()

    def _after_call(self, http_response=None, parsed=None, model=None, context=None, **_):
        recent = self.target.recent
        status = getattr(http_response, "status_code", 500)
        if status < 300:
            # Named by a call that succeeded: propagated. (Not a filter's values: a filtered Describe
            # answers an empty list, never NotFound, so its success proves nothing.)
            recent.seen(v for k, v in context.get(_PARAMS, {}).items() if k != "Filters")
            if model.name in CREATED:
                for made in CREATED[model.name](parsed or {}):
                    if made:
                        recent.created(made)          # "not found" for a while means "not yet", not "gone"
        # A create call's answer came: nothing more was made than it says, unless an earlier attempt
        # was answered by a 5xx or not at all (it may have happened; botocore then tried again).
        if _DOUBT in context and status < 500 and not context.get(_MAYBE_MADE):
            recent.answered(context[_DOUBT])

    # -- the decisions --------------------------------------------------------------------------------
    def _needs_retry(self, response=None, caught_exception=None, request_dict=None, operation=None, **_):
        context = (request_dict or {}).get("context", {})
        if caught_exception is not None or response is None:
            context[_MAYBE_MADE] = True
            return None
        http, parsed = response
        if http.status_code >= 500:
            context[_MAYBE_MADE] = True
        error = parsed.get("Error", {}) if isinstance(parsed, dict) else {}
        code = error.get("Code")
        if not code:
            return None
        decision = self._not_yet(operation.name, code, error.get("Message") or "", context)
        if decision is None:
            return None
        what, deadline = decision
        now = self._clock()
        if now >= deadline:
            return None
        n = context[_RETRIES] = context.get(_RETRIES, 0) + 1
        t = self.target
        delay = min(deadline - now, min(t.poll_delay, t.retry_first * 2 ** (n - 1)) * random.uniform(0.5, 1.0))
        self.say(f"  {operation.name}: {code}, waiting for {what}: retry {n} in {delay:.1f}s "
                 f"(gives up {deadline - now:.0f}s from now)")
        return delay

    def _not_yet(self, op: str, code: str, message: str, context: dict) -> tuple[str, float] | None:
        """(what the answer waits for, when to stop) for an answer that means "not yet", else None."""
        t = self.target
        params = context.get(_PARAMS, {})
        started = context.get(_STARTED, self._clock())
        if code in NOT_FOUND_AFTER_CREATE:
            fresh = t.recent.about_fresh(message, params.values())
            if fresh:
                return f"{', '.join(fresh)} to propagate after its create call", started + t.consistency_timeout
        if code == "IncorrectInstanceState" and op in MID_CHANGE:
            # AWS, "Amazon EC2 instance state changes": a stopping instance can be started once it is
            # stopped; one that never reached `running` can't be stopped yet.
            return "the instance to finish its state change", started + t.state_change_timeout
        if self._dependency_scope is None or not (code in DEPENDENCY or op == "ReleaseAddress"):
            return None
        deadline = self._dependency_deadline()
        if deadline is None:
            return None
        if code in DEPENDENCY:
            return "what still holds it to let go", deadline
        if op == "ReleaseAddress" and code in RELEASE_REFUSED:
            return "its NAT gateway to let go of the address", deadline
        if op == "ReleaseAddress" and code == ADDRESS_NOT_FOUND and address_listed(t.ec2, params.get("AllocationId")):
            return "the address EC2 still lists to be released", deadline
        return None

    def _no_answer(self, attempts=0, caught_exception=None, request_dict=None, **_):
        """A dead or hung endpoint is named at once, and given up after NO_ANSWER_ATTEMPTS tries."""
        if not isinstance(caught_exception, (BotoConnectionError, ReadTimeoutError)):
            return None
        url = (request_dict or {}).get("url", "").split("?")[0] or self.target.endpoint_url() or "the AWS API"
        print(f"no answer from {url} (attempt {attempts} of {NO_ANSWER_ATTEMPTS}): {caught_exception}",
              file=sys.stderr, flush=True)
        if attempts >= NO_ANSWER_ATTEMPTS:
            raise EnvError(f"no answer from {url} after {attempts} attempts ({caught_exception})")
        return None


def address_listed(ec2, allocation_id: object) -> bool:
    """Does DescribeAddresses still list it? (By filter: naming it by ID would answer NotFound too.)"""
    if not isinstance(allocation_id, str):
        return False
    found = ec2.describe_addresses(Filters=[{"Name": "allocation-id", "Values": [allocation_id]}])["Addresses"]
    return any(a.get("AllocationId") == allocation_id for a in found)
