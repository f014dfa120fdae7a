"""nat-gateway-not-found: DescribeNatGateways and DeleteNatGateway naming a NAT gateway EC2 doesn't
know answer NatGatewayNotFound "NAT gateway nat-... was not found".

Source: boto3's NatGatewayAvailable and NatGatewayDeleted waiters (botocore's ec2 waiters-2.json,
mirrored in amazon.aws plugins/module_utils/waiters.py: NatGatewayNotFound is "retry" for the one,
"success" for the other); terraform-provider-aws internal/service/ec2/vpc_nat_gateway.go
resourceNATGatewayDelete takes NatGatewayNotFound as gone. moto answers DescribeNatGateways with an
empty list and fails DeleteNatGateway with an internal error (HTTP 500, which clients retry as a
transient fault) instead.

Rate: always (a gateway moto doesn't hold at all; a deleted one is still listed, `deleted`, as on EC2).
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule
from .eventual_consistency import ID_RE


class NatGatewayNotFound(Rule):
    name = "nat-gateway-not-found"

    def before(self, req, now):
        if req.action == "DeleteNatGateway":
            named = [req.get("NatGatewayId") or ""]
        elif req.action == "DescribeNatGateways":
            named = req.values("NatGatewayId")
        else:
            return
        known = Q.safe(lambda: self.backend(req).nat_gateways, {})
        unknown = [n for n in named if n not in known]
        if unknown:
            what = unknown[0] if ID_RE.match(unknown[0]) else repr(unknown[0])
            raise Ec2Error(self.name, "NatGatewayNotFound", f"NAT gateway {what} was not found")
