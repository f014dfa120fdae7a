"""eventual-consistency: a new ID is "not found" for a moment after the create call that returned it.

Source: AWS, "Eventual consistency in the Amazon EC2 API": the ID a create call returns may not have
propagated yet when the next call names it, and that call then answers that the resource doesn't
exist (its examples: InvalidInstanceID.NotFound after RunInstances, for DescribeInstances and for
TerminateInstances too, where it does not mean the instance is gone; InvalidGroup.NotFound after
CreateSecurityGroup). The codes and messages are the ones EC2 gives for an ID it doesn't know
("Error codes for the Amazon EC2 API"); CreateRoute right after CreateNatGateway answers
InvalidNatGatewayID.NotFound (boto/boto3#779), DescribeNatGateways NatGatewayNotFound (what boto3's
NatGatewayAvailable waiter retries on), and CreateNatGateway right after AllocateAddress
InvalidElasticIpID.NotFound "The elasticIp ID 'eipalloc-...' does not exist" (terraform-provider-aws
#27087; amazon.aws #1872, retried since amazon.aws PR #2418 in plugins/module_utils/ec2.py
create_nat_gateway: catch_extra_error_codes=["InvalidElasticIpID.NotFound"]). terraform-provider-aws retries these after a create
(internal/tfresource RetryWhenNewResourceNotFound, RetryWhenAWSErrCodeEquals in
internal/service/ec2/vpc_internet_gateway.go, vpc_route_table_association.go), amazon.aws too
(plugins/module_utils/ec2.py: InvalidInstanceID.NotFound for instances).

Rate: every call naming a new ID within `Timings.consistency` seconds of its create (AWS: usually
seconds). A Describe* list that doesn't name the ID: rule listing-lag.
"""
from __future__ import annotations

import re

from ..errors import Ec2Error
from ..query import leaf
from .base import Rule

NOT_FOUND = {
    "i": ("InvalidInstanceID.NotFound", "The instance ID '{}' does not exist", "The instance IDs '{}' do not exist"),
    "sg": ("InvalidGroup.NotFound", "The security group '{}' does not exist", None),
    "igw": ("InvalidInternetGatewayID.NotFound", "The internetGateway ID '{}' does not exist", None),
    "rtb": ("InvalidRouteTableID.NotFound", "The routeTable ID '{}' does not exist", None),
    "vpc": ("InvalidVpcID.NotFound", "The vpc ID '{}' does not exist", None),
    "subnet": ("InvalidSubnetID.NotFound", "The subnet ID '{}' does not exist", None),
    "nat": ("InvalidNatGatewayID.NotFound", "The natGateway ID '{}' does not exist", None),
    "eipalloc": ("InvalidAllocationID.NotFound", "The allocation ID '{}' does not exist", None),
    "eni": ("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '{}' does not exist", None),
}
# CreateNatGateway names its address by allocation ID but answers in the elastic IP's own terms.
ELASTIC_IP_NOT_FOUND = ("InvalidElasticIpID.NotFound", "The elasticIp ID '{}' does not exist")
ID_RE = re.compile(r"^(i|sg|igw|rtb|vpc|subnet|nat|eipalloc|eni)-[0-9a-f]{8,17}$")
# Request parameters (the last non-numeric part of a Query API key) that name a resource by ID.
ID_PARAMS = {"InstanceId", "GroupId", "SecurityGroupId", "InternetGatewayId", "VpcId", "SubnetId",
             "RouteTableId", "GatewayId", "NatGatewayId", "AllocationId", "NetworkInterfaceId", "ResourceId"}
class EventualConsistency(Rule):
    name = "eventual-consistency"

    def before(self, req, now):
        hits: list[tuple[str, str]] = []
        for key, value in req.params:
            if key.startswith(("Filter.", "TagSpecification.", "Tag.")):
                continue
            name = leaf(key)
            if name in ID_PARAMS and ID_RE.match(value) and self.memory.unpropagated(value, now):
                hits.append((name, value))
        if not hits:
            return
        name, first = hits[0]
        prefix = first.split("-", 1)[0]
        code, message, plural = NOT_FOUND[prefix]
        if prefix == "igw" and name == "GatewayId":       # CreateRoute / ReplaceRoute GatewayId
            code, message = "InvalidGatewayID.NotFound", "The gateway ID '{}' does not exist"
        if prefix == "nat" and req.action in ("DescribeNatGateways", "DeleteNatGateway"):
            code, message = "NatGatewayNotFound", "NAT gateway {} was not found"
        if prefix == "eipalloc" and req.action == "CreateNatGateway":
            code, message = ELASTIC_IP_NOT_FOUND
        same = [v for n, v in hits if v.split("-", 1)[0] == prefix]
        if plural and len(same) > 1:
            raise Ec2Error(self.name, code, plural.format(", ".join(same)))
        raise Ec2Error(self.name, code, message.format(first))
