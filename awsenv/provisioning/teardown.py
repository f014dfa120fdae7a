"""Removes an environment in the order of kinds.py: what is ours by proof, each after its tags are checked.

Ours by proof: named by the environment's ledger (ledger.py: every ID the moment AWS returned it),
or tagged with a RunId the ledger knows (every `up` writes its own before it creates anything). A
resource is deleted only if it is ours by proof AND still carries our Project tag and this
environment's Env tag. So:
- a resource tagged Project and Env like ours that the ledger doesn't know (another team's, or one
  built from another state folder) is listed and kept, unless `include_tagged` says so (`down
  --include-tagged`; `sweep`, the tool for environments we have no ledger for, always does);
- a resource the ledger names that no longer carries our tags (someone changed its Env) is not
  deleted, and it is reported as left, with the reason: `down` never says "nothing left", and never
  drops the ledger, while such a resource exists.
A rollback passes `only`: a test of (kind, id, tags) that holds for what this very process
created (provisioner.made_here), so nothing that was there before it is touched.

EC2 answers a teardown as it answers anyone, and the teardown is written for those answers:
- Eventual consistency (AWS: "Eventual consistency in the Amazon EC2 API"). Right after its create
  call an ID can be "not found", which then does not mean it is gone: for an ID this process just
  created (consistency.RECENT), a NotFound is retried with backoff up to the target's
  consistency_timeout and is never taken as "already gone"; if it never shows, it is reported as
  possibly left. A create call that got no answer (an interrupt, a 5xx after the call) may have
  made something only its RunId tag can find: the teardown then waits the target's
  consistency_window before it trusts a listing, and makes a second pass if a later listing shows more.
- Instances go through shutting-down, NAT gateways through deleting, and their network interfaces
  outlive them for a while, holding security groups, subnets, the VPC and public addresses
  (DependencyViolation). The teardown waits for the instances and NAT gateways with its own
  checks (botocore's instance_terminated waiter FAILS on `pending` and `stopping`, exactly what an
  `up` interrupted right after RunInstances leaves), then for their network interfaces to go, then
  retries DependencyViolation with backoff, all deletes sharing the target's dependency_timeout.
- One failure stops nothing: every step is tried, each failure is said once, and what is left is
  listed at the end (billed kinds first).
"""
from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from common.display import for_terminal

from .. import consistency, statedir
from ..errors import EnvError
from ..settings import Settings
from ..targets import Target
from ..waits import api_check, wait_for
from . import kinds, tags
from .ledger import Ledger

INSTANCE_TIMEOUT = 600.0     # terminated (EC2: shutting-down lasts seconds to minutes)
NAT_TIMEOUT = 900.0          # deleted (EC2: deleting lasts about a minute, sometimes more)
ENI_TIMEOUT = 600.0          # their network interfaces gone


@dataclass
class Leftovers:
    items: list[tuple[str, str]] = field(default_factory=list)       # ours by proof, still there
    unconfirmed: set[tuple[str, str]] = field(default_factory=set)   # made here, never seen: may exist
    moved: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, id, why): the ledger's, no longer tagged ours
    kept: list[tuple[str, str]] = field(default_factory=list)        # tagged like ours, not ours by proof
    region: str | None = None                                        # where they bill (the cost notes)

    def __bool__(self):
        """Something this environment made is still there."""
        return bool(self.items or self.moved)

    def lines(self) -> list[str]:
        out = []
        for k, i in kinds.billed_first(self.items):
            line = f"{k} {i} LEFT BEHIND{kinds.cost_note(k, self.region)}" if k in kinds.BILLED else f"{k} {i} left behind"
            if (k, i) in self.unconfirmed:
                line += " (created by this run but never visible to the API afterwards: check it)"
            out.append(line)
        why = {(k, i): w for k, i, w in self.moved}
        for k, i in kinds.billed_first(list(why)):
            out.append(f"{k} {i} LEFT BEHIND{kinds.cost_note(k, self.region)}: this environment's ledger names it, but "
                       f"{why[(k, i)]}, so it was not deleted (restore the tag and run down again, or remove it "
                       f"yourself if it is no longer yours)")
        return out

    def kept_lines(self, env: str) -> list[str]:
        return [f"{k} {i} kept{kinds.cost_note(k, self.region)}: tagged Project={tags.PROJECT} Env={env}, but not in this "
                f"environment's ledger nor made by a run it knows (another team's, or built from another state "
                f"folder); `down --include-tagged` removes it too" for k, i in kinds.billed_first(self.kept)]


