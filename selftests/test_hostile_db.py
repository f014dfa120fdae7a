"""Secrets never become code (DESIGN.md, "Trust"): nothing in a state folder reaches the DB server.

Reproduced once: the DB setup read `db_password` from the state folder (through a link, too) and
pasted it into SQL run as MariaDB's root, so a file holding `pw'; CREATE DATABASE x; -- ` ran that
SQL. The article creates no database account, and neither does the project any more: MariaDB
answers the web server with error 1130 ("no account for this host"), which 4.7 reads as "the web
server can open a connection" (awsenv/hosts/mariadb_wire.py; the lab's end-to-end tests prove it on
real hosts). Here the host setup runs against a recording stand-in for the SSH connection, with a
hostile `db_password` (and a linked one) in the state folder: no command names either.
"""
from __future__ import annotations

import pytest

from awsenv.hosts import setup
from awsenv.hosts.os_table import OS_FAMILIES
from awsenv.hosts.ssh import Result
from awsenv.settings import Settings

HOSTILE = "pw'; CREATE DATABASE x; -- "


class _Recording:
    """What setup_db asks of a Connections: the DB's OS family and its client, whose commands are kept."""

    def __init__(self, family: str):
        self.family = OS_FAMILIES[family]
        self.commands: list[str] = []

    def os_family(self, role: str):
        return self.family

    def db(self):
        return self


@pytest.mark.parametrize("planted", ["file", "link"])
@pytest.mark.parametrize("family", sorted(OS_FAMILIES))
def test_no_file_of_the_state_folder_reaches_the_db(tmp_path, monkeypatch, family, planted):
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    if planted == "file":
        (state / "db_password").write_text(HOSTILE)
    else:
        (tmp_path / "elsewhere").write_text(HOSTILE)
        (state / "db_password").symlink_to(tmp_path / "elsewhere")
    conn = _Recording(family)

    def execute(client, command, timeout=600):
        client.commands.append(command)
        return Result(0, "1\n", "", command)     # "1": skip_name_resolve already on

    monkeypatch.setattr(setup, "execute", execute)
    settings = Settings.build({"target": "aws", "env": "dbtest", "state_dir": str(state)}, region="us-east-1",
                              admin_cidr="198.51.100.7/32", state_dir=state)
    setup.setup_db(conn, settings, progress=lambda _: None)

    sent = "\n".join(conn.commands)
    assert conn.commands, "setup_db ran nothing"
    for forbidden in (HOSTILE, "CREATE DATABASE", "CREATE USER", "IDENTIFIED BY", "GRANT"):
        assert forbidden not in sent, f"{forbidden!r} reached the DB server:\n{sent}"
    assert (state / "db_password").read_text() == HOSTILE, "the file was touched"
    assert [p.name for p in state.iterdir()] == ["db_password"], "setup wrote a file"
