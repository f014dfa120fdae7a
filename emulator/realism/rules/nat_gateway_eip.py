"""nat-gateway-eip: a NAT gateway's Elastic IP is in use while the gateway lives and is
disassociated when it is deleted; right after that, its release can still be refused for a moment.

Source: AWS API reference "DeleteNatGateway" (deleting a public NAT gateway disassociates its
Elastic IP address but does not release it) and "ReleaseAddress" (an address that is associated:
InvalidIPAddress.InUse, "Address 203.0.113.5 is in use." as scylla-cluster-tests PR #2299 quotes
it; AuthFailure for an address the account no longer holds). Right after the gateway is deleted
ReleaseAddress answers AuthFailure "You do not have permission to access the specified resource."
(terraform-provider-aws #13763, "aws_eip intermittent AuthFailure during destroy"; the same after a
NAT gateway's deletion in eformat/sno-for-100 #5) or InvalidNetworkInterfaceID.NotFound "The
networkInterface ID 'eni-...' does not exist" (terraform-provider-aws #49299: ReleaseAddress itself
answers it, right after the NAT gateway's destroy completed). terraform-provider-aws's EIP delete
does not retry these (internal/service/ec2/ec2_eip.go resourceEIPDelete: only
InvalidAllocationID.NotFound is "gone"), hence those issues; amazon.aws checks the address still
exists and releases once (plugins/modules/ec2_vpc_nat_gateway.py release_eip_address).

Rate: InvalidIPAddress.InUse always while the gateway lives or is deleting; after `deleted`, for
`Rates.nat_release_lag` of the gateways (drawn at DeleteNatGateway), AuthFailure and
InvalidNetworkInterfaceID.NotFound in turn for `Timings.eip_release_lag` seconds.
"""
from __future__ import annotations

import itertools

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule


class NatGatewayEip(Rule):
    name = "nat-gateway-eip"
    after_actions = frozenset({"DeleteNatGateway"})

    def reset(self):
        with self._lock:
            self._lagging: set[str] = set()       # NAT gateways whose address lags after `deleted`
            self._turn = itertools.count()

    def after(self, req, doc, now):
        nat_id = Q.text(doc.root, "natGatewayId") or req.get("NatGatewayId")
        if nat_id and self.layer.random.random() < self.rates.nat_release_lag:
            with self._lock:
                self._lagging.add(nat_id)

    def settle(self, req, now):
        """Deleted (as EC2 shows it): the address is no longer on the gateway's interface."""
        backend = self.backend(req)
        for nat in list(Q.safe(lambda: backend.nat_gateways, {}).values()):
            gone_at = self.memory.nat_gone_at(nat)
            eni = getattr(nat, "_eni", None)
            if gone_at is None or now < gone_at or eni is None:
                continue
            for addr in list(getattr(backend, "addresses", [])):
                if getattr(addr, "eni", None) is eni and addr.association_id:
                    Q.safe(lambda a=addr: backend.disassociate_address(association_id=a.association_id))

    def before(self, req, now):
        if req.action != "ReleaseAddress":
            return
        backend = self.backend(req)
        allocation, public_ip = req.get("AllocationId"), req.get("PublicIp")
        addr = next((a for a in list(getattr(backend, "addresses", []))
                     if (allocation and a.allocation_id == allocation) or (public_ip and a.public_ip == public_ip)), None)
        if addr is None:
            return      # moto answers for an address it doesn't know
        holders = [n for n in list(Q.safe(lambda: backend.nat_gateways, {}).values())
                   if any(x.get("allocationId") == addr.allocation_id for x in getattr(n, "address_set", []))]
        if any(self.memory.nat_gone_at(n) is None or now < self.memory.nat_gone_at(n) for n in holders):
            raise Ec2Error(self.name, "InvalidIPAddress.InUse", f"Address {addr.public_ip} is in use.")
        with self._lock:
            lagging = [n for n in holders if n.id in self._lagging
                       and now < self.memory.nat_gone_at(n) + self.timings.eip_release_lag]
            turn = next(self._turn) if lagging else 0
        if lagging:
            if turn % 2 == 0:
                raise Ec2Error(self.name, "AuthFailure", "You do not have permission to access the specified resource.")
            raise Ec2Error(self.name, "InvalidNetworkInterfaceID.NotFound",
                           f"The networkInterface ID '{lagging[0]._eni.id}' does not exist")