@dataclass
class Found:
    """What a listing and the ledger say about the environment."""
    ours: dict[str, list[str]]                       # kind -> ids: ours by proof, tagged ours: to delete
    moved: list[tuple[str, str, str]] = field(default_factory=list)
    unproven: list[tuple[str, str]] = field(default_factory=list)

    def __bool__(self):
        return any(self.ours.values())


def why_not_ours(tag_list: list[dict] | None, env: str) -> str:
    """Why a resource's tags no longer say it belongs to the environment, for a person to read."""
    project, now = tags.value(tag_list, "Project"), tags.value(tag_list, "Env")
    if project != tags.PROJECT:
        return (f"its Project tag is now {for_terminal(project, 40)}" if project is not None
                else f"it does not carry Project={tags.PROJECT} now")
    return f"its Env tag is now {for_terminal(now, 40)}" if now is not None else "it does not carry an Env tag now"


def _gone(code: str) -> bool:
    """A delete answered with one of these found nothing to do (for an ID that isn't just-created)."""
    return code.endswith("NotFound") or code.endswith(".Malformed") or code == "Gateway.NotAttached"


Only = Callable[[str, str, list[dict]], bool]


def find_env(ec2, env: str, ledger: Ledger, only: Only | None = None, target: Target | None = None,
             unconfirmed: set[tuple[str, str]] | None = None, include_tagged: bool = False) -> Found:
    """The environment by kind: what is ours by proof (the ledger names it, or it carries a RunId
    the ledger knows; `only` and `include_tagged` are proof of their own) and tagged Project and Env
    (checked on our side too, since moto ignores some tag filters). Also what the ledger names that
    no longer carries our tags (`moved`), and what is tagged like ours without proof (`unproven`).
    A ledger entry this process just created (with `target`) is looked up until it shows, within the
    target's consistency_timeout; one that never does is added to `unconfirmed` (and to the result)."""
    found = Found({k.name: [] for k in kinds.KINDS})
    keep = only or (lambda kind, rid, tag_list: True)
    named = set(ledger.entries())
    runs = ledger.runs()
    for kind in kinds.KINDS:
        for rid, tag_list in kind.listing(ec2, tags.env_filter(env)):
            consistency.RECENT.seen([rid])     # listed: it has propagated
            if not (tags.is_ours(tag_list, env) and keep(kind.name, rid, tag_list)):
                continue
            if (include_tagged or only is not None or (kind.name, rid) in named
                    or tags.value(tag_list, tags.RUN_ID) in runs):
                found.ours[kind.name].append(rid)
            else:
                found.unproven.append((kind.name, rid))
    for kind_name, rid in sorted(named, key=lambda e: [k.name for k in kinds.KINDS].index(e[0])):
        if rid in found.ours[kind_name]:
            continue
        if target is not None and consistency.RECENT.is_fresh(rid):
            try:
                hits = consistency.retry_not_found(functools.partial(kinds.BY_NAME[kind_name].lookup, ec2, rid),
                                                   target.consistency_timeout,
                                                   first=target.retry_first, cap=target.poll_delay)
                consistency.RECENT.seen([rid])
            except ClientError as exc:
                if consistency.error_code(exc) in consistency.NOT_FOUND_AFTER_CREATE and unconfirmed is not None:
                    unconfirmed.add((kind_name, rid))
                    found.ours[kind_name].append(rid)
                continue
        else:
            hits = kinds.lookup(ec2, kind_name, rid)
        if any(tags.is_ours(t, env) and keep(kind_name, rid, t) for _, t in hits):
            found.ours[kind_name].append(rid)
        elif hits and only is None:
            found.moved.append((kind_name, rid, why_not_ours(hits[0][1], env)))
    return found


