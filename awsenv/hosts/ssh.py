"""Host access, one object for provisioning and checks alike: one SSH connection per host for the
whole run, the DB's through the web server.

Host keys are pinned on first contact into the environment's known_hosts; a changed key fails
the run. The same facts are written as an ssh_config that OpenSSH accepts (`ssh -F FILE db`).
The pins and the environment's own key are read and written as every file of a state folder is
(common/files.py): in a folder of ours, never through a link.

"Could not look" is told apart from "looked and found it wrong". Reading a host's state (a
package, a service, sshd's settings) needs a login; when there is none (no route, a public address
in loopback, a stopped server, a jump host that is down) the command raises HostUnreachable, which
is both "not checked" for a check (never a failure) and a one-line EnvError for provisioning.
Logging in is itself a property twice (2.4: the key logs in to the web server; 4.4: the DB is
reached through it): `login()` says which of "logged in", "refused" (sshd answered and said no) or
"unreachable" happened, so those checks can fail where the host answered and refused.
"""
from __future__ import annotations

import functools
import io
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from common import files

from ..errors import EnvError, one_line
from ..settings import Settings
from ..targets import Target
from ..verdict import NotChecked
from ..waits import wait_until
from . import packages
from .os_table import OsFamily, classify_os_release
from .probes import not_public_reason

PIN_FILE = "twotier-known-hosts"    # a name of our own: never a user's known_hosts
SSH_CONFIG_HEADER = "# twotier environment"


def pin_file(settings: Settings) -> Path:
    return settings.state_dir / PIN_FILE


def forget_pins(settings: Settings) -> None:
    """The hosts are gone; the next environment reuses their addresses with new keys."""
    files.remove(pin_file(settings))


def load_pins(client: paramiko.SSHClient, known_hosts: Path) -> None:
    """The pinned host keys into the client (paramiko's own loader would follow a link)."""
    text = files.read_text(known_hosts) or ""
    for line in text.splitlines():
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        if entry is not None and entry.key is not None:
            for name in entry.hostnames:
                client.get_host_keys().add(name, entry.key.get_name(), entry.key)


def save_pins(client: paramiko.SSHClient, known_hosts: Path) -> None:
    keys = client.get_host_keys()
    lines = [f"{name} {kind} {key.get_base64()}\n" for name in keys.keys() for kind, key in keys[name].items()]
    files.write_private(known_hosts, "".join(lines))


class PinOnFirstContact(paramiko.MissingHostKeyPolicy):
    """Unknown host: remember its key. Known host with another key: paramiko raises BadHostKeyException."""

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        save_pins(client, self.known_hosts)


class KeyMissing(EnvError):
    """No key file where the environment's own key would be: someone else's environment says what to
    give instead (Environment.connections)."""


def load_key(path: Path, own: bool) -> paramiko.PKey:
    """The private key at `path`: the environment's own (`own`: in its state folder, read as every
    file there is) or the user's (--ssh-key: private, as OpenSSH insists, and without a passphrase)."""
    try:
        if own:
            text = files.read_private(path)
        else:
            if path.stat().st_mode & 0o077:
                raise EnvError(f"SSH key file {path} is readable by others (mode {oct(path.stat().st_mode & 0o777)}); "
                               f"run chmod 600 {path}")
            text = path.read_bytes()
    except FileNotFoundError:
        raise KeyMissing(f"SSH key file {path} does not exist (provision first, or pass --ssh-key)") from None
    except IsADirectoryError:
        raise EnvError(f"SSH key file {path} is a folder, not a key") from None
    for cls in (paramiko.Ed25519Key, paramiko.RSAKey, paramiko.ECDSAKey):
        try:
            return cls.from_private_key(io.StringIO(text.decode(errors="replace")))
        except paramiko.PasswordRequiredException:
            raise EnvError(f"SSH key file {path} is encrypted and needs a passphrase, which this tool never asks for; "
                           f"give a key without one (ssh-keygen -p -N '' -f COPY on a copy of it)") from None
        except (paramiko.SSHException, ValueError):
            continue
    raise EnvError(f"SSH key file {path} holds no private key paramiko can read")


class HostUnreachable(NotChecked, EnvError):
    """A host that can't be logged in to, or whose connection broke during a command: "not checked"
    for a check (it could not look), a one-line error for provisioning."""

    __str__ = EnvError.__str__


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


