"""instance-states: `pending` before `running`, `stopping` before `stopped`, `shutting-down` before
`terminated`; an instance mid-change refuses to be stopped or started.

Source: AWS "State change events for Amazon EC2 instances" and "Amazon EC2 instance state changes"
(launch or start -> pending -> running; stop -> stopping -> stopped; terminate -> shutting-down ->
terminated); "Error codes for the Amazon EC2 API" (IncorrectInstanceState: "Instance '...' cannot
be stopped as it has never reached the 'running' state"). AssociateAddress to a pending instance:
InvalidInstanceID "The pending instance 'i-...' is not in a valid state for this operation."
(terraform-provider-aws retries it: internal/service/ec2/ec2_eip.go associateEIP). DescribeInstanceStatus lists only running
instances unless IncludeAllInstances is true (API reference). terraform-provider-aws waits the
states out (internal/service/ec2/wait.go: WaitInstanceCreated pending -> running, and the stopped /
deleted waits); amazon.aws retries IncorrectState (plugins/module_utils/ec2.py
EC2_INSTANCE_CATCH_EXTRA_CODES) and waits with boto3's waiters (plugins/modules/ec2_instance.py).

Rate: every launch, start, stop and terminate, for `Timings.instance_pending` / `_stopping` /
`_shutting_down` seconds (AWS: ~10-60 s pending, ~30-120 s stopping or shutting down) and, where
the server gave the layer a state gate (gate.py: the lab), until its machine is there: on EC2
`stopped` means off, `terminated` gone, `running` running (sshd may still be starting).
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from ..memory import INSTANCE_CALLS, STATE_CODES, Snapshot
from .base import Rule

STATE_FILTERS = {"instance-state-name", "instance-state-code"}


class InstanceStates(Rule):
    name = "instance-states"
    after_actions = frozenset({"DescribeInstances", "DescribeInstanceStatus", *INSTANCE_CALLS})

    def before(self, req, now):
        if req.action in ("StartInstances", "StopInstances"):
            self._refuse_wrong_state(req, now)
        if req.action == "AssociateAddress" and req.get("InstanceId"):
            self._refuse_pending_association(req, now)
        if req.action in ("DescribeInstances", "DescribeInstanceStatus"):
            removed = req.strip_filters(STATE_FILTERS)
            if removed:
                req.notes["instance_state_filters"] = removed

    def _refuse_wrong_state(self, req, now):
        backend = self.backend(req)
        starting = req.action == "StartInstances"
        for iid in req.values("InstanceId"):
            try:
                moto_state = backend.get_instance(iid)._state.name
            except Q.moto_errors():
                continue
            state = self.memory.instance_state(iid, moto_state, now)
            if starting and state in ("stopping", "shutting-down", "terminated"):
                raise Ec2Error(self.name, "IncorrectInstanceState",
                               f"The instance '{iid}' is not in a state from which it can be started.")
            if not starting and state in ("pending", "shutting-down", "terminated"):
                change = self.memory.instances.get(iid)
                if state == "pending" and change is not None and change.kind == "launch":
                    message = f"Instance '{iid}' cannot be stopped as it has never reached the 'running' state."
                else:
                    message = f"The instance '{iid}' is not in a state from which it can be stopped."
                raise Ec2Error(self.name, "IncorrectInstanceState", message)

    def _refuse_pending_association(self, req, now):
        iid = req.get("InstanceId")
        try:
            moto_state = self.backend(req).get_instance(iid)._state.name
        except Q.moto_errors():
            return
        if self.memory.instance_state(iid, moto_state, now) == "pending":
            raise Ec2Error(self.name, "InvalidInstanceID",
                           f"The pending instance '{iid}' is not in a valid state for this operation.")

    def after(self, req, doc, now):
        if req.action in INSTANCE_CALLS:
            self._previous_states(req, doc)
        else:
            self._rewrite_states(req, doc, now)

    def _previous_states(self, req, doc):
        """previousState: the state the instance left as EC2 showed it (e.g. pending, not moto's
        running, for an instance terminated during launch)."""
        before: dict[str, Snapshot] = req.notes.get("before", {})
        for item in Q.walk(doc.root, ("instancesSet", "item")):
            iid = Q.text(item, "instanceId")
            snap = before.get(iid) if iid else None
            previous = Q.kids(item, "previousState")
            if snap is None or not previous or Q.text(previous[0], "name") == snap.state \
                    or snap.state not in STATE_CODES:
                continue
            Q.set_text(previous[0], "name", snap.state, doc.ns)
            Q.set_text(previous[0], "code", str(STATE_CODES[snap.state]), doc.ns)
            doc.changed = True
            self.count(req)

    def _rewrite_states(self, req, doc, now):
        status_call = req.action == "DescribeInstanceStatus"
        path = ("instanceStatusSet", "item") if status_call else ("reservationSet", "item", "instancesSet", "item")
        changed = 0
        for item in Q.walk(doc.root, path):
            iid = Q.text(item, "instanceId")
            state_el = Q.kids(item, "instanceState")
            if not iid or not state_el:
                continue
            moto_state = Q.text(state_el[0], "name")
            state = self.memory.instance_state(iid, moto_state or "", now)
            if state != moto_state:
                Q.set_text(state_el[0], "name", state, doc.ns)
                Q.set_text(state_el[0], "code", str(STATE_CODES[state]), doc.ns)
                changed += 1
        filters = req.notes.get("instance_state_filters", {})

        def keep(item) -> bool:
            state_el = Q.kids(item, "instanceState")
            name = Q.text(state_el[0], "name") if state_el else None
            code = Q.text(state_el[0], "code") if state_el else None
            if "instance-state-name" in filters and not Q.matches(name, filters["instance-state-name"]):
                return False
            if "instance-state-code" in filters and not Q.matches(code, filters["instance-state-code"]):
                return False
            if status_call and (req.get("IncludeAllInstances") or "").lower() != "true" and name != "running":
                return False
            return True

        removed = Q.remove_items(doc.root, path, keep)
        if not status_call:
            Q.drop_empty_reservations(doc.root)
        if changed or removed:
            doc.changed = True
        if changed:
            self.count(req)
