"""The VPC's resolver (AmazonProvidedDNS): the base of the VPC's primary CIDR plus two, answering
every subnet of the VPC from inside it, with no NAT gateway and no internet gateway in the way.

AWS, "Amazon DNS server" (VPC user guide): the resolver sits at the VPC's base address plus two
(10.0.0.2 for 10.0.0.0/16); it answers the instances' private DNS names (ip-10-0-1-5.ec2.internal
in us-east-1, ip-10-0-1-5.<region>.compute.internal elsewhere) and their reverse lookups, a public
DNS name of an instance in the VPC with its private address, and any other name as the internet
does. Security groups don't filter traffic to it. DHCP hands it to the instances as their name
server, with the private domain as the search domain (instances.py writes that resolv.conf).

Here it is a DNS server (dnslib, a thread of the daemon) on a socket made inside the VPC's router
namespace, on an address of the router's loopback: every ENI's packets reach the router, so both
subnets reach it whatever their route tables say. What it doesn't know it answers from the lab's
internet DNS (internet.py's records: the mirror, public names of other VPCs).
"""
from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any

from dnslib import PTR, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

from . import netns
from .internet import QuietLogger
from .world import World

TTL = 60


def address(vpc_cidr: str) -> str:
    """AmazonProvidedDNS's address for a VPC whose primary CIDR is vpc_cidr."""
    return str(ipaddress.ip_network(vpc_cidr).network_address + 2)


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer


def records(world: World, vpc_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """(name -> address, reverse name -> name) for the instances of one VPC: their private names,
    and their public names answered with the private address (as AWS does inside the VPC)."""
    forward: dict[str, str] = {}
    reverse: dict[str, str] = {}
    dns_hostnames = world.vpcs[vpc_id].dns_hostnames if vpc_id in world.vpcs else False
    for inst in world.instances.values():
        if inst.vpc_id != vpc_id or not inst.exists:
            continue
        if inst.private_dns:
            forward[inst.private_dns] = inst.private_ip
            reverse[reverse_name(inst.private_ip)] = inst.private_dns
        if inst.public_dns and dns_hostnames:
            forward[inst.public_dns] = inst.private_ip
    return forward, reverse


class _Answers(BaseResolver):
    def __init__(self, fallback: Callable[[str], str | None]):
        self.forward: dict[str, str] = {}
        self.reverse: dict[str, str] = {}
        self.fallback = fallback

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        name = str(q.qname).rstrip(".").lower()
        if name.endswith(".in-addr.arpa"):
            target = self.reverse.get(name)
            if target is None:
                reply.header.rcode = RCODE.NXDOMAIN
            elif q.qtype in (QTYPE.PTR, QTYPE.ANY):
                reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=TTL))
            return reply
        found = self.forward.get(name) or self.fallback(name)
        if found is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(found), ttl=TTL))
        return reply


class VpcResolver:
    """One VPC's resolver: its address on the router's loopback, its server thread."""

    def __init__(self, router_ns: str, vpc_cidr: str, fallback: Callable[[str], str | None]):
        self.ns = router_ns
        self.address = address(vpc_cidr)
        self.answers = _Answers(fallback)
        self.server: Any = None

    def ensure(self) -> None:
        if self.server is not None:
            return
        if f"{self.address}/32" not in netns.ip(self.ns, "-o", "addr", "show", "dev", "lo"):
            netns.ip(self.ns, "addr", "add", f"{self.address}/32", "dev", "lo")
        server = netns.in_netns(self.ns, lambda: DNSServer(self.answers, port=53, address=self.address,
                                                           logger=QuietLogger()))
        server.thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05},
                                         name=f"vpc-dns-{self.address}", daemon=True)
        server.thread.start()
        self.server = server

    def publish(self, forward: dict[str, str], reverse: dict[str, str]) -> None:
        self.answers.forward = {k.lower(): v for k, v in forward.items()}
        self.answers.reverse = {k.lower(): v for k, v in reverse.items()}

    def shutdown(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
