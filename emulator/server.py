"""How moto is patched for the lab, so the API's addresses can be real on this machine.

moto's defaults don't fit a data plane: Elastic IPs come from 127.0.0.0/8 (they would shadow the
host's loopback), public IPs from 54.214.x.x (a real provider's block), and a NAT gateway's private
IP is random and outside its subnet. Here every public address is drawn uniquely from
198.51.100.0/24 (.16 and up; .1-.15 are the lab's own internet hosts) and a NAT gateway gets a free
address of its subnet. Call `patch()` before the server starts; `serve()` does, and puts the
owner-only SigV4 gate (auth.py) in front of moto, with the realism layer (realism/) between the
two: the lab's API answers as EC2 does (eventual consistency, pending/stopping/shutting-down,
lingering interfaces, zones, another team's instance), its windows scaled down (LAB_REALISM_SCALE).
`TWOTIER_EMULATOR_REALISM=off` in the daemon's environment makes it plain moto again.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import threading

PUBLIC_NET = ipaddress.ip_network("198.51.100.0/24")
FIRST_PUBLIC_HOST = 16  # .1-.15: mirror, DNS, vantage (see internet.py)
_lock = threading.Lock()
_cursor = [FIRST_PUBLIC_HOST]
_handed_out: set[str] = set()
_ctx = threading.local()
_originals: dict = {}


def _addresses_in_use() -> set[str]:
    from moto.ec2.models import ec2_backends

    used: set[str] = set()
    for account in ec2_backends.values():
        for backend in account.values():
            used.update(a.public_ip for a in getattr(backend, "addresses", []))
            used.update(e.public_ip for e in getattr(backend, "enis", {}).values() if e.public_ip)
    return used


def lab_public_ip() -> str:
    """A public address from 198.51.100.16-254 that nothing in any moto backend holds.

    Addresses are handed out round-robin so that a just-released address isn't reused at once
    (a stale NAT rule or DNS answer then can't point at someone else).
    """
    with _lock:
        used = _addresses_in_use()
        for _ in range(FIRST_PUBLIC_HOST, 255):
            n = _cursor[0]
            _cursor[0] = n + 1 if n < 254 else FIRST_PUBLIC_HOST
            ip = str(PUBLIC_NET.network_address + n)
            if ip not in used and ip not in _handed_out:
                _handed_out.add(ip)
                if len(_handed_out) > 64:  # only guards the moment between handing out and storing
                    _handed_out.clear()
                    _handed_out.add(ip)
                return ip
        raise RuntimeError("the lab's public address block 198.51.100.16-254 is exhausted")


class _NatGatewaySlot:
    """Marks a subnet address as taken by a NAT gateway (moto's subnet keeps owners by address)."""

    def __init__(self, subnet_id):
        self.id = f"natgw-in-{subnet_id}"


class ChangeCounter:
    """Counts API calls that may change something (anything but Describe/Get/List), so the converge
    loop can wake at once on a change and stay idle otherwise."""

    def __init__(self):
        self.value = 0
        self.event = threading.Event()

    def bump(self) -> None:
        self.value += 1
        self.event.set()


changes = ChangeCounter()
# Instances asked to reboot (moto only resets their state); the converge loop restarts them.
_reboots: set[str] = set()


def take_reboots() -> set[str]:
    with _lock:
        taken = set(_reboots)
        _reboots.clear()
    return taken
READ_ONLY = ("Describe", "Get", "List")


def patch() -> None:
    """Install the lab's address rules into moto (idempotent; `unpatch()` restores moto's)."""
    if _originals:
        return
    from moto.core.responses import BaseResponse
    from moto.ec2 import utils
    from moto.ec2.models import elastic_ip_addresses, elastic_network_interfaces, nat_gateways
    from moto.ec2.models import instances as ec2_instances

    _originals.update({
        (elastic_ip_addresses, "random_ip"): elastic_ip_addresses.random_ip,
        (elastic_network_interfaces, "random_public_ip"): elastic_network_interfaces.random_public_ip,
        (utils, "random_public_ip"): utils.random_public_ip,
        (nat_gateways, "random_private_ip"): nat_gateways.random_private_ip,
        (nat_gateways.NatGateway, "__init__"): nat_gateways.NatGateway.__init__,
        (BaseResponse, "call_action"): BaseResponse.call_action,
        (ec2_instances.Instance, "reboot"): ec2_instances.Instance.reboot,
    })
    original_reboot = ec2_instances.Instance.reboot

    def reboot(self):
        original_reboot(self)
        with _lock:
            _reboots.add(self.id)

    ec2_instances.Instance.reboot = reboot  # type: ignore[method-assign]
    original_call_action = BaseResponse.call_action

    def call_action(self):
        try:
            return original_call_action(self)
        finally:
            try:
                action = self._get_action()
            except Exception:  # noqa: BLE001 - a request moto couldn't even name: count it as a change
                action = ""
            if not action.startswith(READ_ONLY):
                changes.bump()

    BaseResponse.call_action = call_action  # type: ignore[method-assign]
    elastic_ip_addresses.random_ip = lab_public_ip
    elastic_network_interfaces.random_public_ip = lab_public_ip
    utils.random_public_ip = lab_public_ip

    original_private_ip = nat_gateways.random_private_ip
    original_init = nat_gateways.NatGateway.__init__

    def nat_private_ip(cidr=None, ipv6=False):
        subnet = getattr(_ctx, "subnet", None)
        if subnet is None or cidr or ipv6:
            return original_private_ip(cidr, ipv6)
        # Same allocator as instances use: never the reserved .0-.3, never an address in use.
        return subnet.get_available_subnet_ip(instance=_NatGatewaySlot(subnet.id))

    def nat_init(self, backend, subnet_id, *args, **kwargs):
        _ctx.subnet = backend.get_subnet(subnet_id)
        try:
            original_init(self, backend, subnet_id, *args, **kwargs)
        finally:
            _ctx.subnet = None

    nat_gateways.random_private_ip = nat_private_ip
    nat_gateways.NatGateway.__init__ = nat_init  # type: ignore[method-assign]


def unpatch() -> None:
    """Give moto back its own address rules (tests that share a process with other moto users)."""
    for (owner, name), value in _originals.items():
        setattr(owner, name, value)
    _originals.clear()


# The realism layer's windows in the lab: a twentieth of its defaults (a new ID is "not found" for
# 75 ms, an instance pending for 0.2 s and until its container runs: the daemon's state gate, a NAT
# gateway pending for 0.3 s), so a warm local run stays
# fast while every answer and the order of states stay EC2's (any call made right after a create
# still meets NotFound). A terminated instance's interfaces linger for 0.4 s, long enough that the
# teardown still meets them in a local run. TWOTIER_EMULATOR_REALISM_SCALE multiplies them again.
LAB_REALISM_SCALE = 0.05
LAB_ENI_LINGER = 0.4


class LabApiServer:
    """moto's WSGI app behind the realism layer (emulator/realism/) behind the SigV4 gate
    (emulator/auth.py), on a thread, on 127.0.0.1; `also_at` serves the same gate at one more
    address (the lab's internet: where a regional endpoint is for a runner there)."""

    def __init__(self, port: int, access_key_id: str, secret_access_key: str, log=None,
                 counts_path: str | os.PathLike | None = None):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        from . import realism
        from .auth import SigV4Gate

        # Inside the gate: the gate checks the signature over the client's own request; the layer may
        # then rewrite a request's parameters for moto. The counts (injected answers by rule) go to
        # counts_path, else to TWOTIER_EMULATOR_REALISM_COUNTS when set.
        base = dataclasses.replace(realism.Timings().scaled(LAB_REALISM_SCALE), eni_linger=LAB_ENI_LINGER)
        timings = realism.Timings.from_env(base)
        self.realism = realism.wrap(DomainDispatcherApplication(create_backend_app), timings=timings,
                                    counts_path=counts_path)
        if log is not None:
            rules = ", ".join(r for r in realism.RULES if self.realism.on(r)) or "off (plain moto)"
            log(f"realism layer: {rules}")
        self.gate = SigV4Gate(self.realism, access_key_id, secret_access_key, log=log)
        self._server = make_server("127.0.0.1", port, self.gate, threaded=True, request_handler=MotoRequestHandler)
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-api", daemon=True)
        self._more: list = []

    def start(self) -> LabApiServer:
        self._thread.start()
        return self

    def also_at(self, host: str, port: int, make_socket_in=lambda make: make()) -> str:
        """Serve the same gate at host:port too; `make_socket_in` makes the listening socket where
        it must live (the lab passes a call that makes it inside its internet namespace). Returns
        that endpoint. Requests there are signed and checked exactly as on loopback."""
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        server = make_socket_in(lambda: make_server(host, port, self.gate, threaded=True,
                                                    request_handler=MotoRequestHandler))
        thread = threading.Thread(target=server.serve_forever, name=f"lab-api-{host}", daemon=True)
        thread.start()
        self._more.append((server, thread))
        return f"http://{host}" + ("" if port == 80 else f":{port}")

    def stop(self) -> None:
        for server, thread in [(self._server, self._thread), *self._more]:
            server.shutdown()
            thread.join(5)
            server.server_close()


def serve(port: int, *, access_key_id: str, secret_access_key: str, log=None,
          counts_path: str | os.PathLike | None = None) -> LabApiServer:
    """Start the lab's API on loopback (where the lab's own namespaces can't reach it; `also_at` adds an
    address where they can, the lab's internet), answering
    only requests signed with these credentials; port 0 picks a free port (see `.port`)."""
    patch()
    return LabApiServer(port, access_key_id, secret_access_key, log=log, counts_path=counts_path).start()