class _Pass:
    """One teardown pass: each call fresh-aware, dependency retries under one deadline, failures kept."""

    def __init__(self, target: Target, progress):
        self.t = target
        self.ec2 = target.ec2
        self.say = progress
        self.problems: list[str] = []
        self._dependency_since: float | None = None

    def _backoff(self) -> dict:
        return {"first": self.t.retry_first, "cap": self.t.poll_delay}

    def _dependency_left(self) -> float:
        if self._dependency_since is None:
            self._dependency_since = time.monotonic()
        return max(0.0, self.t.dependency_timeout - (time.monotonic() - self._dependency_since))

    def do(self, what: str, fn, resource_id: str, dependency: bool = False, **kwargs) -> bool:
        """One deleting call; True when it is done (or there was nothing to do), False when it failed
        (said, remembered, and the teardown carries on)."""
        fresh = consistency.RECENT.is_fresh(resource_id)

        def call():
            if fresh:   # right after its create call, NotFound means "not yet", never "already gone"
                return consistency.retry_not_found(lambda: fn(**kwargs), self.t.consistency_timeout, **self._backoff())
            return fn(**kwargs)
        try:
            if dependency:
                consistency.retry_codes(call, consistency.DEPENDENCY, self._dependency_left(), what=what,
                                        progress=self.say, **self._backoff())
            else:
                call()
            consistency.RECENT.seen([resource_id])    # done: from now on a NotFound means gone
            return True
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = err.get("Code", "")
            if _gone(code) and not (fresh and code in consistency.NOT_FOUND_AFTER_CREATE):
                return True
            waited = f" (still, after {self.t.dependency_timeout:.0f}s of retries)" if code in consistency.DEPENDENCY else ""
            self._problem(f"could not {what}: {code}: {err.get('Message')}{waited}")
            return False

    def read(self, what: str, fn, key: str, **kwargs) -> list[dict]:
        """A describe call for the teardown's own bookkeeping: [] (and said) when it fails."""
        try:
            return fn(**kwargs)[key]
        except ClientError as exc:
            self._problem(f"could not {what}: {consistency.error_code(exc)}: {exc.response['Error'].get('Message')}")
            return []

    def _problem(self, line: str) -> None:
        self.problems.append(line)
        self.say(f"  {line}")

    def wait(self, checks: dict, timeout_note: str) -> None:
        if not checks:
            return
        try:
            wait_for(checks, self.say, delay=self.t.poll_delay, first_delay=self.t.retry_first)
        except EnvError as exc:
            self._problem(f"{exc}; {timeout_note}")

    # -- the checks the waits poll (own checks: any state but the final one is "not yet") --------------
    def instances_terminated(self, ids: list[str]) -> bool:
        found = self.ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": ids}])["Reservations"]
        return all(i["State"]["Name"] == "terminated" for r in found for i in r["Instances"])

    def nats_deleted(self, ids: list[str]) -> bool:
        found = self.ec2.describe_nat_gateways(Filters=[{"Name": "nat-gateway-id", "Values": ids}])["NatGateways"]
        return all(n["State"] in ("deleted", "failed") for n in found)

    def interfaces_gone(self, ids: list[str]) -> bool:
        return not self.ec2.describe_network_interfaces(
            Filters=[{"Name": "network-interface-id", "Values": ids}])["NetworkInterfaces"]


def _interfaces_of(p: _Pass, instances: list[str]) -> dict[str, list[str]]:
    """{instance: the network interfaces it holds now}: with DeleteOnTermination they go with the
    instance, but some time after it is terminated. (A NAT gateway's interface is EC2's own: it goes
    as the gateway reaches `deleted`, which is waited for; the deletes after that retry
    DependencyViolation for whatever still lingers.)"""
    held: dict[str, list[str]] = {}
    if instances:
        for eni in p.read("list the instances' network interfaces", p.ec2.describe_network_interfaces,
                          "NetworkInterfaces", Filters=[{"Name": "attachment.instance-id", "Values": instances}]):
            owner = eni.get("Attachment", {}).get("InstanceId")
            if owner:
                held.setdefault(owner, []).append(eni["NetworkInterfaceId"])
    return held


def _wait_for_listings(target: Target, progress) -> None:
    """A create call of this process got no answer: what it made carries our tags but not yet, maybe,
    in a listing (eventual consistency). Wait until a listing can show it."""
    since = consistency.RECENT.in_doubt_since()
    if since is None:
        return
    wait = since + target.consistency_window - time.monotonic()
    if wait > 0:
        progress(f"a create call may have made more than its answer said (no answer, or a 5xx and a retry); "
                 f"waiting {wait:.1f}s so that listings show it")
        time.sleep(wait)


