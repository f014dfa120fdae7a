"""igw-mapped-addresses: an internet gateway won't detach while its VPC has public addresses mapped.

Source: AWS API reference "DetachInternetGateway": the VPC may hold no running instance with an
Elastic IP address or a public IPv4 address. EC2 answers DependencyViolation "Network vpc-... has
some mapped public address(es). Please unmap those public address(es) before detaching the
gateway." (seen with instances still shutting down and NAT gateways still deleting).
terraform-provider-aws retries the detach on DependencyViolation
(internal/service/ec2/vpc_internet_gateway.go: detachInternetGateway).

Rate: every detach while an address is mapped: an instance's Elastic IP or public IP until it has
stopped or terminated, a NAT gateway's Elastic IP until it is deleted, an Elastic IP on a network
interface of its own.
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from ..memory import INSTANCE_CHANGES
from .base import Rule


class IgwMappedAddresses(Rule):
    name = "igw-mapped-addresses"

    def before(self, req, now):
        vpc_id = req.get("VpcId")
        if req.action == "DetachInternetGateway" and vpc_id and self.mapped_addresses(req, vpc_id, now):
            raise Ec2Error(self.name, "DependencyViolation",
                           f"Network {vpc_id} has some mapped public address(es). Please unmap those public "
                           f"address(es) before detaching the gateway.")

    def mapped_addresses(self, req, vpc_id: str, now: float) -> list[str]:
        backend = self.backend(req)
        memory = self.memory
        nat_by_eni = {}
        for nat in list(getattr(backend, "nat_gateways", {}).values()):
            eni = getattr(nat, "_eni", None)
            if eni is not None:
                nat_by_eni[eni.id] = nat
        mapped = []

        def instance_holds(inst) -> bool:
            # "running instances": until the instance has stopped or terminated
            return memory.instance_state(inst.id, inst._state.name, now) in ("pending", "running", "stopping",
                                                                             "shutting-down")

        for addr in list(getattr(backend, "addresses", [])):
            eni, inst = getattr(addr, "eni", None), getattr(addr, "instance", None)
            if eni is None and inst is None:
                continue
            if eni is not None and eni.id in nat_by_eni:
                nat = nat_by_eni[eni.id]
                if (nat.state != "deleted" or memory.nat_deleting(nat.id, now)) and nat.vpc_id == vpc_id:
                    mapped.append(addr.public_ip)
                continue
            inst = inst or getattr(eni, "instance", None)
            if inst is not None:
                if instance_holds(inst) and memory.instance_vpc(inst) == vpc_id:
                    mapped.append(addr.public_ip)
            elif eni is not None and eni.id in getattr(backend, "enis", {}):
                if Q.prop(eni, "subnet.vpc_id") == vpc_id:
                    mapped.append(addr.public_ip)
        for inst in Q.safe(lambda: backend.all_instances(), []):
            if inst._state.name in ("running", "pending") and Q.prop(inst, "public_ip") \
                    and memory.instance_vpc(inst) == vpc_id:
                mapped.append(inst.public_ip)
        # An instance keeps its public IPv4 address until it has stopped or terminated.
        for ch in list(memory.instances.values()):
            timing = INSTANCE_CHANGES[ch.kind][2]
            if ch.kind in ("stop", "terminate") and ch.public_ip and ch.vpc == vpc_id \
                    and now < ch.at + getattr(self.timings, timing):
                mapped.append(ch.public_ip)
        return sorted(set(filter(None, mapped)))
