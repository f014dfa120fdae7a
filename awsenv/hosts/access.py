"""The hosts as the checks reach them: the shared SSH connections, with "could not look" told apart
from "looked and found it wrong".

Reading a host's state (a package, a service, sshd's settings) needs a login; when there is none
(no key, no route, a public address in loopback) the check is "not checked", never a failure.
Logging in is itself a property twice (2.4: the key logs in to the web server; 4.4: the DB is
reached through it): `login()` says which of "logged in", "refused" (sshd answered and said no) or
"unreachable" happened, so those checks can fail where the host answered and refused.
"""
from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import paramiko

from ..errors import EnvError, one_line
from ..verdict import NotChecked
from .probes import not_public_reason


@dataclass(frozen=True)
class Login:
    role: str
    outcome: str          # "logged in", "refused", "unreachable", "not attempted" (no address, no jump host)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == "logged in"

    def line(self) -> str:
        return f"ssh {self.role}: {self.outcome}" + (f" ({self.detail})" if self.detail else "")


def _classify(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, paramiko.AuthenticationException):
        return "refused", f"sshd answered and refused the key: {one_line(exc) or type(exc).__name__}"
    if isinstance(exc, paramiko.ChannelException):
        return "unreachable", f"the jump host could not open a connection to it: {one_line(exc) or exc}"
    if isinstance(exc, (OSError, socket.timeout, paramiko.SSHException, EOFError)):
        return "unreachable", one_line(exc) or type(exc).__name__
    return "unreachable", one_line(exc) or type(exc).__name__


class HostAccess:
    """Wraps the Environment's shared Connections; one attempt per host per connection set."""

    def __init__(self, env):
        self._env = env
        self._lock = threading.RLock()
        self._logins: dict[str, Login] = {}
        self._conns = None

    def _connections(self):
        try:
            conns = self._env.connections()
        except EnvError as exc:
            raise NotChecked(f"no SSH access to the hosts: {exc}") from None
        if conns is not self._conns:        # reconnected (after a stop/start): forget what we saw
            self._conns, self._logins = conns, {}
        return conns

    def login(self, role: str) -> Login:
        """Log in to a role's host once; the DB through the web server. Never raises for a refused or
        unreachable host: the answer says which (a changed host key still stops the run)."""
        with self._lock:
            conns = self._connections()
            if role in self._logins:
                return self._logins[role]
            down = self._env.not_running((role,))
            if down:
                return self._remember(Login(role, "not attempted", down))
            if role == "web":
                reason = not_public_reason(conns.web_addr)
                if reason:
                    return self._remember(Login(role, "not attempted", reason))
            else:
                web = self.login("web")
                if not web.ok:
                    return self._remember(Login(role, "not attempted",
                                                f"its jump host, the web server, was {web.outcome}: {web.detail}"))
            try:
                getattr(conns, role)()
            except EnvError as exc:
                if "CHANGED" in str(exc):
                    raise                       # a changed host key is never "could not look"
                return self._remember(Login(role, "unreachable", one_line(exc)))
            except Exception as exc:  # noqa: BLE001 - every way of not getting in is classified, none hidden
                return self._remember(Login(role, *_classify(exc)))
            return self._remember(Login(role, "logged in"))

    def _remember(self, login: Login) -> Login:
        self._logins[login.role] = login
        return login

    def reach(self, role: str):
        """The Connections, once the role's host is logged in to; else NotChecked with the reason."""
        login = self.login(role)
        if not login.ok:
            raise NotChecked(f"the {role} server could not be reached over SSH ({login.outcome}: {login.detail})")
        return self._conns

    def execute(self, role: str, command: str, timeout: float = 600):
        conns = self.reach(role)
        try:
            return conns.execute(role, command, timeout=timeout)
        except (OSError, paramiko.SSHException, EOFError, EnvError) as exc:
            raise NotChecked(f"the SSH connection to the {role} server failed during the check: "
                             f"{one_line(exc) or type(exc).__name__}") from None

    def host(self, role: str):
        """A testinfra Host on the shared connection."""
        return self.reach(role).host(role)

    def os_family(self, role: str):
        conns = self.reach(role)
        try:
            return conns.os_family(role)
        except (OSError, paramiko.SSHException, EOFError) as exc:
            raise NotChecked(f"could not read /etc/os-release on the {role} server: {one_line(exc)}") from None

    def package_installs(self, role: str, package: str):
        """When the host's package manager installed a package, and its configured sources."""
        from . import packages

        return packages.parse(self.execute(role, packages.COMMAND).stdout, package)

    def open_web(self, key=None) -> paramiko.SSHClient:
        """A new connection to the web server (2.4 tries a wrong key with it)."""
        return self.reach("web").open_web(key=key)

    @property
    def web_addr(self) -> str:
        return self._connections().web_addr
