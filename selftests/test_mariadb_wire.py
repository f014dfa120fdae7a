"""MariaDB's first packet, as the web server reads it with bash and od (tests/ section 4 and 5.1)."""
import struct

import pytest

from awsenv.hosts import mariadb_wire


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
