"""lingering-enis: a terminated instance's network interface still holds its security groups,
subnet and VPC for a while: their deletes answer DependencyViolation. (A NAT gateway's interface:
rule nat-gateway-eni.)

Source: AWS API reference "DeleteSecurityGroup" (a group still associated with an instance or a
network interface can't be deleted: DependencyViolation); a terminated instance's interface is
detached and deleted some time after the instance is gone. terraform-provider-aws retries the
deletes on DependencyViolation (internal/service/ec2/vpc_security_group.go: DependencyViolation and
InvalidGroup.InUse; vpc_subnet.go and vpc_.go: DependencyViolation) and deletes lingering interfaces
first (vpc_network_interface.go: deleteLingeringENIs).

Rate: every terminated instance, for its shutting-down period plus `Timings.eni_linger` seconds
(AWS: seconds to minutes).
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule


class LingeringEnis(Rule):
    name = "lingering-enis"

    def before(self, req, now):
        if req.action not in ("DeleteSecurityGroup", "DeleteSubnet", "DeleteVpc"):
            return
        lingering = self.memory.lingering(now)
        if req.action == "DeleteSecurityGroup":
            gid = req.get("GroupId") or self._group_id_by_name(req, req.get("GroupName"))
            if gid and any(gid in ch.groups for _, ch in lingering):
                raise Ec2Error(self.name, "DependencyViolation", f"resource {gid} has a dependent object")
        elif req.action == "DeleteSubnet":
            sid = req.get("SubnetId")
            if sid and any(ch.subnet == sid for _, ch in lingering):
                raise Ec2Error(self.name, "DependencyViolation",
                               f"The subnet '{sid}' has dependencies and cannot be deleted.")
        else:
            vid = req.get("VpcId")
            if vid and any(ch.vpc == vid for _, ch in lingering):
                raise Ec2Error(self.name, "DependencyViolation",
                               f"The vpc '{vid}' has dependencies and cannot be deleted.")

    def _group_id_by_name(self, req, name: str | None) -> str | None:
        if not name:
            return None
        try:
            default_vpc = self.backend(req).get_default_vpc()
            for group in self.backend(req).describe_security_groups(group_names=[name]):
                if default_vpc is None or group.vpc_id == default_vpc.id:
                    return group.id
        except Q.moto_errors():
            return None
        return None
