"""MariaDB's first packet, as the web server reads it with bash and od (tests/ section 4 and 5.1), and how
no packet came: refused, silent or unreachable (the command itself is run here by bash, on loopback)."""
import socket
import struct
import subprocess
import threading

import pytest

from awsenv.hosts import mariadb_wire
from awsenv.hosts.ssh import Result


def od(packet: bytes, limit: int = 40) -> str:
    """What `head -c 40 | od -An -v -tx1` prints for the packet."""
    data = packet[:limit]
    return "\n".join(" " + " ".join(f"{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16))


def packet(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


GREETING = packet(b"\x0a5.5.5-10.11.6-MariaDB-0+deb12u1\x00" + bytes(range(1, 60)))
NO_ACCOUNT = packet(b"\xff" + (1130).to_bytes(2, "little") +
                    b"Host '10.0.1.4' is not allowed to connect to this MariaDB server")
BLOCKED = packet(b"\xff" + (1129).to_bytes(2, "little") + b"Host '10.0.1.4' is blocked because of many connection errors")


@pytest.mark.parametrize("raw, kind, answered, shown", [
    (GREETING, "greeting", True, "server version 5.5.5-10.11.6-MariaDB-0+deb12u1"),
    (NO_ACCOUNT, "no account for this host", True, "error 1130: Host '10.0.1.4' is not all"),
    (BLOCKED, "error", False, "error 1129: Host '10.0.1.4' is blocked"),
    (packet(b"\x0a8.0.36\x00" + bytes(30)), "another server's greeting", False, "server version 8.0.36"),
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "nothing", False, "not MariaDB's protocol"),
    (b"", "nothing", False, ""),
])
def test_first_packet_kinds(raw, kind, answered, shown):
    first = mariadb_wire.parse(od(raw))
    assert (first.kind, first.answered) == (kind, answered), first
    assert shown in first.describe()


def test_output_that_is_not_od_is_nothing():
    assert not mariadb_wire.parse("timeout: failed to run command 'bash'").answered


def run_command(ip: str) -> Result:
    """The check's own command, run here by bash, against an address in loopback."""
    command = mariadb_wire.COMMAND.format(ip=ip)
    proc = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    return Result(proc.returncode, proc.stdout, proc.stderr, command)


@pytest.fixture
def server_at():
    """server_at(ip, first_bytes): a one-connection server on ip:3306 that sends first_bytes (or
    nothing) and closes."""
    sockets = []

    def start(ip: str, first: bytes) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, 3306))
        s.listen(1)
        sockets.append(s)

        def serve():
            conn, _ = s.accept()
            conn.sendall(first)
            conn.close()
        threading.Thread(target=serve, daemon=True).start()
    yield start
    for s in sockets:
        s.close()


def test_a_refused_connection_is_said_to_be_refused():
    # Nothing listens on this loopback address: the host answers with a reset, as a DB whose MariaDB
    # listens on 127.0.0.1 only answers the web server.
    first = mariadb_wire.outcome(run_command("127.88.0.1"), "127.88.0.1")
    assert (first.kind, first.answered) == ("refused", False), first
    assert "nothing listens there" in first.describe() and "127.0.0.1 only" in first.describe()


def test_the_greeting_read_by_the_command_is_answered(server_at):
    server_at("127.88.0.2", GREETING)
    first = mariadb_wire.outcome(run_command("127.88.0.2"), "127.88.0.2")
    assert (first.kind, first.answered) == ("greeting", True), first


def test_a_connection_closed_without_a_word_is_not_an_answer(server_at):
    server_at("127.88.0.3", b"")
    first = mariadb_wire.outcome(run_command("127.88.0.3"), "127.88.0.3")
    assert first.kind == "nothing" and "closed without a word" in first.detail, first


@pytest.mark.parametrize("result, kind, words", [
    # Dropped on the way (a security group): timeout ends it before any connection.
    (Result(124, "", "", "cmd"), "silent", "no answer from 10.0.2.5:3306 in 15 s"),
    (Result(7, "", "bash: connect: No route to host\nbash: line 1: /dev/tcp/10.0.2.5/3306: No route to host",
            "cmd"), "unreachable", "No route to host"),
    (Result(124, "", "connected\n", "cmd"), "nothing", "opened, then nothing came in 15 s"),
])
def test_how_no_answer_came_is_said(result, kind, words):
    first = mariadb_wire.outcome(result, "10.0.2.5")
    assert first.kind == kind and words in first.describe() and not first.answered, first
