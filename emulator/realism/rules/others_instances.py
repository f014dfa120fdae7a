"""others-instances: the account is shared; another team runs an instance with our Env and Role tags.

Source: AWS "Tag your Amazon EC2 resources": tags are free-form labels, neither unique nor a sign
of ownership. Looking instances up by Env/Role alone finds someone else's too.

Rate: once per (account, region, Env, Role): the first RunInstances tagged Env=X and Role=Y makes
"another team" launch a *stopped* instance in the region's default VPC with the same Env and Role
tags (and no Project tag), through moto itself (not through this layer), stopped at once.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from .. import query as Q
from .base import Rule
from .zones import Zones


class OthersInstances(Rule):
    name = "others-instances"
    after_actions = frozenset({"RunInstances"})

    def reset(self):
        with self._lock:
            self._launched_for: set[tuple] = set()    # (account, region, Env, Role)
            self._ids: set[str] = set()               # the instances "another team" runs

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._ids)

    def after(self, req, doc, now):
        tags = req.tags("instance")
        env, role = tags.get("Env"), tags.get("Role")
        if not env or not role:
            return
        key = (req.account, req.region, env, role)
        with self._lock:
            if key in self._launched_for:
                return
            self._launched_for.add(key)
        backend = self.backend(req)
        vpc = Q.safe(lambda: backend.get_default_vpc())
        if vpc is None:
            return
        itype = req.get("InstanceType") or "t3.micro"
        zones = self.layer.rule("zones")
        assert isinstance(zones, Zones)
        subnets = sorted(Q.safe(lambda: backend.describe_subnets(filters={"vpc-id": [vpc.id]}), []),
                         key=lambda s: s.availability_zone)
        subnets = [s for s in subnets if zones.offered(req, itype, s.availability_zone)] or subnets
        image = req.get("ImageId") or next(iter(Q.safe(lambda: backend.amis, {}) or {}), None)
        if not subnets or not image:
            return
        run = [("Action", "RunInstances"), ("Version", "2016-11-15"), ("ImageId", image), ("InstanceType", itype),
               ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", subnets[0].id),
               ("TagSpecification.1.ResourceType", "instance")]
        for n, (k, v) in enumerate((("Env", env), ("Role", role), ("Name", f"{role} ({env}), another team"),
                                    ("Owner", "another-team")), start=1):
            run += [(f"TagSpecification.1.Tag.{n}.Key", k), (f"TagSpecification.1.Tag.{n}.Value", v)]
        status, _, body = self.layer.call(Q.with_params(req.environ, run))
        if not status.startswith("200"):
            return
        iid = Q.text(Q.walk(ET.fromstring(body), ("instancesSet", "item"))[0], "instanceId")
        if not iid:
            return
        self.layer.call(Q.with_params(req.environ, [("Action", "StopInstances"), ("Version", "2016-11-15"),
                                                    ("InstanceId.1", iid)]))
        with self._lock:
            self._ids.add(iid)
        self.count(req)