def down(target: Target, settings: Settings, progress=print, only: Only | None = None,
         include_tagged: bool = False) -> Leftovers:
    """Remove the environment (or, with `only`, just those of its resources); returns what is left."""
    ec2 = target.ec2
    ledger = Ledger(settings.state_dir)
    _wait_for_listings(target, progress)
    unconfirmed: set[tuple[str, str]] = set()
    found = find_env(ec2, settings.env, ledger, only, target, unconfirmed, include_tagged)
    if not found:
        progress(f"env {settings.env}: nothing of it to remove")
        if only is None and not found.moved:
            ledger.clear()
            statedir.forget_after_down(settings, progress)
        return Leftovers(moved=found.moved, kept=found.unproven, region=settings.region)

    seen = {(k, i) for k, ids in found.ours.items() for i in ids}
    problems = _remove(target, found.ours, progress)
    left = leftovers(target, settings, only, unconfirmed, include_tagged)
    late = [(k, i) for k, i in left.items if (k, i) not in seen]
    if late:
        # Shown by a later listing only (an answer lost to an interrupt or a 5xx): one more pass.
        progress(f"found {len(late)} more: {', '.join(i for _, i in late)}")
        again: dict[str, list[str]] = {k.name: [] for k in kinds.KINDS}
        for k, i in left.items:
            again[k].append(i)
        problems += _remove(target, again, progress)
        left = leftovers(target, settings, only, unconfirmed, include_tagged)
    if left.items and problems:
        progress(f"env {settings.env}: {len(problems)} step(s) failed; left: {', '.join(i for _, i in left.items)}")
    if only is None:
        # The hosts are gone: their pinned keys must not fail the next environment that gets the
        # same addresses (Elastic IPs and private IPs are reused).
        from ..hosts.ssh import forget_pins

        forget_pins(settings)
        if not left:
            ledger.clear()
            statedir.forget_after_down(settings, progress)
    return left


