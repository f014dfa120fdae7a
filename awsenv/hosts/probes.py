"""Reachability probes from the internet vantage point, through the target's socket factory.

Negative reachability is probed, not inferred: a probe says "open", "refused" or "timeout".
"""
from __future__ import annotations

import http.client

from ..targets import Target


def tcp(target: Target, host: str, port: int, timeout: float | None = None, origin: str = "internet") -> str:
    try:
        sock = target.connect(host, port, timeout=timeout if timeout is not None else target.probe_timeout,
                              origin=origin)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"
    sock.close()
    return "open"


class _Conn(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, host_header: str, timeout: float):
        super().__init__(host_header, 80, timeout=timeout)
        self._target, self._address, self._timeout = target, address, timeout

    def connect(self):
        self.sock = self._target.connect(self._address, 80, timeout=self._timeout)


def http_get(target: Target, address: str, host_header: str | None = None, timeout: float = 5.0):
    """GET / at address (Host: host_header); returns (status, headers dict, body text)."""
    conn = _Conn(target, address, host_header or address, timeout)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read(65536).decode(errors="replace")
    finally:
        conn.close()


class Probe:
    """The internet's vantage point as the checks use it: TCP, HTTP and DNS from outside the VPC
    (or, where the target has one, from another host in the public subnet: origin="public-probe")."""

    def __init__(self, target: Target):
        self._target = target

    @property
    def available(self) -> bool:
        return self._target.host_access

    @property
    def unavailable_reason(self) -> str:
        return self._target.host_access_reason

    @property
    def boot_timeout(self) -> float:
        return self._target.boot_timeout

    def tcp(self, host: str, port: int, origin: str = "internet") -> str:
        return tcp(self._target, host, port, origin=origin)

    def http_get(self, address: str, host_header: str | None = None):
        return http_get(self._target, address, host_header)

    def resolve(self, name: str) -> list[str]:
        return self._target.resolve(name)

    def echo_url(self) -> str:
        return self._target.echo_url()

    def wait_for_site(self, address: str) -> str | None:
        """Wait (up to the target's boot timeout) for GET / at address to answer 200; None if it never did."""
        from ..errors import EnvError
        from ..waits import wait_until

        try:
            wait_until(lambda: http_get(self._target, address)[0] == 200, f"Apache at {address}",
                       timeout=self._target.boot_timeout, progress=lambda m: None)
        except EnvError:
            return None
        return f"GET http://{address}/ answered 200"
