"""What MariaDB says first to a client that connects to 3306, read without a MariaDB client.

The server speaks first: a handshake (protocol 10 and the server's version), or, when no account
may connect from the client's address at all, an error packet (1130, "Host '...' is not allowed to
connect to this MariaDB server") and a close. The article installs MariaDB and creates no account,
so from the web server the second is what an article-built DB answers: MariaDB answered a
connection the web server opened, which is what 4.7 asks of the network. A blocked host (1129) or
any other error is MariaDB refusing the web server.

When nothing answers, how it didn't is said too, since each points somewhere else: "refused" (the
DB's host answered the connection with a reset: nothing listens on that address and port, as when
MariaDB listens on 127.0.0.1 only, or is stopped), "silent" (no answer at all: the packets are
dropped on the way, by a security group, a network ACL or a firewall), "unreachable" (the network
said there is no way there), or a connection opened that then said nothing.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .ssh import Connections, Result

# Bash's /dev/tcp; od shows the bytes (the packet is binary). 40 bytes hold the packet header, the
# protocol byte and the version string, or an error's code and the start of its message; a greeting
# server then waits for the client, so read no more. MariaDB looks the client's name up before it
# answers (unless skip-name-resolve): where no resolver answers (the lab after the NAT gateway is
# gone) that takes 10 s, so the answer gets 15. A connect that fails exits 7 with bash's reason on
# stderr; one that succeeds says "connected" there first; `timeout` exits 124 when time runs out.
WAIT = 15
COMMAND = (f"timeout {WAIT} bash -c 'exec 3<>/dev/tcp/{{ip}}/3306 || exit 7; echo connected >&2; "
           "head -c 40 <&3 | od -An -v -tx1'")
CONNECT_FAILED, TIMED_OUT = 7, 124
HOST_NOT_PRIVILEGED = 1130


@dataclass(frozen=True)
class FirstPacket:
    # "greeting", "no account for this host", "another server's greeting", "error", "nothing" (it
    # connected, and what came, if anything, was not MariaDB's), "refused", "silent", "unreachable"
    kind: str
    detail: str         # the version string, or the error's code and message, or what came, or why nothing did

    @property
    def answered(self) -> bool:
        """MariaDB answered a connection from this client (it may still need an account to log in)."""
        return self.kind in ("greeting", "no account for this host")

    def describe(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def parse(od_output: str) -> FirstPacket:
    try:
        data = bytes(int(h, 16) for h in od_output.split())
    except ValueError:
        return FirstPacket("nothing", od_output.strip()[:80])
    if len(data) < 5:
        return FirstPacket("nothing", data.hex(" ") if data else "")
    payload = data[4:]
    if payload[0] == 0x0A:
        version = payload[1:].split(b"\0", 1)[0].decode("ascii", "replace")
        return FirstPacket("greeting" if "mariadb" in version.lower() else "another server's greeting",
                           f"server version {version}")
    if payload[0] == 0xFF and len(payload) >= 3:
        code = int.from_bytes(payload[1:3], "little")
        message = payload[3:].decode("ascii", "replace")
        message = "".join(c if c.isprintable() else "." for c in message)
        if code == HOST_NOT_PRIVILEGED:
            return FirstPacket("no account for this host", f"error {code}: {message}...")
        return FirstPacket("error", f"error {code}: {message}...")
    text = "".join(chr(b) if 32 <= b < 127 else "." for b in data)
    return FirstPacket("nothing", f"not MariaDB's protocol: {text!r}")


@dataclass(frozen=True)
class Greeting:
    """MariaDB's first packet as one host saw it, with the command that read it."""
    first: FirstPacket
    result: Result      # the command that read it, for the evidence

    @property
    def answered(self) -> bool:
        return self.first.answered

    def describe(self) -> str:
        return self.first.describe()

    def evidence(self) -> list[str]:
        return [self.first.describe(), self.result.evidence()]


def outcome(result: Result, ip: str) -> FirstPacket:
    """What the command saw: MariaDB's first packet, or how no packet came."""
    if result.stdout.strip():
        return parse(result.stdout)
    said = result.stderr.strip()
    connected = "connected" in said.splitlines()
    if result.rc == CONNECT_FAILED and "refused" in said.lower():
        return FirstPacket("refused", f"{ip}:3306 answered the connection with a reset: nothing listens there "
                                      f"(MariaDB stopped, or listening on 127.0.0.1 only: its bind-address)")
    if result.rc == CONNECT_FAILED:
        reason = said.splitlines()[-1].split(": ")[-1] if said else f"exit {result.rc}"
        return FirstPacket("unreachable", f"the connection to {ip}:3306 failed: {reason}")
    if result.rc == TIMED_OUT and not connected:
        return FirstPacket("silent", f"no answer from {ip}:3306 in {WAIT} s: the connection is dropped on the way "
                                     f"(a security group, a network ACL or a firewall)")
    if connected:
        how = f"nothing came in {WAIT} s" if result.rc == TIMED_OUT else "it closed without a word"
        return FirstPacket("nothing", f"the connection to {ip}:3306 opened, then {how}")
    return FirstPacket("nothing", said.splitlines()[-1] if said else f"exit {result.rc}")


def ask(conns: Connections, role: str, ip: str) -> Greeting:
    """Connect from `role`'s host to ip:3306 and read MariaDB's first packet."""
    ipaddress.ip_address(ip)        # never a word that reaches a shell unchecked
    result = conns.execute(role, COMMAND.format(ip=ip))
    return Greeting(outcome(result, ip), result)
