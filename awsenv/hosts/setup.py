"""Software onto the hosts over SSH, as the article does it by hand.

The web server installs Apache through its own Elastic IP; the DB server, reached through the web
server, installs MariaDB through the NAT gateway and listens beyond loopback. Like the article, it
creates no database account: MariaDB answers the web server with its greeting or with error 1130
(no account for this host), which 4.7 reads as "the web server can open a connection". So there is
no password to keep and no SQL built from anything. Both hosts get the sshd settings that the
hardening checks look for, since a stock cloud image (Amazon Linux 2023) doesn't ship them.
"""
from __future__ import annotations

import os
import shlex

from ..errors import EnvError
from ..settings import Settings
from .ssh import Connections, execute

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


def setup_db(conn: Connections, settings: Settings, progress=print) -> None:
    fam = conn.os_family("db")
    db = conn.db()
    progress(f"db server ({fam.name}, through the web server): installing {fam.db_package} through the NAT gateway")
    _common(db, fam, progress)
    # skip-name-resolve: MariaDB looks every client's name up before its first packet, which stalls
    # once the DB has no way out (the article's finished state).
    # Written before the install, so the server the package starts already reads it (Debian starts
    # it at install; no second start, and no second round of its start-up table checks).
    conf = "[mysqld]\nbind-address = 0.0.0.0\nskip-name-resolve\n"
    _step(db, "listen beyond loopback",
          f"sudo mkdir -p {shlex.quote(os.path.dirname(fam.db_config_file))} && "
          f"printf %s {shlex.quote(conf)} | sudo tee {fam.db_config_file} >/dev/null", progress)
    _step(db, f"install {fam.db_package} and {fam.db_client_package}",
          f"{fam.install} {fam.db_package} {fam.db_client_package}", progress)
    # A server that was already running (an `up` again) started without the file: restart it then.
    _step(db, f"enable and start {fam.db_service}",
          f"sudo systemctl enable --now {fam.db_service} && "
          f"if [ \"$(sudo {fam.db_client} -N -e 'select @@skip_name_resolve')\" != 1 ]; then "
          f"sudo systemctl restart {fam.db_service}; fi", progress)
