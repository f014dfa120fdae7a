""""The internet": one namespace with no link out of the machine, holding the lab's own hosts.

- 198.51.100.1 the package mirror (HTTP, flat apt repository) with /ip, an echo of the requester's
  address, and an access log, served at /access-log (the evidence that the DB's traffic leaves
  through the NAT gateway, and that MariaDB's packages came that way);
- 198.51.100.2 a DNS server for the public DNS names (only of VPCs with DNS hostnames on): the
  internet's resolver, for the suite's clients (the instances ask their VPC's, resolver.py);
- 198.51.100.3 the vantage point the suite's clients connect from (vantage.py);
- 198.51.100.4 the lab's API, as a regional endpoint is on the internet (the daemon serves it here
  too, behind the same owner-only gate), for runners (runner.py);
- 198.51.100.5-15 runners: namespaces of their own on links to this one, where a CI runner stands.
The mirror also answers as checkip.amazonaws.com (the requester's address at /), the echo service
the aws target asks its hosts to reach; the name resolves to it only inside the lab.
Its only links are the VPC routers' IGW links (gateways.py) and the runners' links. The servers run
as threads of the daemon on sockets made inside the namespace, so there is no helper process to
lose track of.
"""
from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path
from typing import Any

from dnslib import QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSServer

from . import names, netns

MIRROR_IP = "198.51.100.1"
DNS_IP = "198.51.100.2"
VANTAGE_IP = "198.51.100.3"
API_IP = "198.51.100.4"
MIRROR_NAME = "mirror.lab.test"
# The echo service the aws target's checks ask for (awsenv/targets/base.py: CHECKIP_URL).
CHECKIP_NAME = "checkip.amazonaws.com"
HOST_ADDRESSES = (MIRROR_IP, DNS_IP, VANTAGE_IP, API_IP)
ACCESS_LOG = "mirror-access.log"


class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    access_log: Path

    def do_GET(self):
        path = self.path.split("?")[0]
        if self.headers.get("Host", "").split(":")[0].lower() == CHECKIP_NAME:
            path = "/ip"      # checkip answers the requester's address at any path
        if path in ("/ip", "/ip/", "/access-log"):
            # /access-log: the mirror operator's record of who fetched what (article 4.7's evidence).
            body = (f"{self.client_address[0]}\n".encode() if path != "/access-log" else
                    (self.access_log.read_bytes() if self.access_log.exists() else b""))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, fmt, *args):
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {self.client_address[0]} {fmt % args}\n"
        with open(self.access_log, "a") as f:
            f.write(line)


class _Resolver(BaseResolver):
    def __init__(self):
        self.records: dict[str, str] = {}

    def resolve(self, request, handler):
        reply = request.reply()
        qname = str(request.q.qname).rstrip(".").lower()
        address = self.records.get(qname)
        if address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=5))
        return reply


class Internet:
    def __init__(self, env: str, repo: Path):
        self.env = env
        self.ns = names.internet_ns(env)
        self.repo = repo
        self.resolver = _Resolver()
        self.http: http.server.ThreadingHTTPServer | None = None
        self.dns: Any = None

    def ensure(self) -> None:
        if netns.ensure_ns(self.ns, forwarding=True):
            # On lo: these hosts are the namespace itself (no dummy module on every kernel).
            for addr in HOST_ADDRESSES:
                netns.ip(self.ns, "addr", "add", f"{addr}/32", "dev", "lo")
        if self.http is None:
            run = names.run_dir(self.env)
            run.mkdir(parents=True, exist_ok=True)
            handler = type("MirrorHandler", (_MirrorHandler,), {"access_log": run / ACCESS_LOG})
            factory = functools.partial(handler, directory=str(self.repo))
            server = netns.in_netns(self.ns, lambda: http.server.ThreadingHTTPServer((MIRROR_IP, 80), factory))
            server.daemon_threads = True
            self.http = server
            # A short poll: shutdown() waits for it when the lab stops.
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="mirror-http",
                             daemon=True).start()
        if self.dns is None:
            self.dns = netns.in_netns(self.ns, lambda: DNSServer(self.resolver, port=53, address=DNS_IP,
                                                                 logger=QuietLogger()))
            self.dns.thread = threading.Thread(target=self.dns.server.serve_forever, kwargs={"poll_interval": 0.05},
                                               name="lab-dns", daemon=True)
            self.dns.thread.start()

    def publish(self, records: dict[str, str]) -> None:
        self.resolver.records = {MIRROR_NAME: MIRROR_IP, CHECKIP_NAME: MIRROR_IP,
                                 **{k.lower(): v for k, v in records.items()}}

    def shutdown(self) -> None:
        if self.http:
            self.http.shutdown()
            self.http.server_close()
            self.http = None
        if self.dns:
            self.dns.stop()
            self.dns = None


class QuietLogger:
    """dnslib's logger, silent: a lookup is no event for the daemon's log."""

    def log_recv(self, *a): pass
    def log_send(self, *a): pass
    def log_request(self, *a): pass
    def log_reply(self, *a): pass
    def log_truncated(self, *a): pass
    def log_error(self, handler, e): pass
    def log_data(self, *a): pass
