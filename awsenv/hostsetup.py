"""Software onto the hosts over SSH, as the article does it by hand.

The web server installs Apache through its own Elastic IP; the DB server, reached through the web
server, installs MariaDB through the NAT gateway, listens beyond loopback, and gets an application
user that may connect from the web server's address only.
"""
from __future__ import annotations

import secrets
import shlex

from .errors import EnvError
from .os_table import os_family
from .settings import Settings
from .ssh import Connections, run

DB_USER = "app"
DB_NAME = "app"


def _step(client, what: str, command: str, progress, timeout: float = 900):
    progress(f"  {what}")
    result = run(client, command, timeout=timeout)
    if result.rc != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EnvError(f"{what} failed (exit {result.rc}): {tail[0]}")
    return result


def _refresh_index(settings: Settings) -> str:
    return "sudo apt-get -qq update" if os_family(settings.os_family).name == "debian" else "true"


def setup_web(conn: Connections, settings: Settings, progress=print) -> None:
    fam = os_family(settings.os_family)
    web = conn.web()
    progress(f"web server: installing {fam.web_package}")
    _step(web, "refresh package index", _refresh_index(settings), progress)
    _step(web, f"install {fam.web_package}", f"{fam.install} {fam.web_package}", progress)
    _step(web, f"enable and start {fam.web_service}", f"sudo systemctl enable --now {fam.web_service}", progress)
    page = f"<html><body><h1>twotier {settings.env}</h1><p>served by Apache</p></body></html>"
    _step(web, "write the index page",
          f"echo {shlex.quote(page)} | sudo tee {fam.web_docroot}/index.html >/dev/null", progress)


def db_password(settings: Settings) -> str:
    path = settings.state_dir / "db_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18))
    return path.read_text().strip()


def setup_db(conn: Connections, settings: Settings, web_private_ip: str, progress=print) -> None:
    fam = os_family(settings.os_family)
    db = conn.db()
    progress(f"db server (through the web server): installing {fam.db_package} through the NAT gateway")
    _step(db, "refresh package index", _refresh_index(settings), progress)
    _step(db, f"install {fam.db_package}", f"{fam.install} {fam.db_package}", progress)
    conf = "[mysqld]\nbind-address = 0.0.0.0\n"
    _step(db, "listen beyond loopback",
          f"printf %s {shlex.quote(conf)} | sudo tee {fam.db_config_file} >/dev/null", progress)
    _step(db, f"enable and restart {fam.db_service}",
          f"sudo systemctl enable {fam.db_service} && sudo systemctl restart {fam.db_service}", progress)
    pw = db_password(settings)
    sql = (f"CREATE DATABASE IF NOT EXISTS {DB_NAME}; "
           f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{web_private_ip}' IDENTIFIED BY '{pw}'; "
           f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'{web_private_ip}'; FLUSH PRIVILEGES;")
    progress("  create the application user (web server's address only)")
    result = run(db, f"sudo {fam.db_client} -e {shlex.quote(sql)}")
    if result.rc != 0:
        raise EnvError(f"create the application user failed (exit {result.rc})")