class Connections:
    """The hosts over SSH: lazily opened, shared clients for the web and db roles, one login attempt
    per host until forget(). `not_running(roles)` says from the API why a role's host can't be
    looked at ("" when running): a stopped server is "not attempted", not waited for."""

    def __init__(self, target: Target, settings: Settings, web_addr: str, db_addr: str,
                 key: paramiko.PKey | None = None, not_running: Callable[[tuple[str, ...]], str] | None = None):
        self.target = target
        self.settings = settings
        self.web_addr = web_addr
        self.db_addr = db_addr
        self.key = key
        self.known_hosts = pin_file(settings)
        self.opened = 0           # connections this process opened (benchmarks count them)
        self.commands: list[tuple[str, str]] = []   # (role, command) run by checks, for the floor benchmark
        self._not_running = not_running or (lambda roles: "")
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._failed: dict[str, str] = {}
        self._logins: dict[str, Login] = {}
        self._os: dict[str, OsFamily] = {}
        self._lock = threading.RLock()

    def _client(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        load_pins(client, self.known_hosts)
        client.set_missing_host_key_policy(PinOnFirstContact(self.known_hosts))
        return client

    def _connect(self, address: str, sock, key) -> paramiko.SSHClient:
        client = self._client()
        try:
            client.connect(address, username=self.settings.ssh_user, pkey=key or self.key, sock=sock,
                           timeout=self.target.answer_timeout, banner_timeout=15, auth_timeout=15,
                           allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as exc:
            raise EnvError(f"host key of {address} CHANGED since it was pinned in {self.known_hosts} "
                           f"(got {exc.key.get_fingerprint().hex()}); if the host was rebuilt on purpose, "
                           f"remove its line from that file") from None
        self.opened += 1
        return client

    def open_web(self, key=None) -> paramiko.SSHClient:
        sock = self.target.connect(self.web_addr, 22, timeout=self.target.answer_timeout)
        return self._connect(self.web_addr, sock, key)

    def open_db(self, key=None) -> paramiko.SSHClient:
        channel = transport_of(self.web()).open_channel(
            "direct-tcpip", (self.db_addr, 22), ("127.0.0.1", 0), timeout=self.target.answer_timeout)
        return self._connect(self.db_addr, channel, key)

    def web(self) -> paramiko.SSHClient:
        return self._get("web", self.open_web)

    def db(self) -> paramiko.SSHClient:
        return self._get("db", self.open_db)

    def _get(self, role, opener):
        with self._lock:
            if role in self._failed:
                # One attempt per host per run: every later check fails fast with the first cause
                # instead of waiting out its own connect timeout.
                raise EnvError(f"the {role} server could not be reached over SSH earlier in this run: "
                               f"{self._failed[role]}")
            client = self._clients.get(role)
            transport = client.get_transport() if client else None
            if client is None or transport is None or not transport.is_active():
                try:
                    client = self._clients[role] = opener()
                except (OSError, paramiko.SSHException, EnvError) as exc:
                    self._failed[role] = one_line(exc) or type(exc).__name__
                    raise
            return client

    def forget(self) -> None:
        """Drop every connection and what the logins found (after a stop/start the old ones are dead,
        and what was reachable before may not be now, and the reverse)."""
        with self._lock:
            self._failed.clear()
            self._logins.clear()
            for role in ("db", "web"):
                client = self._clients.pop(role, None)
                if client:
                    client.close()

    close = forget

    def login(self, role: str) -> Login:
        """Log in to a role's host once; the DB through the web server. Never raises for a refused or
        unreachable host: the answer says which (a changed host key still stops the run)."""
        with self._lock:
            if role in self._logins:
                return self._logins[role]
            down = self._not_running((role,))
            if down:
                return self._remember(Login(role, "not attempted", down))
            if role == "web":
                reason = not_public_reason(self.web_addr)
                if reason:
                    return self._remember(Login(role, "not attempted", reason))
            else:
                web = self.login("web")
                if not web.ok:
                    return self._remember(Login(role, "not attempted",
                                                f"its jump host, the web server, was {web.outcome}: {web.detail}"))
            try:
                getattr(self, role)()
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

    def _reach(self, role: str) -> None:
        """The role's host logged in to; else HostUnreachable with the reason."""
        login = self.login(role)
        if not login.ok:
            raise HostUnreachable(f"the {role} server could not be reached over SSH ({login.outcome}: {login.detail})")

    def execute(self, role: str, command: str, timeout: float = 600) -> Result:
        """Run a command on a role's host over the shared connection (HostUnreachable if it can't)."""
        self._reach(role)
        self.commands.append((role, command))
        try:
            return execute(getattr(self, role)(), command, timeout=timeout)
        except (OSError, paramiko.SSHException, EOFError, EnvError) as exc:
            raise HostUnreachable(f"the SSH connection to the {role} server failed during the command: "
                                  f"{one_line(exc) or type(exc).__name__}") from None

    def package_installs(self, role: str, package: str) -> packages.Installs:
        """When the host's package manager installed a package, and its configured sources."""
        return packages.parse(self.execute(role, packages.COMMAND).stdout, package)

    def os_family(self, role: str) -> OsFamily:
        """The host's OS family, read from its /etc/os-release once (never guessed from an image name)."""
        with self._lock:
            if role not in self._os:
                result = self.execute(role, "cat /etc/os-release")
                if result.rc != 0:
                    raise EnvError(f"could not read /etc/os-release on the {role} server: {result.stderr.strip()}")
                self._os[role] = classify_os_release(result.stdout)
            return self._os[role]

    def host(self, role: str) -> Host:
        """A testinfra Host on the shared connection (HostUnreachable if the host can't be logged in to)."""
        self._reach(role)
        return Host(SharedClientBackend(role, getattr(self, role), self.commands))

    def wait_ready(self, role: str, timeout: float = 300, progress=print) -> None:
        """SSH ready: the host is up and accepts our key."""
        def ready():
            with self._lock:
                self._clients.pop(role, None)
                self._failed.pop(role, None)
                self._logins.pop(role, None)
            return execute(getattr(self, role)(), "true").rc == 0
        wait_until(ready, f"SSH on the {role} server to accept the key", timeout, progress, delay=2)


class SharedClientBackend(ParamikoBackend):
    """testinfra's paramiko backend on our shared client: no ProxyJump support needed, one connection."""

    def __init__(self, role: str, client_getter, log: list):
        super().__init__(f"paramiko://{role}")
        self._getter = client_getter
        self._role, self._log = role, log

    def run(self, command, *args, **kwargs):
        self._log.append((self._role, self.get_command(command, *args)))
        return super().run(command, *args, **kwargs)

    @functools.cached_property
    def client(self) -> paramiko.SSHClient:
        return self._getter()


class Result:
    def __init__(self, rc: int, stdout: str, stderr: str, command: str):
        self.rc, self.stdout, self.stderr, self.command = rc, stdout, stderr, command

    def evidence(self) -> str:
        return f"$ {self.command}\n{self.stdout}{self.stderr}(exit {self.rc})"


def transport_of(client: paramiko.SSHClient) -> paramiko.Transport:
    transport = client.get_transport()
    if transport is None or not transport.is_active():
        raise EnvError("the SSH connection closed")
    return transport


def execute(client: paramiko.SSHClient, command: str, timeout: float = 600) -> Result:
    chan = transport_of(client).open_session(timeout=15)
    chan.settimeout(timeout)
    chan.exec_command(command)
    out = chan.makefile("rb").read().decode(errors="replace")
    err = chan.makefile_stderr("rb").read().decode(errors="replace")
    return Result(chan.recv_exit_status(), out, err, command)


def ssh_config(settings: Settings, web_addr: str, db_addr: str, proxy_command: str | None) -> str:
    """An ssh_config a person can use with OpenSSH: `ssh -F FILE web`, `ssh -F FILE db`."""
    common = (f"  User {settings.ssh_user}\n  IdentityFile {_quoted(settings.key_file)}\n  IdentitiesOnly yes\n"
              f"  UserKnownHostsFile {_quoted(pin_file(settings))}\n  StrictHostKeyChecking accept-new\n"
              f"  ControlMaster auto\n  ControlPath {_quoted(control_dir(settings) / 'cm-%h-%p')}\n"
              "  ControlPersist 60\n")
    web = f"Host web\n  HostName {web_addr}\n{common}"
    if proxy_command:
        web += f"  ProxyCommand {proxy_command}\n"
    db = f"Host db\n  HostName {db_addr}\n{common}  ProxyJump web\n"
    return f"{SSH_CONFIG_HEADER} {settings.env} on target {settings.target}\n{web}\n{db}"


# A Unix socket's path holds at most 107 bytes, and OpenSSH binds the master's socket at ControlPath
# plus a 17-character random suffix first: the state dir of a repository in a deep folder is too long.
_SOCKET_PATH_MAX = 107 - len("/cm-255.255.255.255-22") - 17     # %h is the host's IPv4 address


def control_dir(settings: Settings) -> Path:
    """Where OpenSSH's master sockets go: the state dir, or, when its path is too long for a socket,
    a folder of this user's own in /tmp (made 0700; refused if another user owns it or can write it)."""
    if len(str(settings.state_dir)) <= _SOCKET_PATH_MAX:
        return settings.state_dir
    folder = Path(f"/tmp/twotier-ssh-{os.geteuid()}")
    files.ensure_folder(folder, 0o700, "SSH control socket folder")
    return folder


def _quoted(path: Path) -> str:
    """A path as one ssh_config argument; a path that can't be one is refused, never spliced in."""
    text = str(path)
    if any(c in text for c in '"\n\r'):
        raise EnvError(f"path {text!r} can't be written into an ssh_config (quote or newline in it)")
    return f'"{text}"'
