"""nat-gateway-states: a NAT gateway is `pending` before `available`, `deleting` before `deleted`.

Source: AWS API reference "NatGateway" (state: pending | failed | available | deleting | deleted)
and "DeleteNatGateway"; "NAT gateways" in the VPC user guide. boto3's NatGatewayAvailable waiter
expects exactly that order; terraform-provider-aws waits it out (internal/service/ec2/wait.go:
waitNATGatewayCreated pending -> available, waitNATGatewayDeleted deleting -> gone), amazon.aws too
(plugins/modules/ec2_vpc_nat_gateway.py: nat_gateway_available / nat_gateway_deleted waiters).

Rate: every NAT gateway, for `Timings.nat_pending` / `Timings.nat_deleting` seconds (AWS: pending
for minutes, deleting for about a minute). DescribeNatGateways and its `state` filter see the states.
"""
from __future__ import annotations

from .. import query as Q
from .base import Rule


class NatGatewayStates(Rule):
    name = "nat-gateway-states"
    after_actions = frozenset({"DescribeNatGateways"})

    def before(self, req, now):
        if req.action == "DescribeNatGateways":
            removed = req.strip_filters({"state"})
            if removed:
                req.notes["nat_state_filters"] = removed

    def state(self, nat_id: str, moto_state: str | None, now: float) -> str | None:
        created, deleted = self.memory.nat_created.get(nat_id), self.memory.nat_deleted.get(nat_id)
        if moto_state == "available" and created is not None and now < created + self.timings.nat_pending:
            return "pending"
        if moto_state == "deleted" and deleted is not None and now < deleted + self.timings.nat_deleting:
            return "deleting"
        return moto_state

    def after(self, req, doc, now):
        changed = 0
        for item in Q.walk(doc.root, ("natGatewaySet", "item")):
            moto_state = Q.text(item, "state")
            state = self.state(Q.text(item, "natGatewayId") or "", moto_state, now)
            if state is not None and state != moto_state:
                Q.set_text(item, "state", state, doc.ns)
                changed += 1
        filters = req.notes.get("nat_state_filters", {})
        removed = 0
        if "state" in filters:
            removed = Q.remove_items(doc.root, ("natGatewaySet", "item"),
                                     lambda item: Q.matches(Q.text(item, "state"), filters["state"]))
        if changed or removed:
            doc.changed = True
        if changed:
            self.count(req)
