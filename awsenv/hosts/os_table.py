"""The one place where distributions differ: package, service and tool names by OS family.

Checks and host setup name roles ("the web server package"); this table answers per family, as
testinfra's module lookups do. Which family a host is comes from its own /etc/os-release, read
over SSH, never from an image name.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from ..errors import EnvError


@dataclass(frozen=True)
class OsFamily:
    name: str
    refresh: str            # command that refreshes the package index (or "true")
    install: str            # command prefix that installs packages non-interactively
    remove: str             # command prefix that removes packages
    web_package: str
    web_service: str
    db_package: str
    db_service: str
    db_client: str          # command-line client (setup reads a server setting with it)
    db_client_package: str  # its package: installed explicitly (AL2023's server package doesn't pull it in)
    db_config_file: str     # where bind-address goes so MariaDB listens beyond loopback; named to sort
                            # after every file the distribution's packages put there (the last value read wins)
    web_docroot: str
    ssh_service: str
    install_logs: tuple[str, ...]   # where the package manager records installs (4.7's evidence)


_APT = "sudo DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 -qq"
_RHEL_LIKE: dict[str, Any] = dict(refresh="true", web_package="httpd", web_service="httpd", db_service="mariadb",
                  db_config_file="/etc/my.cnf.d/zz-twotier.cnf", web_docroot="/var/www/html", ssh_service="sshd",
                  install_logs=("/var/log/dnf.rpm.log",))

OS_FAMILIES = {
    "debian": OsFamily(
        name="debian", refresh=f"{_APT} update", install=f"{_APT} install -y", remove=f"{_APT} remove -y",
        web_package="apache2", web_service="apache2", db_package="mariadb-server", db_service="mariadb",
        db_client="mariadb", db_client_package="mariadb-client",
        db_config_file="/etc/mysql/mariadb.conf.d/zz-twotier.cnf",
        web_docroot="/var/www/html", ssh_service="ssh",
        install_logs=("/var/log/apt/history.log", "/var/log/dpkg.log")),
    "amazon-linux-2023": OsFamily(
        name="amazon-linux-2023", install="sudo dnf -q -y install", remove="sudo dnf -q -y remove",
        db_package="mariadb105-server", db_client="mariadb", db_client_package="mariadb105", **_RHEL_LIKE),
    "amazon-linux-2": OsFamily(
        name="amazon-linux-2", install="sudo yum -q -y install", remove="sudo yum -q -y remove",
        db_package="mariadb-server", db_client="mysql", db_client_package="mariadb", **_RHEL_LIKE),
    "rhel": OsFamily(
        name="rhel", install="sudo dnf -q -y install", remove="sudo dnf -q -y remove",
        db_package="mariadb-server", db_client="mysql", db_client_package="mariadb", **_RHEL_LIKE),
}


def os_family(name: str) -> OsFamily:
    try:
        return OS_FAMILIES[name]
    except KeyError:
        raise EnvError(f"unknown OS family {name!r}; known: {', '.join(OS_FAMILIES)}") from None


def parse_os_release(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            try:
                fields[key.strip()] = " ".join(shlex.split(value))
            except ValueError:
                fields[key.strip()] = value.strip().strip('"')
    return fields


def classify_os_release(text: str) -> OsFamily:
    """Amazon Linux 2 and 2023, RHEL-likes, Debian and Ubuntu, from /etc/os-release's ID and ID_LIKE."""
    fields = parse_os_release(text)
    ids = {fields.get("ID", "")} | set(fields.get("ID_LIKE", "").split())
    if "amzn" in ids:
        return OS_FAMILIES["amazon-linux-2" if fields.get("VERSION_ID", "").startswith("2") and
                           not fields.get("VERSION_ID", "").startswith("202") else "amazon-linux-2023"]
    if ids & {"debian", "ubuntu"}:
        return OS_FAMILIES["debian"]
    if ids & {"rhel", "fedora", "centos", "rocky", "almalinux"}:
        return OS_FAMILIES["rhel"]
    raise EnvError(f"unsupported OS on the host: {fields.get('PRETTY_NAME') or fields.get('ID') or 'unknown'} "
                   "(known: Amazon Linux 2 and 2023, RHEL-likes, Debian, Ubuntu)")
