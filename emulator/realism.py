"""A stricter emulator: a WSGI layer in front of moto's server app that answers as EC2 does where
moto doesn't.

moto answers every call at once and with the final state: a resource is visible the moment its
create call returns, an instance is `running` as soon as RunInstances returns, a NAT gateway is
`available` at once and `deleted` at once, a security group can be deleted the moment its instance
is terminated, an internet gateway detaches from a VPC full of public addresses, every zone offers
every instance type, and the account holds nobody's resources but ours. Code that passes against
that can still fail on AWS. This layer sits in the same process as moto (it reads moto's backends,
`moto.ec2.models.ec2_backends`, directly) and rewrites or refuses EC2 Query API calls so the aws
code path meets EC2's answers in CI. Every rule below names the AWS documentation it follows; the
delays are scaled down (seconds, see `Timings`) but the order of states is AWS's.

What it models (rule name: behaviour):

  eventual-consistency  a new ID is "not found" for `Timings.consistency` seconds after the create
                        call that returned it: any call naming it (Describe* by ID, Attach*, Create*
                        with it as parent or target, Authorize*, CreateTags, Terminate*, ...) gets
                        EC2's own NotFound code, and Describe* lists leave it out.
  nat-gateway-states    DescribeNatGateways: `pending` then `available` after CreateNatGateway,
                        `deleting` then `deleted` after DeleteNatGateway (and the `state` filter
                        sees those states).
  instance-states       `pending` before `running` (RunInstances, StartInstances), `stopping`
                        before `stopped`, `shutting-down` before `terminated`, in DescribeInstances
                        (with its instance-state-* filters) and DescribeInstanceStatus; StopInstances
                        of a pending instance and StartInstances of a stopping one are refused with
                        IncorrectInstanceState.
  lingering-enis        after TerminateInstances (until the shutting-down period plus
                        `Timings.eni_linger` has passed) and while a NAT gateway is deleting, their
                        network interfaces still hold their security groups, subnet and VPC:
                        DeleteSecurityGroup / DeleteSubnet / DeleteVpc answer DependencyViolation.
  igw-mapped-addresses  DetachInternetGateway is refused (DependencyViolation, "Network vpc-... has
                        some mapped public address(es)...") while the VPC has public addresses
                        mapped: an instance's Elastic IP or public IP until the instance has stopped
                        or terminated, a NAT gateway's Elastic IP until it is deleted, an Elastic IP
                        on a network interface of its own.
  zones                 DescribeAvailabilityZones also lists an opted-in Local Zone of the region
                        (us-east-1-bos-1a in us-east-1; ZoneType local-zone; it sorts before the
                        region's `a` zone) and evaluates the zone filters (zone-type, opt-in-status,
                        group-name, ...) on every zone; subnets can be created in it; the first
                        standard zone by name does not offer t2.micro (DescribeInstanceTypeOfferings
                        leaves it out there) and the Local Zone offers only a few larger types;
                        RunInstances of a type a zone does not offer fails with `Unsupported`.
  others-instances      the account is shared: the first RunInstances tagged Env=X and Role=Y makes
                        "another team" launch a *stopped* instance in the region's default VPC with
                        the same Env and Role tags (and no Project tag), once per (Env, Role).

What it still cannot model: real timings (AWS takes seconds to minutes and varies; here every
window is a fixed, scaled-down number), eventual consistency as it really is (probabilistic, and
also stale reads after modify/delete calls; here only new IDs, deterministically), real capacity
(InsufficientInstanceCapacity, instance and address limits, throttling), failed NAT gateways (a
NAT gateway created with a not-yet-visible allocation is refused here, while EC2 may accept it and
let it reach `failed`), instance status checks (`initializing`), real per-zone offerings beyond
the two rules above, and any service but EC2 (everything else passes through untouched).

Use (one function; the switch and the counts are described in emulator/README.md):

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    app = realism.wrap(DomainDispatcherApplication(create_backend_app), counts_path=path)

`TWOTIER_EMULATOR_REALISM=off` turns the layer into a pass-through (also `0`, `false`, `no`); a
comma-separated list of rule names turns on only those. `TWOTIER_EMULATOR_REALISM_SCALE` multiplies
every delay; `TWOTIER_EMULATOR_REALISM_COUNTS` names the JSON file the counts are written to when
`counts_path` isn't given. Put any signature-checking middleware *outside* this layer: the layer
may rewrite a request's parameters before moto sees them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import io
import json
import os
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.sax.saxutils import escape

RULES = (
    "eventual-consistency",
    "nat-gateway-states",
    "instance-states",
    "lingering-enis",
    "igw-mapped-addresses",
    "zones",
    "others-instances",
)
ENV_SWITCH = "TWOTIER_EMULATOR_REALISM"
ENV_SCALE = "TWOTIER_EMULATOR_REALISM_SCALE"
ENV_COUNTS = "TWOTIER_EMULATOR_REALISM_COUNTS"
_OFF = ("off", "0", "false", "no", "disabled")
_ON = ("", "on", "1", "true", "yes", "all")
MAX_BODY = 32 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Configuration: timings, the switch, the counts
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Timings:
    """How long each transitional answer lasts, in seconds (already scaled down from AWS's).

    On AWS: a new ID usually propagates within a few seconds; an instance is `pending` for ~10-60 s
    and `stopping` / `shutting-down` for ~30-120 s; a NAT gateway is `pending` for ~1-5 min and
    `deleting` for ~1 min; a terminated instance's network interface can hold its security group
    for seconds to minutes. Only the order of states is AWS's, never the durations.
    """

    consistency: float = 1.5
    instance_pending: float = 4.0
    instance_stopping: float = 4.0
    instance_shutting_down: float = 4.0
    nat_pending: float = 6.0
    nat_deleting: float = 4.0
    eni_linger: float = 4.0

    def scaled(self, factor: float) -> Timings:
        if factor < 0:
            raise ValueError("a timing scale can't be negative")
        return Timings(**{f.name: getattr(self, f.name) * factor for f in dataclasses.fields(self)})

    @classmethod
    def from_env(cls, base: Timings | None = None) -> Timings:
        base = base or cls()
        raw = os.environ.get(ENV_SCALE, "").strip()
        return base.scaled(float(raw)) if raw else base


@dataclasses.dataclass(frozen=True)
class ZoneRules:
    """What the zones rule adds (see `_LocalZone` for the zone itself)."""

    unsupported_types: tuple[str, ...] = ("t2.micro",)  # not offered in the first standard zone
    # A plausible Local Zone catalogue (Local Zones offer a few current-generation families, and no
    # t2); the rule this layer cares about is only that t2.micro is not among them.
    local_zone_types: tuple[str, ...] = ("t3.medium", "t3.xlarge", "c5.2xlarge", "c5d.2xlarge",
                                         "m5.2xlarge", "r5.2xlarge", "g4dn.2xlarge")


class PausableClock:
    """`time.monotonic` that can be held still: `with clock.paused(): ...`. For tests: a check made
    "immediately after" a call can't be outrun by a loaded machine, and real time runs on afterwards
    (the paused stretch is skipped, so every window still lasts its full length)."""

    def __init__(self, base=time.monotonic):
        self._base = base
        self._lock = threading.Lock()
        self._offset = 0.0
        self._held_at: float | None = None
        self._depth = 0

    def __call__(self) -> float:
        with self._lock:
            now = self._held_at if self._held_at is not None else self._base()
            return now - self._offset

    @contextlib.contextmanager
    def paused(self):
        with self._lock:
            if self._depth == 0:
                self._held_at = self._base()
            self._depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._offset += self._base() - self._held_at
                    self._held_at = None


def rules_from_env(value: str | None = None) -> frozenset[str]:
    """The rules the switch turns on: all by default, none for `off`, or a comma-separated list."""
    raw = (os.environ.get(ENV_SWITCH, "") if value is None else value).strip().lower()
    if raw in _ON:
        return frozenset(RULES)
    if raw in _OFF:
        return frozenset()
    names = {part.strip() for part in raw.split(",") if part.strip()}
    unknown = names - set(RULES)
    if unknown:
        raise ValueError(f"{ENV_SWITCH}: unknown rule(s) {sorted(unknown)}; the rules are {', '.join(RULES)}")
    return frozenset(names)


class Counts:
    """How many answers each rule injected (answers that differ from moto's), thread-safe.

    With `path`, every change is also written there as JSON (atomically: a temporary file renamed
    over it), so another process can read it with `read_counts(path)`: the lab's API runs in the
    lab daemon's own process.
    """

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self._by_rule: dict[str, int] = {rule: 0 for rule in RULES}
        self._by_action: dict[str, dict[str, int]] = {rule: {} for rule in RULES}
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write()

    def add(self, rule: str, action: str = "", n: int = 1) -> None:
        if rule not in self._by_rule:
            raise KeyError(rule)
        with self._lock:
            self._by_rule[rule] += n
            if action:
                per = self._by_action[rule]
                per[action] = per.get(action, 0) + n
            if self.path:
                self._write()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_rule)

    def by_action(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {rule: dict(per) for rule, per in self._by_action.items()}

    @property
    def total(self) -> int:
        return sum(self.snapshot().values())

    def reset(self) -> None:
        with self._lock:
            self._by_rule = {rule: 0 for rule in RULES}
            self._by_action = {rule: {} for rule in RULES}
            if self.path:
                self._write()

    def _write(self) -> None:  # under self._lock
        if self.path is None:
            return
        data = {"pid": os.getpid(), "updated": time.time(), "by_rule": self._by_rule,
                "by_action": self._by_action, "total": sum(self._by_rule.values())}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.path)


def read_counts(path: str | os.PathLike) -> dict[str, int]:
    """The counts by rule a layer in another process wrote to `path` (all zero if it wrote none)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {rule: 0 for rule in RULES}
    return {rule: int(data.get("by_rule", {}).get(rule, 0)) for rule in RULES}


# ---------------------------------------------------------------------------------------------
# EC2's answers
# ---------------------------------------------------------------------------------------------

class Ec2Error(Exception):
    """An EC2 client error, answered as EC2 does (see `_error_response`)."""

    def __init__(self, rule: str, code: str, message: str, status: str = "400 Bad Request"):
        super().__init__(f"{code}: {message}")
        self.rule, self.code, self.message, self.status = rule, code, message, status


def _error_response(err: Ec2Error) -> tuple[str, list[tuple[str, str]], bytes]:
    """AWS: "Error codes for the Amazon EC2 API", section "Example error response": a
    `Response/Errors/Error` document with `Code` and `Message`, and a `RequestID`, with an HTTP 4xx
    status for a client error. botocore's ec2 parser reads exactly these elements."""
    request_id = str(uuid.uuid4())
    body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
            f"</Error></Errors><RequestID>{request_id}</RequestID></Response>").encode()
    headers = [("Content-Type", "text/xml;charset=UTF-8"), ("Content-Length", str(len(body))),
               ("x-amzn-RequestId", request_id), ("Server", "AmazonEC2")]
    return err.status, headers, body


# AWS: "Eventual consistency in the Amazon EC2 API" names InvalidInstanceID.NotFound and
# InvalidGroup.NotFound; the other codes and messages are the ones EC2 gives for an ID it doesn't
# know ("Error codes for the Amazon EC2 API", client errors for specific actions). CreateRoute right
# after CreateNatGateway answers InvalidNatGatewayID.NotFound (boto/boto3#779), DescribeNatGateways
# answers NatGatewayNotFound (what boto3's NatGatewayAvailable waiter retries on).
_NOT_FOUND = {
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
_ID_RE = re.compile(r"^(i|sg|igw|rtb|vpc|subnet|nat|eipalloc|eni)-[0-9a-f]{8,17}$")
# Request parameters (the last non-numeric part of a Query API key) that name a resource by ID.
_ID_PARAMS = {"InstanceId", "GroupId", "SecurityGroupId", "InternetGatewayId", "VpcId", "SubnetId",
              "RouteTableId", "GatewayId", "NatGatewayId", "AllocationId", "NetworkInterfaceId", "ResourceId"}
# Which element of a create call's answer carries the new ID.
_CREATED = {
    "RunInstances": ("instancesSet", "item", "instanceId"),
    "CreateVpc": ("vpc", "vpcId"),
    "CreateSubnet": ("subnet", "subnetId"),
    "CreateSecurityGroup": ("groupId",),
    "CreateInternetGateway": ("internetGateway", "internetGatewayId"),
    "CreateRouteTable": ("routeTable", "routeTableId"),
    "CreateNatGateway": ("natGateway", "natGatewayId"),
    "AllocateAddress": ("allocationId",),
    "CreateNetworkInterface": ("networkInterface", "networkInterfaceId"),
}
# Describe* lists that leave out an item whose ID is not visible yet: (path to the items, ID element).
_LISTED = {
    "DescribeVpcs": (("vpcSet", "item"), "vpcId"),
    "DescribeSubnets": (("subnetSet", "item"), "subnetId"),
    "DescribeSecurityGroups": (("securityGroupInfo", "item"), "groupId"),
    "DescribeInternetGateways": (("internetGatewaySet", "item"), "internetGatewayId"),
    "DescribeRouteTables": (("routeTableSet", "item"), "routeTableId"),
    "DescribeNatGateways": (("natGatewaySet", "item"), "natGatewayId"),
    "DescribeAddresses": (("addressesSet", "item"), "allocationId"),
    "DescribeNetworkInterfaces": (("networkInterfaceSet", "item"), "networkInterfaceId"),
    "DescribeInstanceStatus": (("instanceStatusSet", "item"), "instanceId"),
    "DescribeInstances": (("reservationSet", "item", "instancesSet", "item"), "instanceId"),
}

# AWS: "State change events for Amazon EC2 instances" / "Amazon EC2 instance state changes": launch
# or start -> pending -> running; stop -> stopping -> stopped; terminate -> shutting-down ->
# terminated. The codes are the API's InstanceState codes.
_STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
_INSTANCE_CHANGES = {  # kind -> (moto's final state, EC2's state before it, the Timings field)
    "launch": ("running", "pending", "instance_pending"),
    "start": ("running", "pending", "instance_pending"),
    "stop": ("stopped", "stopping", "instance_stopping"),
    "terminate": ("terminated", "shutting-down", "instance_shutting_down"),
}
_INSTANCE_CALLS = {"StartInstances": "start", "StopInstances": "stop", "TerminateInstances": "terminate"}

# Local Zones this layer knows by city; other regions get a synthetic one (`lz1`).
_LOCAL_ZONE_CITY = {"us-east-1": "bos", "us-west-2": "lax"}


@dataclasses.dataclass(frozen=True)
class _LocalZone:
    """AWS: API reference "AvailabilityZone" (groupName, networkBorderGroup, optInStatus `opted-in`
    for a Local Zone the account opted into, parentZoneName/Id, zoneType `local-zone`) and "Local
    Zones" (named `<region>-<city>-<n><letter>`, e.g. us-east-1-bos-1a). The parent is modelled as
    the region's first standard zone."""

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


# What each DescribeAvailabilityZones filter reads (AWS: API reference "DescribeAvailabilityZones").
_ZONE_FILTERS = {"zone-name": "zoneName", "zone-id": "zoneId", "zone-type": "zoneType", "state": "zoneState",
                 "region-name": "regionName", "opt-in-status": "optInStatus", "group-name": "groupName",
                 "network-border-group": "networkBorderGroup", "parent-zone-name": "parentZoneName",
                 "parent-zone-id": "parentZoneId"}


# ---------------------------------------------------------------------------------------------
# Small helpers: Query API parameters, XML
# ---------------------------------------------------------------------------------------------

def _leaf(key: str) -> str:
    for part in reversed(key.split(".")):
        if not part.isdigit():
            return part
    return key


def _filters(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The request's Filter.N.Name / Filter.N.Value.M as {name: [values]}."""
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for key, value in params:
        parts = key.split(".")
        if parts[0] != "Filter" or len(parts) < 3:
            continue
        if parts[2] == "Name":
            names[parts[1]] = value
        elif parts[2] == "Value":
            values.setdefault(parts[1], []).append(value)
    return {name: values.get(n, []) for n, name in names.items()}


def _strip_filters(params: list[tuple[str, str]], strip: set[str]):
    """Remove the named filters (renumbering the rest from 1, as moto reads them) and return
    (params without them, {name: values} of the removed ones)."""
    names = {key.split(".")[1]: value for key, value in params
             if key.startswith("Filter.") and key.count(".") == 2 and key.endswith(".Name")}
    removed_idx = {n for n, name in names.items() if name in strip}
    if not removed_idx:
        return params, {}
    removed = {name: vals for name, vals in _filters(params).items() if name in strip}
    kept_idx = sorted((n for n in names if n not in removed_idx), key=int)
    renumber = {old: str(i + 1) for i, old in enumerate(kept_idx)}
    out = []
    for key, value in params:
        if key.startswith("Filter."):
            parts = key.split(".")
            if parts[1] in removed_idx:
                continue
            if parts[1] in renumber:
                parts[1] = renumber[parts[1]]
                key = ".".join(parts)
        out.append((key, value))
    return out, removed


def _matches(value: str | None, patterns: list[str]) -> bool:
    """EC2 filter values match exactly or with the `*` and `?` wildcards."""
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _ln(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(el, name: str) -> list:
    return [c for c in el if _ln(c.tag) == name]


def _walk(el, path) -> list:
    found = [el]
    for name in path:
        found = [c for parent in found for c in _kids(parent, name)]
    return found


def _text(el, name: str) -> str | None:
    kids = _kids(el, name)
    return kids[0].text if kids else None


def _set_text(el, name: str, value: str, ns: str) -> None:
    kids = _kids(el, name)
    if kids:
        kids[0].text = value
    else:
        ET.SubElement(el, _q(ns, name)).text = value


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}" if ns else name


def _remove_items(root, path, keep) -> int:
    """Remove the items at `path` (ending in "item") for which keep(item) is false; return how many."""
    removed = 0
    for parent in _walk(root, path[:-1]):
        for item in _kids(parent, path[-1]):
            if not keep(item):
                parent.remove(item)
                removed += 1
    return removed


class _Doc:
    """A moto answer as XML, written back only when something changed."""

    def __init__(self, body: bytes):
        self.body = body
        self.root = ET.fromstring(body)
        self.ns = self.root.tag[1:].split("}", 1)[0] if self.root.tag.startswith("{") else ""
        self.changed = False

    def bytes(self) -> bytes:
        if not self.changed:
            return self.body
        text = ET.tostring(self.root, encoding="unicode", default_namespace=self.ns or None)
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode()


# ---------------------------------------------------------------------------------------------
# The layer
# ---------------------------------------------------------------------------------------------

class _Request:
    def __init__(self, environ, body: bytes, params: list[tuple[str, str]], region: str, account: str):
        self.environ = environ
        self.body = body
        self.params = params
        self.forward_params: list[tuple[str, str]] | None = None  # set when moto must see other params
        self.action = self.get("Action") or ""
        self.region = region
        self.account = account
        self.notes: dict = {}

    def get(self, key: str, default=None):
        for k, v in self.params:
            if k == key:
                return v
        return default

    def values(self, prefix: str) -> list[str]:
        """Values of `prefix.N` keys (a flattened list parameter), in order."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)$")
        found = [(int(m.group(1)), v) for k, v in self.params if (m := pattern.match(k))]
        return [v for _, v in sorted(found)]

    def tags(self, resource_type: str) -> dict[str, str]:
        """Tags a create call asks for through TagSpecification.N for this resource type."""
        tags: dict[str, str] = {}
        for n in range(1, 50):
            kind = self.get(f"TagSpecification.{n}.ResourceType")
            if kind is None:
                break
            if kind != resource_type:
                continue
            for m in range(1, 51):
                key = self.get(f"TagSpecification.{n}.Tag.{m}.Key")
                if key is None:
                    break
                tags[key] = self.get(f"TagSpecification.{n}.Tag.{m}.Value", "")
        return tags


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    state: str         # the state the instance is leaving, as EC2 shows it
    groups: frozenset
    subnet: str | None
    vpc: str | None
    public_ip: str | None


@dataclasses.dataclass
class _Change:
    kind: str          # launch | start | stop | terminate
    at: float
    groups: frozenset = frozenset()
    subnet: str | None = None
    vpc: str | None = None
    public_ip: str | None = None


class RealismLayer:
    """The WSGI middleware; make one with `wrap()`."""

    def __init__(self, app, *, rules=None, timings: Timings | None = None, counts: Counts | None = None,
                 zone_rules: ZoneRules | None = None, clock=time.monotonic):
        self.app = app
        self.rules = frozenset(rules_from_env() if rules is None else rules)
        unknown = self.rules - set(RULES)
        if unknown:
            raise ValueError(f"unknown rule(s) {sorted(unknown)}")
        self.timings = timings or Timings.from_env()
        self.counts = counts or Counts(os.environ.get(ENV_COUNTS) or None)
        self.zone_rules = zone_rules or ZoneRules()
        self.clock = clock
        self._lock = threading.Lock()
        self.reset_state()

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    def on(self, rule: str) -> bool:
        return rule in self.rules

    def reset_state(self) -> None:
        """Forget everything the layer remembers (moto's /moto-api/reset does this too)."""
        with self._lock:
            self._visible_at: dict[str, float] = {}     # new ID -> when it becomes visible
            self._instances: dict[str, _Change] = {}     # instance ID -> its last state change
            self._nat_created: dict[str, float] = {}
            self._nat_deleted: dict[str, float] = {}
            self._others: set[tuple] = set()             # (account, region, Env, Role) launched for
            self._others_ids: set[str] = set()           # the instances "another team" runs
            self._local_zones: dict[str, _LocalZone] = {}

    # -- WSGI ------------------------------------------------------------------------------------

    def __call__(self, environ, start_response):
        if not self.enabled:
            return self.app(environ, start_response)
        path = environ.get("PATH_INFO") or ""
        if path.startswith("/moto-api"):
            result = self.app(environ, start_response)
            if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                self.reset_state()
            return result
        req = self._read(environ)
        if req is None:
            return self.app(environ, start_response)
        try:
            self._before(req)
        except Ec2Error as err:
            self.counts.add(err.rule, req.action)
            status, headers, body = _error_response(err)
            start_response(status, headers)
            return [body]
        status, headers, body = self._call(self._forward_environ(req))
        if status.startswith("200"):
            try:
                body = self._after(req, body)
            except ET.ParseError:
                pass  # not an XML answer: moto's, untouched
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
        start_response(status, headers)
        return [body]

    def _read(self, environ) -> _Request | None:
        """The EC2 Query API request in `environ`, or None for anything else (passed through)."""
        service, region, access_key = _credential_scope(environ.get("HTTP_AUTHORIZATION", ""))
        if service and service != "ec2":
            return None
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("wsgi.input_terminated", None)
        if method == "POST" and "x-www-form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            source = body.decode("utf-8", "replace")
        elif method == "GET":
            source = environ.get("QUERY_STRING", "")
        else:
            return None
        params = parse_qsl(source, keep_blank_values=True)
        values = dict(params)
        if "Action" not in values or (not service and values.get("Version") != "2016-11-15"):
            return None
        return _Request(environ, body, params, region or "us-east-1", _account(environ, access_key))

    def _forward_environ(self, req: _Request):
        if req.forward_params is None:
            return req.environ
        return _with_params(req.environ, req.forward_params)

    def _call(self, environ) -> tuple[str, list, bytes]:
        captured: dict = {}
        chunks: list[bytes] = []

        def start_response(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, list(headers)
            return chunks.append

        result = self.app(environ, start_response)
        try:
            for chunk in result:
                chunks.append(chunk)
        finally:
            if hasattr(result, "close"):
                result.close()
        return captured["status"], captured["headers"], b"".join(chunks)

    def _backend(self, req: _Request):
        from moto.ec2.models import ec2_backends

        return ec2_backends[req.account][req.region]

    # -- before moto -------------------------------------------------------------------------------

    def _before(self, req: _Request) -> None:
        now = self.clock()
        action = req.action
        if self.on("eventual-consistency"):
            self._refuse_unpropagated(req, now)
        if action == "RunInstances" and self.on("zones"):
            self._refuse_unoffered(req)
        if action in ("StartInstances", "StopInstances") and self.on("instance-states"):
            self._refuse_wrong_state(req, now)
        if action in _INSTANCE_CALLS:
            req.notes["before"] = self._instance_snapshots(req)
        if action in ("DeleteSecurityGroup", "DeleteSubnet", "DeleteVpc") and self.on("lingering-enis"):
            self._refuse_lingering(req, now)
        if action == "DetachInternetGateway" and self.on("igw-mapped-addresses"):
            self._refuse_mapped(req, now)
        if action == "CreateSubnet" and self.on("zones"):
            self._route_local_zone_subnet(req)
        if action in ("DescribeInstances", "DescribeInstanceStatus") and self.on("instance-states"):
            params, removed = _strip_filters(req.forward_params or req.params,
                                             {"instance-state-name", "instance-state-code"})
            if removed:
                req.forward_params, req.notes["state_filters"] = params, removed
        if action == "DescribeNatGateways" and self.on("nat-gateway-states"):
            params, removed = _strip_filters(req.forward_params or req.params, {"state"})
            if removed:
                req.forward_params, req.notes["state_filters"] = params, removed

    def _unpropagated(self, resource_id: str, now: float) -> bool:
        visible_at = self._visible_at.get(resource_id)
        return visible_at is not None and now < visible_at

    def _refuse_unpropagated(self, req: _Request, now: float) -> None:
        """AWS: "Eventual consistency in the Amazon EC2 API": the ID a create call returns may not
        have propagated yet when the next call names it, and that call then answers that the
        resource doesn't exist (its examples: InvalidInstanceID.NotFound after RunInstances, for
        DescribeInstances and for TerminateInstances too, where it does not mean the instance is
        gone; InvalidGroup.NotFound after CreateSecurityGroup)."""
        hits: list[tuple[str, str]] = []
        for key, value in req.params:
            if key.startswith(("Filter.", "TagSpecification.", "Tag.")):
                continue
            leaf = _leaf(key)
            if leaf in _ID_PARAMS and _ID_RE.match(value) and self._unpropagated(value, now):
                hits.append((leaf, value))
        if not hits:
            return
        leaf, first = hits[0]
        prefix = first.split("-", 1)[0]
        code, message, plural = _NOT_FOUND[prefix]
        if prefix == "igw" and leaf == "GatewayId":       # CreateRoute / ReplaceRoute GatewayId
            code, message = "InvalidGatewayID.NotFound", "The gateway ID '{}' does not exist"
        if prefix == "nat" and req.action in ("DescribeNatGateways", "DeleteNatGateway"):
            code, message = "NatGatewayNotFound", "NAT gateway {} was not found"
        same = [v for lf, v in hits if v.split("-", 1)[0] == prefix]
        if plural and len(same) > 1:
            raise Ec2Error("eventual-consistency", code, plural.format(", ".join(same)))
        raise Ec2Error("eventual-consistency", code, message.format(first))

    def _refuse_unoffered(self, req: _Request) -> None:
        """AWS: Knowledge Center "Why do I receive the error 'Your requested instance type is not
        supported in your requested Availability Zone'" and API reference
        "DescribeInstanceTypeOfferings": not every zone offers every type; RunInstances into such a
        zone fails with `Unsupported` and names the zones that do offer it."""
        itype = req.get("InstanceType")
        if not itype:
            return
        backend = self._backend(req)
        subnet_id = req.get("SubnetId") or req.get("NetworkInterface.1.SubnetId")
        zone = req.get("Placement.AvailabilityZone")
        if subnet_id:
            try:
                zone = backend.get_subnet(subnet_id).availability_zone
            except _moto_errors():
                return  # moto answers for an unknown subnet
        if not zone or self._offered(req, itype, zone):
            return
        choices = [z for z in self._standard_zone_names(req) if self._offered(req, itype, z)]
        raise Ec2Error("zones", "Unsupported",
                       f"Your requested instance type ({itype}) is not supported in your requested Availability "
                       f"Zone ({zone}). Please retry your request by not specifying an Availability Zone or "
                       f"choosing {', '.join(choices)}.")

    def _refuse_wrong_state(self, req: _Request, now: float) -> None:
        """AWS: "Amazon EC2 instance state changes" and "Error codes for the Amazon EC2 API"
        (IncorrectInstanceState): an instance that never reached `running` can't be stopped
        ("Instance '...' cannot be stopped as it has never reached the 'running' state"), one that is
        stopping can't be started until it is stopped, and neither once it is shutting down."""
        backend = self._backend(req)
        starting = req.action == "StartInstances"
        for iid in req.values("InstanceId"):
            try:
                moto_state = backend.get_instance(iid)._state.name
            except _moto_errors():
                continue
            state = self._instance_state(iid, moto_state, now)
            if starting and state in ("stopping", "shutting-down", "terminated"):
                raise Ec2Error("instance-states", "IncorrectInstanceState",
                               f"The instance '{iid}' is not in a state from which it can be started.")
            if not starting and state in ("pending", "shutting-down", "terminated"):
                change = self._instances.get(iid)
                if state == "pending" and change is not None and change.kind == "launch":
                    message = f"Instance '{iid}' cannot be stopped as it has never reached the 'running' state."
                else:
                    message = f"The instance '{iid}' is not in a state from which it can be stopped."
                raise Ec2Error("instance-states", "IncorrectInstanceState", message)

    def _instance_snapshots(self, req: _Request) -> dict[str, _Snapshot]:
        """What an instance holds as a start, stop or terminate call reaches it, read before moto
        changes it (moto deletes a terminated instance's interfaces at once)."""
        backend = self._backend(req)
        now = self.clock()
        snaps = {}
        for iid in req.values("InstanceId"):
            try:
                inst = backend.get_instance(iid)
            except _moto_errors():
                continue
            if inst._state.name == "terminated":
                continue
            groups = {g.id for g in (inst.security_groups or [])}
            for nic in list(getattr(inst, "nics", {}).values()):
                groups.update(g.id for g in (_prop(nic, "group_set") or []))
            snaps[iid] = _Snapshot(self._instance_state(iid, inst._state.name, now), frozenset(groups),
                                   _prop(inst, "subnet_id"), _prop(inst, "vpc_id"), _prop(inst, "public_ip"))
        return snaps

    def _lingering(self, now: float):
        """Instances whose network interfaces still exist although they were terminated."""
        window = self.timings.instance_shutting_down + self.timings.eni_linger
        return [(iid, ch) for iid, ch in list(self._instances.items())
                if ch.kind == "terminate" and now < ch.at + window]

    def _deleting_nats(self, req: _Request, now: float):
        backend = self._backend(req)
        out = []
        for nid, at in list(self._nat_deleted.items()):
            nat = backend.nat_gateways.get(nid) if hasattr(backend, "nat_gateways") else None
            if nat is not None and now < at + self.timings.nat_deleting:
                out.append(nat)
        return out

    def _refuse_lingering(self, req: _Request, now: float) -> None:
        """AWS: API reference "DeleteSecurityGroup": deleting a group still associated with an
        instance or a network interface fails with DependencyViolation; a terminated instance's
        network interface is detached and deleted
        some time after the instance is gone, which is why terraform-provider-aws retries
        DeleteSecurityGroup on DependencyViolation (resourceSecurityGroupDelete) and waits for
        lingering ENIs. A deleting NAT gateway's interface likewise holds its subnet and VPC."""
        lingering = self._lingering(now)
        nats = self._deleting_nats(req, now)
        if req.action == "DeleteSecurityGroup":
            gid = req.get("GroupId") or self._group_id_by_name(req, req.get("GroupName"))
            if gid and any(gid in ch.groups for _, ch in lingering):
                raise Ec2Error("lingering-enis", "DependencyViolation", f"resource {gid} has a dependent object")
        elif req.action == "DeleteSubnet":
            sid = req.get("SubnetId")
            if sid and (any(ch.subnet == sid for _, ch in lingering) or any(n.subnet_id == sid for n in nats)):
                raise Ec2Error("lingering-enis", "DependencyViolation",
                               f"The subnet '{sid}' has dependencies and cannot be deleted.")
        elif req.action == "DeleteVpc":
            vid = req.get("VpcId")
            if vid and (any(ch.vpc == vid for _, ch in lingering) or any(n.vpc_id == vid for n in nats)):
                raise Ec2Error("lingering-enis", "DependencyViolation",
                               f"The vpc '{vid}' has dependencies and cannot be deleted.")

    def _group_id_by_name(self, req: _Request, name: str | None) -> str | None:
        if not name:
            return None
        try:
            default_vpc = self._backend(req).get_default_vpc()
            for group in self._backend(req).describe_security_groups(group_names=[name]):
                if default_vpc is None or group.vpc_id == default_vpc.id:
                    return group.id
        except _moto_errors():
            return None
        return None

    def _refuse_mapped(self, req: _Request, now: float) -> None:
        """AWS: API reference "DetachInternetGateway": the VPC may hold no running instance with an
        Elastic IP address or a public IPv4 address. EC2 answers
        DependencyViolation "Network vpc-... has some mapped public address(es). Please unmap those
        public address(es) before detaching the gateway." (seen with instances still shutting down
        and NAT gateways still deleting)."""
        vpc_id = req.get("VpcId")
        if vpc_id and self._mapped_addresses(req, vpc_id, now):
            raise Ec2Error("igw-mapped-addresses", "DependencyViolation",
                           f"Network {vpc_id} has some mapped public address(es). Please unmap those public "
                           f"address(es) before detaching the gateway.")

    def _mapped_addresses(self, req: _Request, vpc_id: str, now: float) -> list[str]:
        backend = self._backend(req)
        nat_by_eni = {}
        for nat in list(getattr(backend, "nat_gateways", {}).values()):
            eni = getattr(nat, "_eni", None)
            if eni is not None:
                nat_by_eni[eni.id] = nat
        mapped = []

        def instance_holds(inst) -> bool:
            # "running instances": until the instance has stopped or terminated
            return self._instance_state(inst.id, inst._state.name, now) in ("pending", "running", "stopping",
                                                                              "shutting-down")

        for addr in list(getattr(backend, "addresses", [])):
            eni, inst = getattr(addr, "eni", None), getattr(addr, "instance", None)
            if eni is None and inst is None:
                continue
            if eni is not None and eni.id in nat_by_eni:
                nat = nat_by_eni[eni.id]
                holds = nat.state != "deleted" or (
                    nat.id in self._nat_deleted and now < self._nat_deleted[nat.id] + self.timings.nat_deleting)
                if holds and nat.vpc_id == vpc_id:
                    mapped.append(addr.public_ip)
                continue
            inst = inst or getattr(eni, "instance", None)
            if inst is not None:
                if instance_holds(inst) and self._instance_vpc(inst) == vpc_id:
                    mapped.append(addr.public_ip)
            elif eni is not None and eni.id in getattr(backend, "enis", {}):
                if _prop(eni, "subnet.vpc_id") == vpc_id:
                    mapped.append(addr.public_ip)
        for inst in _safe(lambda: backend.all_instances(), []):
            if inst._state.name in ("running", "pending") and _prop(inst, "public_ip") \
                    and self._instance_vpc(inst) == vpc_id:
                mapped.append(inst.public_ip)
        # An instance keeps its public IPv4 address until it has stopped or terminated.
        for ch in list(self._instances.values()):
            timing = _INSTANCE_CHANGES[ch.kind][2]
            if ch.kind in ("stop", "terminate") and ch.public_ip and ch.vpc == vpc_id \
                    and now < ch.at + getattr(self.timings, timing):
                mapped.append(ch.public_ip)
        return sorted(set(filter(None, mapped)))

    def _instance_vpc(self, inst) -> str | None:
        change = self._instances.get(inst.id)
        return _prop(inst, "vpc_id") or (change.vpc if change else None)

    def _route_local_zone_subnet(self, req: _Request) -> None:
        """AWS: "Local Zones" - after opting in, subnets can be created in a Local Zone like in any
        zone. moto only knows a region's standard zones, so the subnet is made in the parent zone and
        moved to the Local Zone once moto has it (see `_after`)."""
        zone = self._local_zone(req)
        if zone is None:
            return
        if req.get("AvailabilityZone") == zone.name or req.get("AvailabilityZoneId") == zone.zone_id:
            params = [(k, v) for k, v in req.params if k not in ("AvailabilityZone", "AvailabilityZoneId")]
            req.forward_params = params + [("AvailabilityZone", zone.parent_name)]
            req.notes["local_zone"] = zone

    # -- after moto --------------------------------------------------------------------------------

    def _after(self, req: _Request, body: bytes) -> bytes:
        action = req.action
        interesting = (action in _CREATED or action in _INSTANCE_CALLS or action in _LISTED
                       or action in ("DeleteNatGateway", "DescribeAvailabilityZones", "DescribeInstanceTypeOfferings"))
        if not interesting:
            return body
        doc = _Doc(body)
        now = self.clock()
        if action in _CREATED:
            self._note_created(req, doc, now)
        if action in _INSTANCE_CALLS:
            self._note_instance_calls(req, doc, now)
        if action == "DeleteNatGateway":
            nid = _text(doc.root, "natGatewayId") or req.get("NatGatewayId")
            if nid:
                with self._lock:
                    self._nat_deleted[nid] = now
        if action in ("DescribeInstances", "DescribeInstanceStatus") and self.on("instance-states"):
            self._rewrite_instance_states(req, doc, now)
        if action == "DescribeNatGateways" and self.on("nat-gateway-states"):
            self._rewrite_nat_states(req, doc, now)
        if action in _LISTED and self.on("eventual-consistency"):
            path, id_tag = _LISTED[action]
            removed = _remove_items(doc.root, path, lambda item: not self._unpropagated(_text(item, id_tag) or "", now))
            if action == "DescribeInstances":
                _remove_items(doc.root, ("reservationSet", "item"),
                              lambda res: any(_kids(s, "item") for s in _kids(res, "instancesSet")))
            if removed:
                doc.changed = True
                self.counts.add("eventual-consistency", action)
        if action == "DescribeAvailabilityZones" and self.on("zones"):
            self._rewrite_zones(req, doc)
        if action == "DescribeInstanceTypeOfferings" and self.on("zones"):
            self._rewrite_offerings(req, doc)
        if action == "CreateSubnet" and "local_zone" in req.notes:
            self._move_subnet_to_local_zone(req, doc)
        if action == "RunInstances" and self.on("others-instances"):
            self._launch_others_instance(req, doc)
        return doc.bytes()

    def _note_created(self, req: _Request, doc: _Doc, now: float) -> None:
        ids = [el.text for el in _walk(doc.root, _CREATED[req.action]) if el.text]
        with self._lock:
            for rid in ids:
                self._visible_at.setdefault(rid, now + self.timings.consistency)
            if req.action == "RunInstances":
                for rid in ids:
                    self._instances.setdefault(rid, _Change("launch", now))
            if req.action == "CreateNatGateway":
                for rid in ids:
                    self._nat_created.setdefault(rid, now)

    def _note_instance_calls(self, req: _Request, doc: _Doc, now: float) -> None:
        kind = _INSTANCE_CALLS[req.action]
        final = _INSTANCE_CHANGES[kind][0]
        before: dict[str, _Snapshot] = req.notes.get("before", {})
        for item in _walk(doc.root, ("instancesSet", "item")):
            iid = _text(item, "instanceId")
            snap = before.get(iid) if iid else None
            if iid is None or snap is None:
                continue
            if snap.state != final:     # stopping a stopped instance changes nothing
                with self._lock:
                    self._instances[iid] = _Change(kind, now, snap.groups, snap.subnet, snap.vpc, snap.public_ip)
            # previousState: the state the instance left as EC2 showed it (e.g. pending, not moto's
            # running, for an instance terminated during launch).
            previous = _kids(item, "previousState")
            if self.on("instance-states") and previous and _text(previous[0], "name") != snap.state \
                    and snap.state in _STATE_CODES:
                _set_text(previous[0], "name", snap.state, doc.ns)
                _set_text(previous[0], "code", str(_STATE_CODES[snap.state]), doc.ns)
                doc.changed = True
                self.counts.add("instance-states", req.action)

    def _instance_state(self, iid: str, moto_state: str, now: float) -> str:
        change = self._instances.get(iid)
        if change is not None and change.kind in _INSTANCE_CHANGES:
            final, transitional, timing = _INSTANCE_CHANGES[change.kind]
            if moto_state == final and now < change.at + getattr(self.timings, timing):
                return transitional
        return moto_state

    def _rewrite_instance_states(self, req: _Request, doc: _Doc, now: float) -> None:
        """AWS: "State change events for Amazon EC2 instances" (and "Amazon EC2 instance state
        changes"): launching or starting goes through pending to running, stopping through stopping
        to stopped, terminating through shutting-down to terminated. DescribeInstances and
        DescribeInstanceStatus show those states, and the instance-state-* filters see them;
        DescribeInstanceStatus lists only running instances unless IncludeAllInstances is true."""
        status_call = req.action == "DescribeInstanceStatus"
        path = ("instanceStatusSet", "item") if status_call else ("reservationSet", "item", "instancesSet", "item")
        state_tag = "instanceState"
        changed = 0
        for item in _walk(doc.root, path):
            iid = _text(item, "instanceId")
            state_el = _kids(item, state_tag)
            if not iid or not state_el:
                continue
            moto_state = _text(state_el[0], "name")
            state = self._instance_state(iid, moto_state or "", now)
            if state != moto_state:
                _set_text(state_el[0], "name", state, doc.ns)
                _set_text(state_el[0], "code", str(_STATE_CODES[state]), doc.ns)
                changed += 1
        filters = req.notes.get("state_filters", {})

        def keep(item) -> bool:
            state_el = _kids(item, state_tag)
            name = _text(state_el[0], "name") if state_el else None
            code = _text(state_el[0], "code") if state_el else None
            if "instance-state-name" in filters and not _matches(name, filters["instance-state-name"]):
                return False
            if "instance-state-code" in filters and not _matches(code, filters["instance-state-code"]):
                return False
            if status_call and (req.get("IncludeAllInstances") or "").lower() != "true" and name != "running":
                return False
            return True

        removed = _remove_items(doc.root, path, keep)
        if not status_call:
            _remove_items(doc.root, ("reservationSet", "item"),
                          lambda res: any(_kids(s, "item") for s in _kids(res, "instancesSet")))
        if changed or removed:
            doc.changed = True
        if changed:
            self.counts.add("instance-states", req.action)

    def _rewrite_nat_states(self, req: _Request, doc: _Doc, now: float) -> None:
        """AWS: API reference "NatGateway" (state: pending | failed | available | deleting |
        deleted) and "DeleteNatGateway"; "NAT gateways" in the VPC user guide: a new NAT gateway is
        `pending` until it is `available`, a deleted one is `deleting` until it is `deleted`.
        boto3's NatGatewayAvailable waiter expects exactly that order."""
        changed = 0
        for item in _walk(doc.root, ("natGatewaySet", "item")):
            nid = _text(item, "natGatewayId") or ""
            moto_state = _text(item, "state")
            state = moto_state
            created, deleted = self._nat_created.get(nid), self._nat_deleted.get(nid)
            if moto_state == "available" and created is not None and now < created + self.timings.nat_pending:
                state = "pending"
            elif moto_state == "deleted" and deleted is not None and now < deleted + self.timings.nat_deleting:
                state = "deleting"
            if state is not None and state != moto_state:
                _set_text(item, "state", state, doc.ns)
                changed += 1
        filters = req.notes.get("state_filters", {})
        removed = 0
        if "state" in filters:
            removed = _remove_items(doc.root, ("natGatewaySet", "item"),
                                    lambda item: _matches(_text(item, "state"), filters["state"]))
        if changed or removed:
            doc.changed = True
        if changed:
            self.counts.add("nat-gateway-states", req.action)

    # -- zones ---------------------------------------------------------------------------------------

    def _standard_zones(self, req: _Request) -> list:
        return sorted(self._backend(req).describe_availability_zones(), key=lambda z: z.name)

    def _standard_zone_names(self, req: _Request) -> list[str]:
        return [z.name for z in self._standard_zones(req)]

    def _local_zone(self, req: _Request) -> _LocalZone | None:
        with self._lock:
            zone = self._local_zones.get(req.region)
        if zone is not None:
            return zone
        zones = self._standard_zones(req)
        if not zones:
            return None   # a region moto has no zones for: no zone rules
        first = zones[0]
        short = first.zone_id.split("-az")[0]
        city = _LOCAL_ZONE_CITY.get(req.region, "lz")
        group = f"{req.region}-{city}-1"
        zone = _LocalZone(f"{group}a", f"{short}-{city}1-az1", group, req.region, first.name, first.zone_id)
        with self._lock:
            self._local_zones[req.region] = zone
        return zone

    def _offered(self, req: _Request, itype: str, zone_name: str) -> bool:
        local = self._local_zone(req)
        if local is not None and zone_name == local.name:
            return itype in self.zone_rules.local_zone_types
        names = self._standard_zone_names(req)
        if names and zone_name == names[0]:
            return itype not in self.zone_rules.unsupported_types
        return True

    def _rewrite_zones(self, req: _Request, doc: _Doc) -> None:
        """AWS: API reference "DescribeAvailabilityZones" (filters zone-type, opt-in-status,
        group-name, network-border-group, parent-zone-name, ...; without AllAvailabilityZones it
        lists the zones that need no opt-in and the opted-in ones) and "AvailabilityZone" (the
        fields). An opted-in Local Zone is listed with the region's zones, in name order."""
        local = self._local_zone(req)
        items_parent = _walk(doc.root, ("availabilityZoneInfo",))
        if local is None or not items_parent:
            return
        parent = items_parent[0]
        region_group = f"{req.region}-zg-1"
        for item in _kids(parent, "item"):  # what EC2 also says of a standard zone
            for name, value in (("optInStatus", "opt-in-not-required"), ("groupName", region_group),
                                ("networkBorderGroup", req.region)):
                if not _kids(item, name):
                    ET.SubElement(item, _q(doc.ns, name)).text = value
                    doc.changed = True
        filters = _filters(req.params)
        names, ids = req.values("ZoneName"), req.values("ZoneId")

        def wanted(fields: dict) -> bool:
            if (names or ids) and fields.get("zoneName") not in names and fields.get("zoneId") not in ids:
                return False
            return all(_matches(fields.get(_ZONE_FILTERS[f]), vals)
                       for f, vals in filters.items() if f in _ZONE_FILTERS)

        if _remove_items(doc.root, ("availabilityZoneInfo", "item"),
                         lambda item: wanted({_ln(c.tag): c.text for c in item})):
            doc.changed = True
        if wanted(local.fields()) and not any(_text(i, "zoneName") == local.name for i in _kids(parent, "item")):
            item = ET.Element(_q(doc.ns, "item"))
            ET.SubElement(item, _q(doc.ns, "messageSet"))
            for name, value in local.fields().items():
                ET.SubElement(item, _q(doc.ns, name)).text = value
            existing = _kids(parent, "item")
            position = sum(1 for i in existing if (_text(i, "zoneName") or "") < local.name)
            anchor = list(parent).index(existing[position]) if position < len(existing) else len(parent)
            parent.insert(anchor, item)
            doc.changed = True
            self.counts.add("zones", req.action)

    def _rewrite_offerings(self, req: _Request, doc: _Doc) -> None:
        """AWS: API reference "DescribeInstanceTypeOfferings" (LocationType availability-zone or
        availability-zone-id; filters instance-type and location): a zone that does not offer a type
        is not listed for it."""
        location_type = req.get("LocationType") or "region"
        if location_type not in ("availability-zone", "availability-zone-id"):
            return
        by_id = location_type == "availability-zone-id"
        zones = self._standard_zones(req)
        if not zones:
            return
        first = zones[0].zone_id if by_id else zones[0].name
        local = self._local_zone(req)
        if local is None:
            return
        local_location = local.zone_id if by_id else local.name
        unsupported = set(self.zone_rules.unsupported_types)
        removed = _remove_items(doc.root, ("instanceTypeOfferingSet", "item"),
                                lambda item: not (_text(item, "location") == first
                                                  and _text(item, "instanceType") in unsupported))
        filters = _filters(req.params)
        added = 0
        parents = _walk(doc.root, ("instanceTypeOfferingSet",))
        last_page = not _text(doc.root, "nextToken")
        if parents and last_page and _matches(local_location, filters.get("location", ["*"])):
            for itype in self.zone_rules.local_zone_types:
                if not _matches(itype, filters.get("instance-type", ["*"])):
                    continue
                item = ET.SubElement(parents[0], _q(doc.ns, "item"))
                for name, value in (("instanceType", itype), ("locationType", location_type),
                                    ("location", local_location)):
                    ET.SubElement(item, _q(doc.ns, name)).text = value
                added += 1
        if removed or added:
            doc.changed = True
            self.counts.add("zones", req.action)

    def _move_subnet_to_local_zone(self, req: _Request, doc: _Doc) -> None:
        from moto.ec2.models.availability_zones_and_regions import Zone

        zone: _LocalZone = req.notes["local_zone"]
        subnet_el = _walk(doc.root, ("subnet",))
        sid = _text(subnet_el[0], "subnetId") if subnet_el else None
        if not sid:
            return
        moto_zone = Zone(name=zone.name, region_name=zone.region, zone_id=zone.zone_id, zone_type="local-zone")
        for name, value in (("opt_in_status", "opted-in"), ("group_name", zone.group),
                            ("network_border_group", zone.group), ("parent_zone_name", zone.parent_name),
                            ("parent_zone_id", zone.parent_id)):
            setattr(moto_zone, name, value)
        try:
            self._backend(req).get_subnet(sid)._availability_zone = moto_zone
        except _moto_errors():
            return
        _set_text(subnet_el[0], "availabilityZone", zone.name, doc.ns)
        _set_text(subnet_el[0], "availabilityZoneId", zone.zone_id, doc.ns)
        doc.changed = True
        self.counts.add("zones", req.action)

    # -- others' instances ---------------------------------------------------------------------------

    def _launch_others_instance(self, req: _Request, doc: _Doc) -> None:
        """The account is shared (AWS: "Tag your Amazon EC2 resources": tags are free-form labels,
        neither unique nor a sign of ownership): another team runs a stopped instance tagged with the
        same Env and Role in the region's default VPC, so looking instances up by Env/Role alone finds
        two. Launched once per (account, region, Env, Role), through moto itself (not through this
        layer), and stopped at once."""
        tags = req.tags("instance")
        env, role = tags.get("Env"), tags.get("Role")
        if not env or not role:
            return
        key = (req.account, req.region, env, role)
        with self._lock:
            if key in self._others:
                return
            self._others.add(key)
        backend = self._backend(req)
        vpc = _safe(lambda: backend.get_default_vpc())
        if vpc is None:
            return
        itype = req.get("InstanceType") or "t3.micro"
        subnets = sorted(_safe(lambda: backend.describe_subnets(filters={"vpc-id": [vpc.id]}), []),
                         key=lambda s: s.availability_zone)
        subnets = [s for s in subnets if self._offered(req, itype, s.availability_zone)] or subnets
        image = req.get("ImageId") or next(iter(_safe(lambda: backend.amis, {}) or {}), None)
        if not subnets or not image:
            return
        run = [("Action", "RunInstances"), ("Version", "2016-11-15"), ("ImageId", image), ("InstanceType", itype),
               ("MinCount", "1"), ("MaxCount", "1"), ("SubnetId", subnets[0].id),
               ("TagSpecification.1.ResourceType", "instance")]
        for n, (k, v) in enumerate((("Env", env), ("Role", role), ("Name", f"{role} ({env}), another team"),
                                    ("Owner", "another-team")), start=1):
            run += [(f"TagSpecification.1.Tag.{n}.Key", k), (f"TagSpecification.1.Tag.{n}.Value", v)]
        status, _, body = self._call(_with_params(req.environ, run))
        if not status.startswith("200"):
            return
        iid = _text(_walk(ET.fromstring(body), ("instancesSet", "item"))[0], "instanceId")
        if not iid:
            return
        self._call(_with_params(req.environ, [("Action", "StopInstances"), ("Version", "2016-11-15"),
                                              ("InstanceId.1", iid)]))
        with self._lock:
            self._others_ids.add(iid)
        self.counts.add("others-instances", req.action)

    def others_instances(self) -> set[str]:
        """The IDs of the instances "another team" runs (rule others-instances), since the last reset."""
        with self._lock:
            return set(self._others_ids)


def _moto_errors() -> tuple[type[BaseException], ...]:
    """What moto raises for a resource it doesn't know (or a half-gone one, e.g. a terminated
    instance whose interfaces are deleted): its service errors, and lookups that find nothing."""
    from moto.core.exceptions import ServiceException

    return (ServiceException, LookupError, AttributeError, TypeError, ValueError)


def _safe(fn, default=None):
    try:
        return fn()
    except _moto_errors():
        return default


def _prop(obj, path: str, default=None):
    """obj.a.b for path "a.b", or `default` when moto can't say (see `_moto_errors`)."""
    try:
        for name in path.split("."):
            obj = getattr(obj, name)
        return obj
    except _moto_errors():
        return default


def _credential_scope(authorization: str) -> tuple[str | None, str | None, str | None]:
    """(service, region, access key id) from a SigV4 Authorization header."""
    match = re.search(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request", authorization or "")
    if not match:
        return None, None, None
    return match.group(3).lower(), match.group(2), match.group(1)


def _account(environ, access_key: str | None) -> str:
    """The account moto files the request under (moto.core.responses.BaseResponse.get_current_account)."""
    from moto.core import DEFAULT_ACCOUNT_ID

    if "MOTO_ACCOUNT_ID" in os.environ:
        return os.environ["MOTO_ACCOUNT_ID"]
    if environ.get("HTTP_X_MOTO_ACCOUNT_ID"):
        return environ["HTTP_X_MOTO_ACCOUNT_ID"]
    if access_key:
        try:
            from moto.iam.models import get_account_id_from

            return get_account_id_from(access_key)
        except _moto_errors():
            pass
    return DEFAULT_ACCOUNT_ID


def _with_params(environ, params: list[tuple[str, str]]):
    """A copy of `environ` carrying these Query API parameters as its (POST) body."""
    body = urlencode(params).encode()
    env = dict(environ)
    env.update({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8",
                "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "QUERY_STRING": ""})
    env.pop("wsgi.input_terminated", None)
    env.pop("werkzeug.request", None)
    return env


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def wrap(app, *, enabled: bool | None = None, rules=None, timings: Timings | None = None,
         counts_path: str | os.PathLike | None = None, counts: Counts | None = None,
         zone_rules: ZoneRules | None = None, clock=time.monotonic) -> RealismLayer:
    """Put the realism layer in front of moto's WSGI app (`DomainDispatcherApplication`).

    enabled   None: the switch decides (`TWOTIER_EMULATOR_REALISM`, on unless `off`); False: a
              pass-through; True: every rule (or `rules`).
    rules     the rule names to apply (default: the switch's, i.e. all of `RULES`).
    timings   the windows, in seconds (default `Timings()`, times `TWOTIER_EMULATOR_REALISM_SCALE`).
    counts_path  a JSON file the counts by rule are written to at every change, for another process
              (`read_counts(path)`); default `TWOTIER_EMULATOR_REALISM_COUNTS`, else none.
    The layer's `counts` (a `Counts`) is the in-process counter.
    """
    if enabled is False:
        chosen: frozenset[str] = frozenset()
    elif enabled is True:
        chosen = frozenset(RULES if rules is None else rules)
    else:
        chosen = rules_from_env() if rules is None else frozenset(rules) & rules_from_env()
    if counts is None:
        counts = Counts(counts_path or os.environ.get(ENV_COUNTS) or None)
    return RealismLayer(app, rules=chosen, timings=timings, counts=counts, zone_rules=zone_rules, clock=clock)


def moto_app():
    """moto's own server app (what moto.server and ThreadedMotoServer serve)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return DomainDispatcherApplication(create_backend_app)


class RealisticMotoServer:
    """moto behind the realism layer, on a thread, on loopback only: ThreadedMotoServer's API
    (start, stop, get_host_and_port) plus `.layer`. `outer` wraps the layer once more (e.g. a
    signature gate, which must sit outside the layer)."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0, *, outer=None, **wrap_kwargs):
        import ipaddress

        if not ipaddress.ip_address(ip_address).is_loopback:
            raise ValueError(f"the emulator binds to loopback only, not {ip_address}")
        self._ip, self._port = ip_address, port
        self.layer = wrap(moto_app(), **wrap_kwargs)
        self.app = outer(self.layer) if outer else self.layer
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> RealisticMotoServer:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        server = make_server(self._ip, self._port, self.app, threaded=True, request_handler=MotoRequestHandler)
        thread = threading.Thread(target=server.serve_forever, name="realistic-moto", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        return self

    def get_host_and_port(self) -> tuple[str, int]:
        assert self._server is not None, "call start() first"
        host, port = self._server.server_address[:2]
        return str(host), port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
