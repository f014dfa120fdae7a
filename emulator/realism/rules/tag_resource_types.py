"""tag-resource-types: DescribeTags names an Elastic IP's type `elastic-ip` and a NAT gateway's
`natgateway`, as EC2 does, and its resource-type filter takes those names.

Source: AWS API reference "DescribeTags" (filter resource-type: ... | elastic-ip | ... | natgateway
| ...) and "TagDescription" (resourceType, the same values). moto answers `vpc-elastic-ip` and
`nat-gateway` and filters by those, so a client asking EC2's way finds no tags: amazon.aws reads a
NAT gateway's tags with resource_type="natgateway" (plugins/modules/ec2_vpc_nat_gateway.py:
describe_ec2_tags) and an address's with "elastic-ip"; terraform-provider-aws creates them with
awstypes.ResourceTypeElasticIp / ResourceTypeNatgateway (internal/service/ec2/ec2_eip.go,
vpc_nat_gateway.go).

Rate: always.
"""
from __future__ import annotations

from .. import query as Q
from .base import Rule

EC2_TYPE = {"vpc-elastic-ip": "elastic-ip", "nat-gateway": "natgateway"}   # moto's name -> EC2's


class TagResourceTypes(Rule):
    name = "tag-resource-types"
    after_actions = frozenset({"DescribeTags"})

    def before(self, req, now):
        if req.action == "DescribeTags":
            removed = req.strip_filters({"resource-type"})
            if removed:
                req.notes["resource_type_filter"] = removed["resource-type"]

    def after(self, req, doc, now):
        changed = 0
        for item in Q.walk(doc.root, ("tagSet", "item")):
            moto_type = Q.text(item, "resourceType")
            if moto_type in EC2_TYPE:
                Q.set_text(item, "resourceType", EC2_TYPE[moto_type], doc.ns)
                changed += 1
        wanted = req.notes.get("resource_type_filter")
        removed = Q.remove_items(doc.root, ("tagSet", "item"),
                                 lambda item: Q.matches(Q.text(item, "resourceType"), wanted)) if wanted else 0
        if changed or removed:
            doc.changed = True
        if changed:
            self.count(req)
