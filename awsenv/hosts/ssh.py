"""Host access: one SSH connection per host for the whole run, the DB's through the web server.

Host keys are pinned on first contact into the environment's known_hosts; a changed key fails
the run. The same facts are written as an ssh_config that OpenSSH accepts (`ssh -F FILE db`).
The pins and the environment's own key are read and written as every file of a state folder is
(common/files.py): in a folder of ours, never through a link.
"""
from __future__ import annotations

import functools
import io
import os
import threading
from pathlib import Path

import paramiko
from testinfra.backend.paramiko import ParamikoBackend
from testinfra.host import Host

from common import files

from ..errors import EnvError, one_line
from ..settings import Settings
from ..targets import Target
from ..waits import wait_until
from .os_table import OsFamily, classify_os_release

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
        raise EnvError(f"SSH key file {path} does not exist (provision first, or pass --ssh-key)") from None
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


class Connections:
    """Lazily opened, shared SSH clients for the web and db roles."""

    def __init__(self, target: Target, settings: Settings, web_addr: str, db_addr: str,
                 key: paramiko.PKey | None = None):
        self.target = target
        self.settings = settings
        self.web_addr = web_addr
        self.db_addr = db_addr
        self.key = key
        self.known_hosts = pin_file(settings)
        self.opened = 0           # connections this process opened (benchmarks count them)
        self.commands: list[tuple[str, str]] = []   # (role, command) run by checks, for the floor benchmark
        self._clients: dict[str, paramiko.SSHClient] = {}
        self._failed: dict[str, str] = {}
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
        """Drop every connection (after a stop/start the old ones are dead)."""
        with self._lock:
            self._failed.clear()
            for role in ("db", "web"):
                client = self._clients.pop(role, None)
                if client:
                    client.close()

    close = forget

    def execute(self, role: str, command: str, timeout: float = 600) -> Result:
        """Run a command on a role's host over the shared connection."""
        self.commands.append((role, command))
        return execute(getattr(self, role)(), command, timeout=timeout)

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
        return Host(SharedClientBackend(role, getattr(self, role), self.commands))

    def wait_ready(self, role: str, timeout: float = 300, progress=print) -> None:
        """SSH ready: the host is up and accepts our key."""
        def ready():
            with self._lock:
                self._clients.pop(role, None)
                self._failed.pop(role, None)
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
