"""The converge loop: make the machine equal to what the API holds, again and again.

One pass reads the API (world.py) and, per AWS object kind, creates what is missing and removes
what is gone. Every step compares with what it applied last, so a quiet pass costs only the
describe calls (about 10 ms). Each pass is recorded in state_dir/converge.json; wait_settled()
(daemon.py) waits for a successful pass that started after its call.

One object never costs another: every object is realised in its own step, and a step that fails
(or an object world.py rejected) is logged once and skipped while the pass goes on with the other
objects and VPCs. Rejected objects are listed in converge.json ("skipped") and don't fail the
pass; a realisation that failed does (its message is the pass's error), and is retried next pass.
"""
from __future__ import annotations

import ipaddress
import json
import threading
import time
import traceback
from pathlib import Path

from common import files

from . import fabric, gateways, names, netns, resolver, security_groups
from . import world as world_mod
from .errors import LabError
from .instances import InstanceHost, valid_public_key
from .internet import Internet
from .power import ABSENT, OFF, RUNNING, STARTING, STOPPED, UNREALISED, PowerRecord

PASS_FILE = "converge.json"
SETTLE_REQUEST = "settle-request"  # wait_settled() touches it to ask for a pass now
# One more pass this long after a pass an API change started: the lab's API answers as EC2 does
# (emulator/realism/), so what a create call made is listed only a moment later (eventual
# consistency, 75 ms in the lab), and the pass the call itself started may not see it yet.
FOLLOW_UP = 0.3


class PassIncomplete(LabError):
    """Some objects could not be realised in this pass (the others were)."""


