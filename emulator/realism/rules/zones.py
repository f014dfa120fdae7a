"""zones: an opted-in Local Zone among the zones, and not every zone offers every instance type.

Source: AWS API reference "DescribeAvailabilityZones" (filters zone-type, opt-in-status,
group-name, network-border-group, parent-zone-name, ...; without AllAvailabilityZones it lists the
zones that need no opt-in and the opted-in ones) and "AvailabilityZone" (groupName,
networkBorderGroup, optInStatus `opted-in`, parentZoneName/Id, zoneType `local-zone`); "Local
Zones" (named `<region>-<city>-<n><letter>`, e.g. us-east-1-bos-1a; subnets can be made there once
opted in); "DescribeInstanceTypeOfferings" and the Knowledge Center article "Why do I receive the
error 'Your requested instance type is not supported in your requested Availability Zone'":
RunInstances into a zone that doesn't offer the type fails with `Unsupported` and names the zones
that do.

Rate: always: DescribeAvailabilityZones lists the Local Zone (it sorts first; every zone filter
works on every zone); the first standard zone by name doesn't offer t2.micro, nor does the Local
Zone (it offers a few larger types); RunInstances of a type a zone doesn't offer: `Unsupported`.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

from .. import query as Q
from ..errors import Ec2Error
from .base import Rule

# Local Zones this layer knows by city; other regions get a synthetic one (`lz1`).
LOCAL_ZONE_CITY = {"us-east-1": "bos", "us-west-2": "lax"}
# What each DescribeAvailabilityZones filter reads (AWS: API reference "DescribeAvailabilityZones").
ZONE_FILTERS = {"zone-name": "zoneName", "zone-id": "zoneId", "zone-type": "zoneType", "state": "zoneState",
                "region-name": "regionName", "opt-in-status": "optInStatus", "group-name": "groupName",
                "network-border-group": "networkBorderGroup", "parent-zone-name": "parentZoneName",
                "parent-zone-id": "parentZoneId"}


@dataclasses.dataclass(frozen=True)
class ZoneRules:
    """What the zones rule adds (see `LocalZone` for the zone itself)."""

    unsupported_types: tuple[str, ...] = ("t2.micro",)  # not offered in the first standard zone
    # A plausible Local Zone catalogue (Local Zones offer a few current-generation families, and no
    # t2); the rule this layer cares about is only that t2.micro is not among them.
    local_zone_types: tuple[str, ...] = ("t3.medium", "t3.xlarge", "c5.2xlarge", "c5d.2xlarge",
                                         "m5.2xlarge", "r5.2xlarge", "g4dn.2xlarge")


@dataclasses.dataclass(frozen=True)
class LocalZone:
    """The parent is modelled as the region's first standard zone."""

    name: str
    zone_id: str
    group: str
    region: str
    parent_name: str
    parent_id: str

    def fields(self) -> dict[str, str]:
        return {"zoneName": self.name, "zoneId": self.zone_id, "zoneType": "local-zone", "zoneState": "available",
                "optInStatus": "opted-in", "regionName": self.region, "groupName": self.group,
                "networkBorderGroup": self.group, "parentZoneName": self.parent_name,
                "parentZoneId": self.parent_id}


