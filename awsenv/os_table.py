"""The one place where distributions differ: package, service and tool names by OS family.

Checks and host setup name roles ("the web server package"); this table answers per family,
as testinfra's module lookups do.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class OsFamily:
    name: str
    install: str            # command prefix that installs packages non-interactively
    web_package: str
    web_service: str
    db_package: str
    db_service: str
    db_client: str          # command-line client, used to prove a connection from the web server
    db_config_file: str     # where bind-address goes so MariaDB listens beyond loopback
    web_docroot: str


OS_FAMILIES = {
    "debian": OsFamily(
        name="debian",
        install="sudo DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 -qq install -y",
        web_package="apache2", web_service="apache2",
        db_package="mariadb-server", db_service="mariadb",
        db_client="mariadb",
        db_config_file="/etc/mysql/mariadb.conf.d/90-twotier.cnf",
        web_docroot="/var/www/html",
    ),
    "amazon-linux-2023": OsFamily(
        name="amazon-linux-2023",
        install="sudo dnf -q -y install",
        web_package="httpd", web_service="httpd",
        db_package="mariadb105-server", db_service="mariadb",
        db_client="mariadb",
        db_config_file="/etc/my.cnf.d/90-twotier.cnf",
        web_docroot="/var/www/html",
    ),
    "amazon-linux-2": OsFamily(
        name="amazon-linux-2",
        install="sudo yum -q -y install",
        web_package="httpd", web_service="httpd",
        db_package="mariadb-server", db_service="mariadb",
        db_client="mysql",
        db_config_file="/etc/my.cnf.d/90-twotier.cnf",
        web_docroot="/var/www/html",
    ),
}


def os_family(name: str) -> OsFamily:
    try:
        return OS_FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown OS family {name!r}; known: {', '.join(OS_FAMILIES)}") from None
