"""listing-lag: now and then a new ID is left out of Describe* lists (by filter, or all) for a
moment after its create call.

Source: AWS, "Eventual consistency in the Amazon EC2 API" (reads after a create may not see it yet).
It is rare for a list: amazon.aws's ec2_vpc_subnet lists the subnet it just made by vpc-id and
cidr-block without a retry (plugins/modules/ec2_vpc_subnet.py: get_matching_subnet right after
create, then subnet["id"]) and works for its users, so EC2 seldom leaves a new subnet out; a
listing that left every new ID out (as this layer once did) crashed it. Clients that must find
what they made look it up by ID (rule eventual-consistency answers that) or retry the listing:
terraform-provider-aws reads by ID with RetryWhenNewResourceNotFound (internal/tfresource).

Rate: `Rates.listing_lag` of the new IDs (drawn at their create call), for `Timings.consistency`
seconds. Reads never go back in time: once a list shows an ID, calls naming it succeed
(memory.Memory.listed), so a client that saw it listed never meets its NotFound afterwards.
"""
from __future__ import annotations

from .. import query as Q
from ..memory import CREATED, LISTED
from .base import Rule


class ListingLag(Rule):
    name = "listing-lag"
    after_actions = frozenset(LISTED) | frozenset(CREATED)

    def reset(self):
        with self._lock:
            self._lagging: set[str] = set()

    def after(self, req, doc, now):
        if req.action in CREATED:
            new = [el.text for el in Q.walk(doc.root, CREATED[req.action]) if el.text]
            lagging = {rid for rid in new if self.layer.random.random() < self.rates.listing_lag}
            with self._lock:
                self._lagging |= lagging
            return
        path, id_tag = LISTED[req.action]

        def listed(item) -> bool:
            rid = Q.text(item, id_tag) or ""
            return rid not in self._lagging or not self.memory.unpropagated(rid, now)

        removed = Q.remove_items(doc.root, path, listed)
        if req.action == "DescribeInstances":
            Q.drop_empty_reservations(doc.root)
        if removed:
            doc.changed = True
            self.count(req)
