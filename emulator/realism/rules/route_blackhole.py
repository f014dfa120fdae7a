"""route-blackhole: a route to a NAT gateway that is deleting or gone is a `blackhole`.

Source: AWS API reference "Route" (state: active | blackhole; "blackhole: the route's target isn't
available (for example, the specified gateway isn't attached to the VPC, or the specified NAT
instance has been terminated)") and the article's last step, which leaves the private route
pointing at the deleted NAT gateway. terraform-provider-aws reads routes whatever their state
(internal/service/ec2/vpc_route.go waits a new route out with waitRouteReady). moto keeps it
`active`. The lab's data plane (lab/world.py) realises only `active` routes, so the packets go
nowhere, as the API says.

Rate: always, from DeleteNatGateway on.
"""
from __future__ import annotations

from .. import query as Q
from .base import Rule


class RouteBlackhole(Rule):
    name = "route-blackhole"
    after_actions = frozenset({"DescribeRouteTables"})

    def after(self, req, doc, now):
        nats = Q.safe(lambda: self.backend(req).nat_gateways, {})
        changed = 0
        for route in Q.walk(doc.root, ("routeTableSet", "item", "routeSet", "item")):
            nat_id = Q.text(route, "natGatewayId")
            if not nat_id or Q.text(route, "state") == "blackhole":
                continue
            nat = nats.get(nat_id)
            if nat is None or nat.state in ("deleted", "failed") or self.memory.nat_deleting(nat_id, now):
                Q.set_text(route, "state", "blackhole", doc.ns)
                changed += 1
        if changed:
            doc.changed = True
            self.count(req)
