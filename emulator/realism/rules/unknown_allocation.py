"""unknown-allocation: CreateNatGateway naming an allocation EC2 doesn't know answers
InvalidElasticIpID.NotFound, as it does for one that hasn't propagated yet.

Source: terraform-provider-aws #27087 and amazon.aws #1872 show the code EC2 answers
CreateNatGateway with for an allocation ID it doesn't know ("InvalidElasticIpID.NotFound: The
elasticIp ID 'eipalloc-...' does not exist"); AWS's own CloudFormation NAT gateway handler maps
InvalidElasticIpID.NotFound (and .Malformed) from CreateNatGateway. moto answers
InvalidAllocationID.NotFound instead (the code of AssociateAddress, ReleaseAddress,
DescribeAddresses), which defeats a client that retries EC2's code (amazon.aws
plugins/module_utils/ec2.py create_nat_gateway) and, worse, moto makes the gateway's network
interface before it checks the allocation and leaves it behind. Here the call is refused before
moto sees it.

Rate: always.
"""
from __future__ import annotations

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule
from .eventual_consistency import ELASTIC_IP_NOT_FOUND


class UnknownAllocation(Rule):
    name = "unknown-allocation"

    def before(self, req, now):
        allocation = req.get("AllocationId")
        if req.action != "CreateNatGateway" or not allocation:
            return
        known = Q.safe(lambda: self.backend(req).address_by_allocation([allocation]), [])
        if not known:
            code, message = ELASTIC_IP_NOT_FOUND
            raise Ec2Error(self.name, code, message.format(allocation))