class Converger:
    def __init__(self, env: str, state_dir: Path, ec2, base: Path, repo: Path, log=print, reboots=lambda: set(),
                 power: PowerRecord | None = None):
        self.env = env
        self.state_dir = state_dir
        self.ec2 = ec2
        self.base = base
        self.log = log
        self.internet = Internet(env, repo)
        self.routers: dict[str, fabric.Router] = {}
        self.enforcers: dict[str, security_groups.Enforcer] = {}
        self.igws: dict[str, gateways.InternetGateway] = {}
        self.natgws: dict[str, gateways.NatGatewayNs] = {}
        self.resolvers: dict[str, resolver.VpcResolver] = {}
        self.hosts: dict[str, InstanceHost] = {}
        self.vpc_index: dict[str, int] = {}
        self.probe: tuple[str, str, str] | None = None   # (vpc, address, subnet cidr)
        self.passes = 0
        self.boot_times: dict[str, float] = {}
        self.reboots = reboots  # instance ids the API was asked to reboot since the last pass
        # What the machine has done with each instance: the API shows a state only once it is so here.
        self.power = power or PowerRecord(getattr(getattr(ec2, "meta", None), "region_name", "") or "")
        self.failures: dict[str, str] = {}     # this pass: step -> one-line reason
        self.skipped: list[str] = []           # this pass: what world.py or a ruleset left out
        self._reported: dict[str, str] = {}    # what the log already says (each problem logged once)
        self._stopping = threading.Event()     # set by the daemon's stop: long waits give up

    # --- isolation --------------------------------------------------------------------------
    def _step(self, what: str, fn, *args) -> bool:
        """Run one object's step; a failure is recorded and logged once, never raised."""
        try:
            fn(*args)
            return True
        except Exception as exc:  # noqa: BLE001 - one object's failure, whatever it is, costs only that object
            reason = (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0][:300]
            self.failures[what] = reason
            if self._reported.get(what) != reason:
                self._reported[what] = reason
                detail = "" if isinstance(exc, LabError) else "\n" + traceback.format_exc()
                self.log(f"{what}: failed, skipped this pass: {reason}{detail}")
            return False

    def _report(self, problems: list[str]) -> None:
        for line in problems:
            self.skipped.append(line)
            if self._reported.get(line) != "skipped":
                self._reported[line] = "skipped"
                self.log(f"skipped: {line}")

    # --- one pass ---------------------------------------------------------------------------
    def converge(self) -> None:
        self.failures, self.skipped = {}, []
        w = world_mod.read(self.ec2)
        self._report(w.rejected)
        self.internet.ensure()
        realised = [v for v in w.realised_vpcs()
                    if self._step(f"VPC {v}: router", lambda v=v: self._router(v).ensure())]
        for vpc_id in realised:
            self._step(f"VPC {vpc_id}: resolver", self._resolver, w, vpc_id)
        self._nat_gateways(w)
        self._internet_gateways(w, realised)
        self._instances_wiring(w)
        for vpc_id in realised:
            self._step(f"VPC {vpc_id}: route tables", self._routes, w, vpc_id)
            self._step(f"VPC {vpc_id}: security groups", self._security_groups, w, vpc_id)
        self._step("public probe", self._probe, w, realised)
        self._power(w)
        self._step("DNS names", self._publish, w)
        for vpc_id in set(self.routers) - set(w.realised_vpcs()):
            self._step(f"VPC {vpc_id}: removing", self._remove_vpc, vpc_id)
        # Problems logged once: forget those that are gone, so a recurrence is logged again.
        current = set(self.failures) | set(self.skipped)
        self._reported = {k: v for k, v in self._reported.items() if k in current}
        if self.failures:
            what, reason = next(iter(self.failures.items()))
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            raise PassIncomplete(f"{what}: {reason}{more}")

    def _routes(self, w, vpc_id: str) -> None:
        r = self.routers[vpc_id]
        igw = self.igws.get(vpc_id)
        nat_links = {n.id: (self.natgws[n.id].link, n.private_ip) for n in w.nat_gateways.values()
                     if n.vpc_id == vpc_id and n.id in self.natgws}
        r.routes(w, igw.link if igw else None, igw.inet_addr if igw else None, nat_links)

    def _security_groups(self, w, vpc_id: str) -> None:
        members = [i for i in w.instances.values() if i.vpc_id == vpc_id and i.exists]
        enforcer = self.enforcers.setdefault(vpc_id, security_groups.Enforcer(self.routers[vpc_id].ns))
        try:
            if enforcer.apply(w, members):
                self.log(f"security groups applied in {vpc_id}")
        finally:
            self._report([f"{vpc_id}: {p}" for p in enforcer.problems])

    def _publish(self, w) -> None:
        self.internet.publish({i.public_dns: i.public_ip for i in w.instances.values()
                               if i.exists and i.public_ip and i.public_dns and w.vpcs[i.vpc_id].dns_hostnames})

    def _resolver(self, w, vpc_id: str) -> None:
        """AmazonProvidedDNS at the VPC's base + 2 (resolver.py), answering what this pass read."""
        r = self.resolvers.get(vpc_id)
        if r is None:
            fallback = lambda name: self.internet.resolver.records.get(name)  # noqa: E731
            r = self.resolvers[vpc_id] = resolver.VpcResolver(self.routers[vpc_id].ns, w.vpcs[vpc_id].cidrs[0], fallback)
        r.ensure()
        r.publish(*resolver.records(w, vpc_id))

    def _remove_vpc(self, vpc_id: str) -> None:
        self.log(f"removing the fabric of {vpc_id}")
        if vpc_id in self.resolvers:
            self.resolvers.pop(vpc_id).shutdown()
        if vpc_id in self.igws:
            self.igws.pop(vpc_id).remove()
        self.enforcers.pop(vpc_id, None)
        self.routers.pop(vpc_id).remove()

    def _router(self, vpc_id: str) -> fabric.Router:
        if vpc_id not in self.routers:
            self.routers[vpc_id] = fabric.Router(self.env, vpc_id)
            used = set(self.vpc_index.values())
            self.vpc_index.setdefault(vpc_id, next(n for n in range(1, 16000) if n not in used))
        return self.routers[vpc_id]

    def _nat_gateways(self, w) -> None:
        for nat in w.nat_gateways.values():
            if nat.vpc_id in self.routers and nat.subnet_id in w.subnets:
                self._step(f"NAT gateway {nat.id}", self._nat_gateway, w, nat)
        for nat_id in set(self.natgws) - set(w.nat_gateways):
            self._step(f"NAT gateway {nat_id}: removing", self._remove_nat_gateway, nat_id)

    def _nat_gateway(self, w, nat) -> None:
        if nat.id not in self.natgws:
            self.log(f"NAT gateway {nat.id}: {nat.private_ip} behind {nat.public_ip}")
        gw = self.natgws.setdefault(nat.id, gateways.NatGatewayNs(self.env, nat.id))
        gw.ensure(self.routers[nat.vpc_id], nat.private_ip, w.subnets[nat.subnet_id].cidr)

    def _remove_nat_gateway(self, nat_id: str) -> None:
        gw = self.natgws[nat_id]
        gw.remove(next((r for r in self.routers.values() if gw.link in r.attached), None))
        del self.natgws[nat_id]
        self.log(f"NAT gateway {nat_id} removed")

    def _internet_gateways(self, w, realised) -> None:
        for vpc_id in realised:
            if vpc_id in w.igw_of_vpc or vpc_id in self.igws:
                self._step(f"VPC {vpc_id}: internet gateway", self._internet_gateway, w, vpc_id)

    def _internet_gateway(self, w, vpc_id: str) -> None:
        if vpc_id in w.igw_of_vpc:
            if vpc_id not in self.igws:
                self.log(f"internet gateway {w.igw_of_vpc[vpc_id]} attached to {vpc_id}")
                self.igws[vpc_id] = gateways.InternetGateway(self.env, self.routers[vpc_id], self.vpc_index[vpc_id])
            self.igws[vpc_id].ensure()
            self.igws[vpc_id].translate(gateways.translations(w, vpc_id))
        elif vpc_id in self.igws:
            self.log(f"internet gateway of {vpc_id} detached")
            self.igws[vpc_id].remove()
            del self.igws[vpc_id]

    def _instances_wiring(self, w) -> None:
        """Namespaces and links for every instance that exists (running or stopped); remove the rest."""
        for inst in w.instances.values():
            if inst.exists and inst.vpc_id in self.routers and inst.subnet_id in w.subnets:
                self._step(f"instance {inst.id}: wiring", self._wire, w, inst)
        for inst_id in list(self.hosts):
            inst = w.instances.get(inst_id)
            if inst is None or not inst.exists:
                self._step(f"instance {inst_id}: removing", self._remove_instance, inst_id)

    def _wire(self, w, inst) -> None:
        host = self.hosts.get(inst.id)
        if host is None:
            host = self.hosts[inst.id] = InstanceHost(self.env, self.state_dir, inst.id, self.base)
            self.log(f"instance {inst.id}: {inst.private_ip} in {inst.subnet_id}")
        netns.ensure_ns(host.ns)
        self.routers[inst.vpc_id].attach(names.link("e", inst.eni_id), host.ns, inst.private_ip,
                                         w.subnets[inst.subnet_id].cidr)

    def _remove_instance(self, inst_id: str) -> None:
        self.log(f"instance {inst_id}: terminated, removing its container, disk and namespace")
        self.hosts[inst_id].remove()
        del self.hosts[inst_id]
        for r in self.routers.values():
            for link in [name for name in r.attached if name.startswith("e")]:
                if link not in netns.links(r.ns):
                    r.attached.pop(link, None)

    def _power(self, w) -> None:
        # Reboots and stops first, all containers at once (a clean poweroff takes about a second each).
        rebooting = [h for h in map(self.hosts.get, self.reboots()) if h and h.running]
        for rebooted in rebooting:   # a reboot: clean poweroff, then booted again just below
            self.log(f"instance {rebooted.id}: rebooting")
        stopping = [self.hosts[i.id] for i in w.instances.values()
                    if i.id in self.hosts and not i.wants_running and self.hosts[i.id].running]
        self._poweroff(rebooting + stopping)
        booting = []
        for inst in w.instances.values():
            host = self.hosts.get(inst.id)
            if host is None or inst.subnet_id not in w.subnets:
                continue
            if inst.wants_running and not host.running:
                if self._step(f"instance {inst.id}: boot", self._boot, w, inst, host):
                    booting.append(inst)
            if not inst.wants_running and host.link_up is not False:
                self._step(f"instance {inst.id}: link down", host.link, False)
        self._note_power(w)
        for inst in booting:
            self._step(f"instance {inst.id}: boot", self._wait_booted, inst)

    def _note_power(self, w) -> None:
        """What each instance the API listed is on this machine now: containers booted (not waiting
        for their sshd: EC2's `running` doesn't either), powered off, removed (power.py)."""
        states = {}
        for iid in w.listed_instances:
            host = self.hosts.get(iid)
            if host is not None:
                states[iid] = (RUNNING if host.launched else STARTING if host.running
                               else STOPPED if host.link_up is False else OFF)
            else:
                states[iid] = ABSENT if iid in w.instances else UNREALISED
        self.power.note(states)

    def _poweroff(self, hosts: list[InstanceHost]) -> None:
        """Clean poweroff of several containers in parallel, then reap each one."""
        if not hosts:
            return
        from .instances import poweroff_pids

        t0 = time.monotonic()
        poweroff_pids([h.proc.pid for h in hosts if h.proc])
        for h in hosts:
            if self._step(f"instance {h.id}: power off", h.poweroff):
                self.log(f"instance {h.id}: powered off in {time.monotonic() - t0:.1f}s")

    def _boot(self, w, inst, host: InstanceHost) -> None:
        host.link(True, w.subnets[inst.subnet_id].gateway)
        host.prepare(inst, self._public_key(inst.key_name) if not (host.dir / "identity-written").exists() else None,
                     resolver.address(w.vpcs[inst.vpc_id].cidrs[0]))
        self.log(f"instance {inst.id}: booting")
        host.boot()

    def _wait_booted(self, inst) -> None:
        took = self.hosts[inst.id].wait_sshd(inst.private_ip, self.routers[inst.vpc_id].ns,
                                             cancelled=self._stopping.is_set)
        self.boot_times[inst.id] = took
        self.log(f"instance {inst.id}: sshd up {took:.1f}s after boot")

    def _public_key(self, key_name: str | None) -> str | None:
        if not key_name:
            return None
        try:
            pairs = self.ec2.describe_key_pairs(KeyNames=[key_name], IncludePublicKey=True)["KeyPairs"]
        except Exception as exc:  # noqa: BLE001 - a deleted key pair: the instance boots with nobody able to log in, as on EC2
            self.log(f"key pair {key_name}: {exc}")
            return None
        key = pairs[0].get("PublicKey") if pairs else None
        if key and not valid_public_key(key):
            self._report([f"key pair {str(key_name)[:60]!r}: not one OpenSSH public key line; nobody can log in"])
            return None
        return key

    def _probe(self, w, realised) -> None:
        """A namespace in the first public subnet with an unused address and no security group."""
        want = None
        # "First" in address order, not by random subnet ID: when a drift routes a second subnet to
        # the internet gateway, the probe must not jump into it between two runs.
        for sub in sorted(w.subnets.values(), key=lambda s: ipaddress.ip_network(s.cidr)):
            if sub.vpc_id in realised and w.igw_routed(sub.id):
                used = {i.private_ip for i in w.instances.values()} | {n.private_ip for n in w.nat_gateways.values()}
                net = ipaddress.ip_network(sub.cidr)
                addr = next(str(net.broadcast_address - k) for k in range(1, net.num_addresses - 4)
                            if str(net.broadcast_address - k) not in used)
                want = (sub.vpc_id, addr, sub.cidr)
                break
        if want == self.probe:
            return
        ns = names.probe_ns(self.env)
        link = f"p{names.tag(self.env)}"
        if self.probe and self.probe[0] in self.routers:
            self.routers[self.probe[0]].detach(link)
        netns.remove_ns(ns)
        self.probe = None
        if want:
            netns.ensure_ns(ns)
            self.routers[want[0]].attach(link, ns, want[1], want[2])
            self.probe = want
            self.log(f"public probe at {want[1]} in {want[0]}")

    def shutdown(self, clean: bool = False) -> None:
        """Power off every container this daemon started, all at once, and reap them.

        The daemon stops only when the lab is being removed (daemon.stop deletes the disks next), so
        by default the containers are ended at once rather than shut down cleanly (which takes about
        a second and a half and protects nothing here); `clean=True` for a caller that keeps disks.
        """
        from .instances import poweroff_pids

        running = [h for h in self.hosts.values() if h.running]
        poweroff_pids([h.proc.pid for h in running if h.proc], clean=clean)
        for h in running:
            try:
                h.poweroff()
            except Exception as exc:  # noqa: BLE001 - one container must not keep the others' cgroups around
                self.log(f"instance {h.id}: {exc}")
        for r in self.resolvers.values():
            r.shutdown()
        self.internet.shutdown()

    # --- the loop ---------------------------------------------------------------------------
    def record(self, started: float, error: str | None) -> None:
        path = self.state_dir / PASS_FILE
        try:
            old = json.loads(files.read_text(path) or "{}")
        except (OSError, ValueError):
            old = {}
        self.passes += 1
        data = {"passes": self.passes, "started": started, "finished": time.time(), "error": error,
                "ok_started": old.get("ok_started", 0.0) if error else started,
                "probe": self.probe[1] if self.probe else None,
                "boot_seconds": self.boot_times, "skipped": self.skipped}
        files.write_private(path, json.dumps(data))

    def loop(self, stopping, changes, full_every: float = 2.0) -> None:
        """Pass at once after an API change or a settle request, once more FOLLOW_UP seconds after a
        pass a change started (see FOLLOW_UP), else every `full_every` seconds (that catches what the
        API doesn't announce, such as a container that died)."""
        last_error = None
        seen = -1
        seen_request = None
        last_started = 0.0
        follow_up_at: float | None = None
        request = self.state_dir / SETTLE_REQUEST
        self._stopping = stopping
        while not stopping.is_set():
            try:
                token = files.read_text(request)
            except (OSError, files.UnsafePath):
                token = None
            now = time.time()
            follow_up_due = follow_up_at is not None and now >= follow_up_at
            if changes.value == seen and token == seen_request and now - last_started < full_every \
                    and not follow_up_due:
                changes.event.wait(0.1)
                changes.event.clear()
                continue
            follow_up_at = now + FOLLOW_UP if changes.value != seen else None
            seen, seen_request = changes.value, token
            started = last_started = time.time()
            try:
                self.converge()
                error = None
            except PassIncomplete as exc:   # each failed step has been logged already
                error = f"{exc}".splitlines()[0]
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one pass; the error is recorded
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                if error != last_error:
                    self.log(f"converge pass failed: {error}\n{traceback.format_exc()}")
            last_error = error
            self.record(started, error)
