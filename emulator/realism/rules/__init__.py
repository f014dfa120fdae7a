"""The registry: every rule, in the order the layer applies them. A new rule is one module here
(a `Rule` subclass whose docstring names its source) and one line below."""
from __future__ import annotations

from .base import Rule
from .eventual_consistency import EventualConsistency
from .igw_mapped_addresses import IgwMappedAddresses
from .instance_states import InstanceStates
from .lingering_enis import LingeringEnis
from .listing_lag import ListingLag
from .nat_gateway_eip import NatGatewayEip
from .nat_gateway_eni import NatGatewayEni
from .nat_gateway_not_found import NatGatewayNotFound
from .nat_gateway_states import NatGatewayStates
from .others_instances import OthersInstances
from .route_blackhole import RouteBlackhole
from .tag_resource_types import TagResourceTypes
from .unknown_allocation import UnknownAllocation
from .zones import ZoneRules, Zones

REGISTRY: tuple[type[Rule], ...] = (
    EventualConsistency,
    ListingLag,
    UnknownAllocation,
    NatGatewayNotFound,
    NatGatewayStates,
    NatGatewayEni,
    NatGatewayEip,
    RouteBlackhole,
    TagResourceTypes,
    InstanceStates,
    LingeringEnis,
    IgwMappedAddresses,
    Zones,
    OthersInstances,
)
RULES: tuple[str, ...] = tuple(rule.name for rule in REGISTRY)

__all__ = ["REGISTRY", "RULES", "Rule", "ZoneRules"]