def _remove(target: Target, found: dict[str, list[str]], progress) -> list[str]:
    """Delete what `found` names, in kinds.py's order; returns the failures, one line each."""
    p = _Pass(target, progress)
    ec2 = p.ec2
    instances, nats = found["instance"], found["nat-gateway"]
    held = _interfaces_of(p, instances)
    terminated = []
    for iid in instances:
        progress(f"terminating instance {iid}")
        if p.do(f"terminate instance {iid}", ec2.terminate_instances, iid, InstanceIds=[iid]):
            terminated.append(iid)
    deleted_nats = []
    for nat in nats:
        progress(f"deleting NAT gateway {nat} (billed hourly)")
        if p.do(f"delete NAT gateway {nat}", ec2.delete_nat_gateway, nat, NatGatewayId=nat):
            deleted_nats.append(nat)
    # One wait for both (they progress together), with our own checks.
    checks = {}
    if terminated:
        checks[f"instances {' '.join(terminated)} terminated"] = (
            api_check(lambda: p.instances_terminated(terminated), "instances terminated"), INSTANCE_TIMEOUT)
    if deleted_nats:
        checks[f"NAT gateways {' '.join(deleted_nats)} deleted"] = (
            api_check(lambda: p.nats_deleted(deleted_nats), "NAT gateways deleted"), NAT_TIMEOUT)
    p.wait(checks, "carrying on (what they hold may refuse to go)")
    enis = sorted(e for iid in terminated for e in held.get(iid, []))   # not those of an instance still there
    if enis:
        p.wait({f"their network interfaces {' '.join(enis)} gone": (
            api_check(lambda: p.interfaces_gone(enis), "network interfaces gone"), ENI_TIMEOUT)},
            "carrying on (deletes that need them gone are retried)")

    for alloc in found["elastic-ip"]:
        for a in p.read(f"look up Elastic IP {alloc}", ec2.describe_addresses, "Addresses",
                        Filters=[{"Name": "allocation-id", "Values": [alloc]}]):
            if a.get("AssociationId"):
                p.do(f"disassociate Elastic IP {alloc}", ec2.disassociate_address, alloc,
                     AssociationId=a["AssociationId"])
        progress(f"releasing Elastic IP {alloc}")
        try:    # InUse, AuthFailure, a NotFound that DescribeAddresses contradicts: retried (consistency.py)
            consistency.release_address(ec2, alloc, p._dependency_left(), progress=progress, **p._backoff())
        except ClientError as exc:
            p._problem(f"could not release Elastic IP {alloc}: {consistency.error_code(exc)}: "
                       f"{exc.response['Error'].get('Message')}")
    for igw in found["internet-gateway"]:
        for g in p.read(f"look up internet gateway {igw}", ec2.describe_internet_gateways, "InternetGateways",
                        Filters=[{"Name": "internet-gateway-id", "Values": [igw]}]):
            for att in g.get("Attachments", []):
                # Refused while the VPC still has public addresses mapped (DependencyViolation).
                p.do(f"detach internet gateway {igw} from {att['VpcId']}", ec2.detach_internet_gateway, igw,
                     dependency=True, InternetGatewayId=igw, VpcId=att["VpcId"])
        progress(f"deleting internet gateway {igw}")
        p.do(f"delete internet gateway {igw}", ec2.delete_internet_gateway, igw, dependency=True,
             InternetGatewayId=igw)
    for rt in found["route-table"]:
        for t in p.read(f"look up route table {rt}", ec2.describe_route_tables, "RouteTables",
                        Filters=[{"Name": "route-table-id", "Values": [rt]}]):
            if any(a.get("Main") for a in t.get("Associations", [])):
                continue   # the main table goes with the VPC
            for a in t.get("Associations", []):
                p.do(f"disassociate route table {rt}", ec2.disassociate_route_table, rt,
                     AssociationId=a["RouteTableAssociationId"])
            progress(f"deleting route table {rt}")
            p.do(f"delete route table {rt}", ec2.delete_route_table, rt, dependency=True, RouteTableId=rt)
    _delete_groups(p, found["security-group"])
    for sn in found["subnet"]:
        progress(f"deleting subnet {sn}")
        p.do(f"delete subnet {sn}", ec2.delete_subnet, sn, dependency=True, SubnetId=sn)
    for vpc in found["vpc"]:
        progress(f"deleting VPC {vpc}")
        p.do(f"delete VPC {vpc}", ec2.delete_vpc, vpc, dependency=True, VpcId=vpc)
    for key in found["key-pair"]:
        p.do(f"delete key pair {key}", ec2.delete_key_pair, key, KeyName=key)
    return p.problems


def _delete_groups(p: _Pass, group_ids: list[str]) -> None:
    # Groups that name each other as sources can't be deleted until those rules are gone.
    groups = p.read("list the security groups", p.ec2.describe_security_groups, "SecurityGroups",
                    Filters=[{"Name": "group-id", "Values": group_ids}]) if group_ids else []
    for g in groups:
        referencing = [perm for perm in g.get("IpPermissions", []) if perm.get("UserIdGroupPairs")]
        if referencing:
            p.do(f"revoke the group rules of {g['GroupId']}", p.ec2.revoke_security_group_ingress, g["GroupId"],
                 GroupId=g["GroupId"], IpPermissions=referencing)
    for gid in group_ids:
        p.say(f"deleting security group {gid}")
        # A terminated instance's network interface holds its groups for a while (DependencyViolation).
        p.do(f"delete security group {gid}", p.ec2.delete_security_group, gid, dependency=True, GroupId=gid)


def leftovers(target: Target, settings: Settings, only: Only | None = None,
              unconfirmed: set[tuple[str, str]] | None = None, include_tagged: bool = False) -> Leftovers:
    """What of the environment is still there (and, with `unconfirmed`, what this run made and never saw)."""
    found = find_env(target.ec2, settings.env, Ledger(settings.state_dir), only, include_tagged=include_tagged)
    items = [(k.name, i) for k in kinds.KINDS for i in found.ours.get(k.name, [])]
    never_seen = {(k, i) for k, i in (unconfirmed or set())}
    items += sorted(never_seen - set(items))
    return Leftovers(items, never_seen, found.moved, found.unproven, settings.region)
