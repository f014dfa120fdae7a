"""nat-gateway-eni: a NAT gateway's network interface is EC2's own, `in-use` while the gateway
lives, and it outlives the gateway: `available` for a while after the gateway is `deleted`, then
gone. While it exists, its subnet and VPC can't be deleted (DependencyViolation).

Source: AWS API reference "NetworkInterface" (interfaceType `nat_gateway`, requesterManaged, status
in-use | available) and "DeleteSubnet" / "DeleteVpc" (every network interface in it must be gone
first); terraform-provider-aws #49299 (the interface of a gateway destroyed a moment ago, named by
ReleaseAddress after it is gone). terraform-provider-aws retries DeleteSubnet and DeleteVpc on
DependencyViolation (internal/service/ec2/vpc_subnet.go, vpc_.go) and deletes lingering interfaces
first (vpc_network_interface.go: deleteLingeringENIs). moto marks the gateway deleted and keeps its
interface for ever, `available`, with the address still on it; here it goes once its linger is over
(and any address still on it is disassociated, as EC2 does when it deletes the gateway).

Rate: every NAT gateway, for `Timings.nat_eni_linger` seconds after it is `deleted`.
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule


class NatGatewayEni(Rule):
    name = "nat-gateway-eni"
    after_actions = frozenset({"DescribeNetworkInterfaces"})

    def _nats(self, req) -> list:
        return list(Q.safe(lambda: self.backend(req).nat_gateways, {}).values())

    def settle(self, req, now):
        backend = self.backend(req)
        with self._lock:
            for nat in self._nats(req):
                eni = getattr(nat, "_eni", None)
                gone_at = self.memory.nat_gone_at(nat)
                if eni is None or eni.id not in backend.enis or gone_at is None \
                        or now < gone_at + self.timings.nat_eni_linger:
                    continue
                for addr in list(getattr(backend, "addresses", [])):
                    if getattr(addr, "eni", None) is eni and addr.association_id:
                        Q.safe(lambda a=addr: backend.disassociate_address(association_id=a.association_id))
                Q.safe(lambda e=eni: backend.delete_network_interface(e.id))

    def _holders(self, req) -> list:
        """NAT gateways whose interface still exists (live, deleting, or deleted and lingering)."""
        enis = Q.safe(lambda: self.backend(req).enis, {})
        return [n for n in self._nats(req) if getattr(n, "_eni", None) is not None and n._eni.id in enis]

    def before(self, req, now):
        if req.action == "DeleteSubnet" and req.get("SubnetId"):
            sid = req.get("SubnetId")
            if any(n.subnet_id == sid for n in self._holders(req)):
                raise Ec2Error(self.name, "DependencyViolation",
                               f"The subnet '{sid}' has dependencies and cannot be deleted.")
        elif req.action == "DeleteVpc" and req.get("VpcId"):
            vid = req.get("VpcId")
            if any(n.vpc_id == vid for n in self._holders(req)):
                raise Ec2Error(self.name, "DependencyViolation", f"The vpc '{vid}' has dependencies and cannot be deleted.")

    def after(self, req, doc, now):
        by_eni = {n._eni.id: n for n in self._holders(req)}
        changed = 0
        for item in Q.walk(doc.root, ("networkInterfaceSet", "item")):
            nat = by_eni.get(Q.text(item, "networkInterfaceId") or "")
            if nat is None:
                continue
            gone_at = self.memory.nat_gone_at(nat)
            status = "available" if gone_at is not None and now >= gone_at else "in-use"
            wanted = {"status": status, "interfaceType": "nat_gateway", "requesterManaged": "true",
                      "requesterId": "amazon-aws", "description": f"Interface for NAT Gateway {nat.id}"}
            for name, value in wanted.items():
                if Q.text(item, name) != value:
                    Q.set_text(item, name, value, doc.ns)
                    changed += 1
        if changed:
            doc.changed = True
            self.count(req)
