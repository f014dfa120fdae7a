"""What the layer remembers of the calls it saw, whichever rules are on: the IDs create calls
returned and when, each instance's last state change (and what it held before it), when each NAT
gateway was created and deleted. The rules read it to decide their answers; moto keeps no time.
"""
from __future__ import annotations

import dataclasses
import threading

from . import query as Q

# AWS: "State change events for Amazon EC2 instances" / "Amazon EC2 instance state changes": launch
# or start -> pending -> running; stop -> stopping -> stopped; terminate -> shutting-down ->
# terminated. The codes are the API's InstanceState codes.
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
INSTANCE_CHANGES = {  # kind -> (moto's final state, EC2's state before it, the Timings field)
    "launch": ("running", "pending", "instance_pending"),
    "start": ("running", "pending", "instance_pending"),
    "stop": ("stopped", "stopping", "instance_stopping"),
    "terminate": ("terminated", "shutting-down", "instance_shutting_down"),
}
INSTANCE_CALLS = {"StartInstances": "start", "StopInstances": "stop", "TerminateInstances": "terminate"}
# Which element of a create call's answer carries the new ID.
CREATED = {
    "RunInstances": ("instancesSet", "item", "instanceId"),
    "CreateVpc": ("vpc", "vpcId"),
    "CreateSubnet": ("subnet", "subnetId"),
    "CreateSecurityGroup": ("groupId",),
    "CreateInternetGateway": ("internetGateway", "internetGatewayId"),
    "CreateRouteTable": ("routeTable", "routeTableId"),
    "CreateNatGateway": ("natGateway", "natGatewayId"),
    "AllocateAddress": ("allocationId",),
    "CreateNetworkInterface": ("networkInterface", "networkInterfaceId"),
}

# Describe* lists: (path to the items, ID element). An ID a list shows has propagated (see `listed`).
LISTED = {
    "DescribeVpcs": (("vpcSet", "item"), "vpcId"),
    "DescribeSubnets": (("subnetSet", "item"), "subnetId"),
    "DescribeSecurityGroups": (("securityGroupInfo", "item"), "groupId"),
    "DescribeInternetGateways": (("internetGatewaySet", "item"), "internetGatewayId"),
    "DescribeRouteTables": (("routeTableSet", "item"), "routeTableId"),
    "DescribeNatGateways": (("natGatewaySet", "item"), "natGatewayId"),
    "DescribeAddresses": (("addressesSet", "item"), "allocationId"),
    "DescribeNetworkInterfaces": (("networkInterfaceSet", "item"), "networkInterfaceId"),
    "DescribeInstanceStatus": (("instanceStatusSet", "item"), "instanceId"),
    "DescribeInstances": (("reservationSet", "item", "instancesSet", "item"), "instanceId"),
}


@dataclasses.dataclass(frozen=True)
class Snapshot:
    state: str         # the state the instance is leaving, as EC2 shows it
    groups: frozenset
    subnet: str | None
    vpc: str | None
    public_ip: str | None


@dataclasses.dataclass
class Change:
    kind: str          # launch | start | stop | terminate
    at: float
    groups: frozenset = frozenset()
    subnet: str | None = None
    vpc: str | None = None
    public_ip: str | None = None
    region: str = ""
    done_at: float | None = None   # when the API first showed its final state (see `finished_at`)