class Zones(Rule):
    name = "zones"
    after_actions = frozenset({"DescribeAvailabilityZones", "DescribeInstanceTypeOfferings", "CreateSubnet"})

    def reset(self):
        with self._lock:
            self._local_zones: dict[str, LocalZone] = {}

    @property
    def zone_rules(self) -> ZoneRules:
        return self.layer.zone_rules

    # -- before moto ---------------------------------------------------------------------------------

    def before(self, req, now):
        if req.action == "RunInstances":
            self._refuse_unoffered(req)
        elif req.action == "CreateSubnet":
            self._route_local_zone_subnet(req)

    def _refuse_unoffered(self, req):
        itype = req.get("InstanceType")
        if not itype:
            return
        backend = self.backend(req)
        subnet_id = req.get("SubnetId") or req.get("NetworkInterface.1.SubnetId")
        zone = req.get("Placement.AvailabilityZone")
        if subnet_id:
            try:
                zone = backend.get_subnet(subnet_id).availability_zone
            except Q.moto_errors():
                return  # moto answers for an unknown subnet
        if not zone or self.offered(req, itype, zone):
            return
        choices = [z for z in self._standard_zone_names(req) if self.offered(req, itype, z)]
        raise Ec2Error(self.name, "Unsupported",
                       f"Your requested instance type ({itype}) is not supported in your requested Availability "
                       f"Zone ({zone}). Please retry your request by not specifying an Availability Zone or "
                       f"choosing {', '.join(choices)}.")

    def _route_local_zone_subnet(self, req):
        """moto only knows a region's standard zones, so a Local Zone subnet is made in the parent
        zone and moved to the Local Zone once moto has it (see `_move_subnet_to_local_zone`)."""
        zone = self.local_zone(req)
        if zone is None:
            return
        if req.get("AvailabilityZone") == zone.name or req.get("AvailabilityZoneId") == zone.zone_id:
            params = [(k, v) for k, v in req.params if k not in ("AvailabilityZone", "AvailabilityZoneId")]
            req.forward_params = params + [("AvailabilityZone", zone.parent_name)]
            req.notes["local_zone"] = zone

    # -- after moto ----------------------------------------------------------------------------------

    def after(self, req, doc, now):
        if req.action == "DescribeAvailabilityZones":
            self._rewrite_zones(req, doc)
        elif req.action == "DescribeInstanceTypeOfferings":
            self._rewrite_offerings(req, doc)
        elif "local_zone" in req.notes:
            self._move_subnet_to_local_zone(req, doc)

    def _standard_zones(self, req) -> list:
        return sorted(self.backend(req).describe_availability_zones(), key=lambda z: z.name)

    def _standard_zone_names(self, req) -> list[str]:
        return [z.name for z in self._standard_zones(req)]

    def local_zone(self, req) -> LocalZone | None:
        with self._lock:
            zone = self._local_zones.get(req.region)
        if zone is not None:
            return zone
        zones = self._standard_zones(req)
        if not zones:
            return None   # a region moto has no zones for: no zone rules
        first = zones[0]
        short = first.zone_id.split("-az")[0]
        city = LOCAL_ZONE_CITY.get(req.region, "lz")
        group = f"{req.region}-{city}-1"
        zone = LocalZone(f"{group}a", f"{short}-{city}1-az1", group, req.region, first.name, first.zone_id)
        with self._lock:
            self._local_zones[req.region] = zone
        return zone

    def offered(self, req, itype: str, zone_name: str) -> bool:
        local = self.local_zone(req)
        if local is not None and zone_name == local.name:
            return itype in self.zone_rules.local_zone_types
        names = self._standard_zone_names(req)
        if names and zone_name == names[0]:
            return itype not in self.zone_rules.unsupported_types
        return True

    def _rewrite_zones(self, req, doc):
        """An opted-in Local Zone is listed with the region's zones, in name order."""
        local = self.local_zone(req)
        items_parent = Q.walk(doc.root, ("availabilityZoneInfo",))
        if local is None or not items_parent:
            return
        parent = items_parent[0]
        region_group = f"{req.region}-zg-1"
        for item in Q.kids(parent, "item"):  # what EC2 also says of a standard zone
            for name, value in (("optInStatus", "opt-in-not-required"), ("groupName", region_group),
                                ("networkBorderGroup", req.region)):
                if not Q.kids(item, name):
                    ET.SubElement(item, Q.q(doc.ns, name)).text = value
                    doc.changed = True
        filters = Q.filters(req.params)
        names, ids = req.values("ZoneName"), req.values("ZoneId")

        def wanted(fields: dict) -> bool:
            if (names or ids) and fields.get("zoneName") not in names and fields.get("zoneId") not in ids:
                return False
            return all(Q.matches(fields.get(ZONE_FILTERS[f]), vals)
                       for f, vals in filters.items() if f in ZONE_FILTERS)

        if Q.remove_items(doc.root, ("availabilityZoneInfo", "item"),
                          lambda item: wanted({Q.ln(c.tag): c.text for c in item})):
            doc.changed = True
        if wanted(local.fields()) and not any(Q.text(i, "zoneName") == local.name for i in Q.kids(parent, "item")):
            item = ET.Element(Q.q(doc.ns, "item"))
            ET.SubElement(item, Q.q(doc.ns, "messageSet"))
            for name, value in local.fields().items():
                ET.SubElement(item, Q.q(doc.ns, name)).text = value
            existing = Q.kids(parent, "item")
            position = sum(1 for i in existing if (Q.text(i, "zoneName") or "") < local.name)
            anchor = list(parent).index(existing[position]) if position < len(existing) else len(parent)
            parent.insert(anchor, item)
            doc.changed = True
            self.count(req)

    def _rewrite_offerings(self, req, doc):
        """LocationType availability-zone or availability-zone-id, filters instance-type and
        location: a zone that does not offer a type is not listed for it."""
        location_type = req.get("LocationType") or "region"
        if location_type not in ("availability-zone", "availability-zone-id"):
            return
        by_id = location_type == "availability-zone-id"
        zones = self._standard_zones(req)
        if not zones:
            return
        first = zones[0].zone_id if by_id else zones[0].name
        local = self.local_zone(req)
        if local is None:
            return
        local_location = local.zone_id if by_id else local.name
        unsupported = set(self.zone_rules.unsupported_types)
        removed = Q.remove_items(doc.root, ("instanceTypeOfferingSet", "item"),
                                 lambda item: not (Q.text(item, "location") == first
                                                   and Q.text(item, "instanceType") in unsupported))
        filters = Q.filters(req.params)
        added = 0
        parents = Q.walk(doc.root, ("instanceTypeOfferingSet",))
        last_page = not Q.text(doc.root, "nextToken")
        if parents and last_page and Q.matches(local_location, filters.get("location", ["*"])):
            for itype in self.zone_rules.local_zone_types:
                if not Q.matches(itype, filters.get("instance-type", ["*"])):
                    continue
                item = ET.SubElement(parents[0], Q.q(doc.ns, "item"))
                for name, value in (("instanceType", itype), ("locationType", location_type),
                                    ("location", local_location)):
                    ET.SubElement(item, Q.q(doc.ns, name)).text = value
                added += 1
        if removed or added:
            doc.changed = True
            self.count(req)

    def _move_subnet_to_local_zone(self, req, doc):
        from moto.ec2.models.availability_zones_and_regions import Zone

        zone: LocalZone = req.notes["local_zone"]
        subnet_el = Q.walk(doc.root, ("subnet",))
        sid = Q.text(subnet_el[0], "subnetId") if subnet_el else None
        if not sid:
            return
        moto_zone = Zone(name=zone.name, region_name=zone.region, zone_id=zone.zone_id, zone_type="local-zone")
        for name, value in (("opt_in_status", "opted-in"), ("group_name", zone.group),
                            ("network_border_group", zone.group), ("parent_zone_name", zone.parent_name),
                            ("parent_zone_id", zone.parent_id)):
            setattr(moto_zone, name, value)
        try:
            self.backend(req).get_subnet(sid)._availability_zone = moto_zone
        except Q.moto_errors():
            return
        Q.set_text(subnet_el[0], "availabilityZone", zone.name, doc.ns)
        Q.set_text(subnet_el[0], "availabilityZoneId", zone.zone_id, doc.ns)
        doc.changed = True
        self.count(req)
