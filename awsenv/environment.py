"""The environment under check: the only thing checks and drifts touch.

It holds the target (the API and the vantage point), the settings, the snapshot (read once,
again only after something changed the environment) and the shared SSH connections, and it is
the one place that stops and starts a server.
"""
from __future__ import annotations

from dataclasses import dataclass

from .discovery import snapshot
from .discovery.snapshot import Snapshot
from .hosts.ssh import Connections, load_key
from .settings import Settings
from .targets import Target
from .waits import wait_with_waiter


@dataclass(frozen=True)
class Selectors:
    """How to find an environment someone else built: its VPC and one selector per role."""
    vpc_id: str
    web: str
    db: str


class Environment:
    def __init__(self, target: Target, selectors: Selectors | None = None):
        self.target = target
        self.settings: Settings = target.settings
        self.selectors = selectors
        self._snapshot: Snapshot | None = None
        self._conns: Connections | None = None
        self.ssh_connections_opened = 0
        self.host_commands: list[tuple[str, str]] = []

    @property
    def ec2(self):
        return self.target.ec2

    @property
    def built_by_us(self) -> bool:
        """Found by our tags (provision.py built it), not by --vpc-id and selectors."""
        return self.selectors is None

    @property
    def expected(self) -> Settings | None:
        """The settings the environment must match, or None when someone else built it."""
        return self.settings if self.built_by_us else None

    # -- reading ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            if self.selectors:
                web, db = snapshot.find_selected_instances(self.ec2, self.selectors.vpc_id, self.selectors.web,
                                                           self.selectors.db)
            else:
                web, db = snapshot.find_env_instances(self.ec2, self.settings.env)
            env = self.settings.env if self.built_by_us else None
            self._snapshot = snapshot.read_snapshot(self.ec2, self.settings.region, web, db, env=env)
        return self._snapshot

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest read, without reading again (the report uses it after teardown)."""
        return self._snapshot

    def changed(self) -> None:
        """Something changed the environment: read it again, reconnect, let the data plane follow."""
        self._snapshot = None
        if self._conns:
            self._conns.forget()
        self.target.settle()

    # -- hosts --------------------------------------------------------------------------------
    def connections(self, web_addr: str | None = None, db_addr: str | None = None) -> Connections:
        if self._conns is None:
            snap = self.snapshot()
            self._conns = Connections(self.target, self.settings, web_addr or snap.web.public_ip or "",
                                      db_addr or snap.db.private_ip or "", load_key(self.settings.key_file))
        return self._conns

    def drop_connections(self) -> None:
        if self._conns:
            self.ssh_connections_opened += self._conns.opened
            self.host_commands += self._conns.commands
            self._conns.close()
            self._conns = None

    # -- power ----------------------------------------------------------------------------------
    def stop(self, role: str, progress=print) -> None:
        """Stop a server through the API and wait until EC2 says it is stopped."""
        instance_id = getattr(self.snapshot(), role).id
        self.ec2.stop_instances(InstanceIds=[instance_id])
        wait_with_waiter(self.ec2, "instance_stopped", f"the {role} server {instance_id} stopped", 300, progress,
                         delay=2, InstanceIds=[instance_id])
        self.changed()

    def start(self, role: str, progress=print) -> None:
        """Start a server through the API and wait until EC2 says it is running."""
        instance_id = getattr(self.snapshot(), role).id
        self.ec2.start_instances(InstanceIds=[instance_id])
        wait_with_waiter(self.ec2, "instance_running", f"the {role} server {instance_id} running", 300, progress,
                         delay=2, InstanceIds=[instance_id])
        self.changed()