class Memory:
    """Thread-safe; `forget()` on moto's /moto-api/reset."""

    def __init__(self, layer):
        self.layer = layer          # for .timings (tests change them on the fly) and .clock
        self.lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        with self.lock:
            self.visible_at: dict[str, float] = {}     # new ID -> when it becomes visible
            self.created_at: dict[str, float] = {}     # new ID -> when its create call answered
            self.instances: dict[str, Change] = {}     # instance ID -> its last state change
            self.nat_created: dict[str, float] = {}
            self.nat_deleted: dict[str, float] = {}

    # -- what is noted ----------------------------------------------------------------------------

    def before(self, req: Q.Request) -> None:
        if req.action in INSTANCE_CALLS:
            req.notes["before"] = self._instance_snapshots(req)

    def after(self, req: Q.Request, doc: Q.Doc, now: float) -> None:
        if req.action in CREATED:
            self._note_created(req, doc, now)
        if req.action in INSTANCE_CALLS:
            self._note_instance_calls(req, doc, now)
        if req.action == "DeleteNatGateway":
            nid = Q.text(doc.root, "natGatewayId") or req.get("NatGatewayId")
            if nid:
                with self.lock:
                    self.nat_deleted[nid] = now

    def listed(self, req: Q.Request, doc: Q.Doc, now: float) -> None:
        """The IDs a list answer shows (after the rules had their say) have propagated: from now on a
        call naming one succeeds. Reads don't go back in time: a client that has seen an ID listed
        never meets "not found" for it afterwards (awsenv's teardown relies on it)."""
        if req.action not in LISTED:
            return
        path, id_tag = LISTED[req.action]
        shown = [Q.text(item, id_tag) for item in Q.walk(doc.root, path)]
        with self.lock:
            for rid in filter(None, shown):
                if rid in self.visible_at and now < self.visible_at[rid]:
                    self.visible_at[rid] = now

    def _note_created(self, req: Q.Request, doc: Q.Doc, now: float) -> None:
        ids = [el.text for el in Q.walk(doc.root, CREATED[req.action]) if el.text]
        with self.lock:
            for rid in ids:
                self.visible_at.setdefault(rid, now + self.layer.timings.consistency)
                self.created_at.setdefault(rid, now)
            if req.action == "RunInstances":
                for rid in ids:
                    self.instances.setdefault(rid, Change("launch", now, region=req.region))
            if req.action == "CreateNatGateway":
                for rid in ids:
                    self.nat_created.setdefault(rid, now)

    def _note_instance_calls(self, req: Q.Request, doc: Q.Doc, now: float) -> None:
        kind = INSTANCE_CALLS[req.action]
        final = INSTANCE_CHANGES[kind][0]
        before: dict[str, Snapshot] = req.notes.get("before", {})
        for item in Q.walk(doc.root, ("instancesSet", "item")):
            iid = Q.text(item, "instanceId")
            snap = before.get(iid) if iid else None
            if iid is None or snap is None:
                continue
            if snap.state != final:     # stopping a stopped instance changes nothing
                with self.lock:
                    self.instances[iid] = Change(kind, now, snap.groups, snap.subnet, snap.vpc, snap.public_ip,
                                                 req.region)

    def _instance_snapshots(self, req: Q.Request) -> dict[str, Snapshot]:
        """What an instance holds as a start, stop or terminate call reaches it, read before moto
        changes it (moto deletes a terminated instance's interfaces at once)."""
        backend = self.layer.backend(req)
        now = self.layer.clock()
        snaps = {}
        for iid in req.values("InstanceId"):
            try:
                inst = backend.get_instance(iid)
            except Q.moto_errors():
                continue
            if inst._state.name == "terminated":
                continue
            groups = {g.id for g in (inst.security_groups or [])}
            for nic in list(getattr(inst, "nics", {}).values()):
                groups.update(g.id for g in (Q.prop(nic, "group_set") or []))
            snaps[iid] = Snapshot(self.instance_state(iid, inst._state.name, now), frozenset(groups),
                                  Q.prop(inst, "subnet_id"), Q.prop(inst, "vpc_id"), Q.prop(inst, "public_ip"))
        return snaps

    # -- what is read -----------------------------------------------------------------------------

    def unpropagated(self, resource_id: str, now: float) -> bool:
        visible_at = self.visible_at.get(resource_id)
        return visible_at is not None and now < visible_at

    def instance_state(self, iid: str, moto_state: str, now: float) -> str:
        """The state EC2 shows: moto's final state is still the transitional one for a while."""
        change = self.instances.get(iid)
        if change is not None and change.kind in INSTANCE_CHANGES:
            final, transitional, _ = INSTANCE_CHANGES[change.kind]
            if moto_state == final and self.finished_at(iid, change, now) is None:
                return transitional
        return moto_state

    def finished_at(self, iid: str, change: Change, now: float) -> float | None:
        """When EC2 shows `change` done, or None while it is still transitional: the change's window
        is over and, where the layer has a state gate (gate.py), the server's machine has got there.
        Once done it stays done (the answer is kept in the change)."""
        if change.done_at is not None:
            return change.done_at
        final, _, timing = INSTANCE_CHANGES[change.kind]
        window_end = change.at + getattr(self.layer.timings, timing)
        if now < window_end:
            return None
        gate = self.layer.state_gate
        if gate is None:
            return window_end
        if not gate.reached(iid, final, change.region, change.at, now):
            return None
        change.done_at = max(window_end, now)
        return change.done_at

    def instance_vpc(self, inst) -> str | None:
        change = self.instances.get(inst.id)
        return Q.prop(inst, "vpc_id") or (change.vpc if change else None)

    def lingering(self, now: float) -> list[tuple[str, Change]]:
        """Instances whose network interfaces still exist although they were terminated: while they
        are shutting down, and `eni_linger` seconds after EC2 shows them terminated."""
        linger = self.layer.timings.eni_linger
        lingering = []
        for iid, ch in list(self.instances.items()):
            if ch.kind == "terminate":
                done = self.finished_at(iid, ch, now)
                if done is None or now < done + linger:
                    lingering.append((iid, ch))
        return lingering

    def nat_deleting(self, nat_id: str, now: float) -> bool:
        """Deleted through this layer, and still `deleting` as EC2 shows it."""
        at = self.nat_deleted.get(nat_id)
        return at is not None and now < at + self.layer.timings.nat_deleting

    def nat_gone_at(self, nat) -> float | None:
        """When EC2 shows this NAT gateway `deleted`: the end of its deleting period (compare with
        now); None while it is not deleted. One that moto deleted without this layer seeing the
        call counts as deleted long ago."""
        if Q.prop(nat, "state") != "deleted":
            return None
        at = self.nat_deleted.get(nat.id)
        return float("-inf") if at is None else at + self.layer.timings.nat_deleting
