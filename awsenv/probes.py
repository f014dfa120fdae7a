"""Reachability probes from the internet vantage point, through the target's socket factory.

Negative reachability is probed, not inferred: a probe says "open", "refused" or "timeout".
"""
from __future__ import annotations

import http.client
import socket

from .targets import Target


def tcp(target: Target, host: str, port: int, timeout: float | None = None, origin: str = "internet") -> str:
    try:
        sock = target.connect(host, port, timeout=timeout or target.probe_timeout, origin=origin)
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"
    sock.close()
    return "open"


class _Conn(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, host_header: str, timeout: float):
        super().__init__(host_header, 80, timeout=timeout)
        self._target, self._address = target, address

    def connect(self):
        self.sock = self._target.connect(self._address, 80, timeout=self.timeout)


def http_get(target: Target, address: str, host_header: str | None = None, timeout: float = 5.0):
    """GET / at address (Host: host_header); returns (status, headers dict, body text)."""
    conn = _Conn(target, address, host_header or address, timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read(65536).decode(errors="replace")
    finally:
        conn.close()
