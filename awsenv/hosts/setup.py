"""Software onto the hosts over SSH, as the article does it by hand.

The web server installs Apache through its own Elastic IP; the DB server, reached through the web
server, installs MariaDB through the NAT gateway, listens beyond loopback, and gets an application
user that may connect from the web server's address only. Both get the sshd settings that the
hardening checks look for, since a stock cloud image (Amazon Linux 2023) doesn't ship them.
"""
from __future__ import annotations

import os
import secrets
import shlex

from ..errors import EnvError
from ..settings import Settings
from .ssh import Connections, execute

DB_USER = "app"
DB_NAME = "app"
SSHD_DROP_IN = "/etc/ssh/sshd_config.d/10-twotier.conf"
SSHD_SETTINGS = "PermitRootLogin no\nPasswordAuthentication no\n"
# cloud-init may still hold the package manager's lock at first boot (EC2); where there is no
# cloud-init (the lab) this is a no-op.
WAIT_FOR_CLOUD_INIT = "if command -v cloud-init >/dev/null; then sudo cloud-init status --wait >/dev/null || true; fi"


def _step(client, what: str, command: str, progress, timeout: float = 900):
    progress(f"  {what}")
    result = execute(client, command, timeout=timeout)
    if result.rc != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise EnvError(f"{what} failed (exit {result.rc}): {tail[0]}")
    return result


def _common(client, fam, progress) -> None:
    _step(client, "wait for cloud-init to finish", WAIT_FOR_CLOUD_INIT, progress)
    _step(client, "sshd: no root login, no passwords",
          f"printf %s {shlex.quote(SSHD_SETTINGS)} | sudo tee {SSHD_DROP_IN} >/dev/null && "
          f"sudo systemctl reload {fam.ssh_service}", progress)
    _step(client, "refresh package index", fam.refresh, progress)


def setup_web(conn: Connections, settings: Settings, progress=print) -> None:
    fam = conn.os_family("web")
    web = conn.web()
    progress(f"web server ({fam.name}): installing {fam.web_package}")
    _common(web, fam, progress)
    _step(web, f"install {fam.web_package}", f"{fam.install} {fam.web_package}", progress)
    _step(web, f"enable and start {fam.web_service}", f"sudo systemctl enable --now {fam.web_service}", progress)
    page = f"<html><body><h1>twotier {settings.env}</h1><p>served by Apache</p></body></html>"
    _step(web, "write the index page",
          f"echo {shlex.quote(page)} | sudo tee {fam.web_docroot}/index.html >/dev/null", progress)


def db_password(settings: Settings) -> str:
    path = settings.state_dir / "db_password"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL|O_NOFOLLOW: written once by us, 0600 from the first byte; never through a symlink.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def setup_db(conn: Connections, settings: Settings, web_private_ip: str, progress=print) -> None:
    fam = conn.os_family("db")
    db = conn.db()
    progress(f"db server ({fam.name}, through the web server): installing {fam.db_package} through the NAT gateway")
    _common(db, fam, progress)
    # skip-name-resolve: clients are granted by address, and a reverse lookup per connection would
    # stall every greeting once the DB has no way out (the article's finished state).
    # Written before the install, so the server the package starts already reads it (Debian starts
    # it at install; no second start, and no second round of its start-up table checks).
    conf = "[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\n"
    _step(db, "listen beyond loopback",
          f"sudo mkdir -p {shlex.quote(os.path.dirname(fam.db_config_file))} && "
          f"printf %s {shlex.quote(conf)} | sudo tee {fam.db_config_file} >/dev/null", progress)
    _step(db, f"install {fam.db_package}", f"{fam.install} {fam.db_package}", progress)
    # A server that was already running (an `up` again) started without the file: restart it then.
    _step(db, f"enable and start {fam.db_service}",
          f"sudo systemctl enable --now {fam.db_service} && "
          f"if [ \"$(sudo {fam.db_client} -N -e 'select @@skip_name_resolve')\" != 1 ]; then "
          f"sudo systemctl restart {fam.db_service}; fi", progress)
    pw = db_password(settings)
    sql = (f"CREATE DATABASE IF NOT EXISTS {DB_NAME}; "
           f"CREATE USER IF NOT EXISTS '{DB_USER}'@'{web_private_ip}' IDENTIFIED BY '{pw}'; "
           f"GRANT ALL ON {DB_NAME}.* TO '{DB_USER}'@'{web_private_ip}'; FLUSH PRIVILEGES;")
    progress("  create the application user (web server's address only)")
    result = execute(db, f"sudo {fam.db_client} -e {shlex.quote(sql)}")
    if result.rc != 0:
        raise EnvError(f"create the application user failed (exit {result.rc})")
