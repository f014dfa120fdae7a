"""The environment under check: the only thing checks and drifts touch.

It holds the target (the API and the vantage point), the settings, the snapshot (read once,
again only after something changed the environment) and the shared SSH connections, and it is
the one place that stops and starts a server.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .discovery import snapshot
from .discovery.snapshot import Snapshot
from .errors import EnvError
from .hosts.ssh import Connections, KeyMissing, load_key
from .settings import STATED, Settings
from .targets import Target
from .waits import wait_with_waiter


@dataclass(frozen=True)
class Selectors:
    """How to find an environment someone else built: its VPC and one selector per role."""
    vpc_id: str
    web: str
    db: str


@dataclass(frozen=True)
class Expected:
    """The settings a check compares the environment with: each is None where it is not compared.

    A run that built the environment compares every setting it built with; a check-only run
    compares only what the user stated on the command line (a default is not a statement about
    someone's environment: comparing it would raise false alarms)."""
    vpc_cidr: str | None = None
    public_cidr: str | None = None
    private_cidr: str | None = None
    instance_type: str | None = None
    admin_cidr: str | None = None
    key_name: str | None = None
    compared: tuple[str, ...] = field(default=())        # option names, as the user writes them

    @classmethod
    def of(cls, settings: Settings, names) -> Expected:
        values = {n: getattr(settings, n) for n in names if getattr(settings, n, None) is not None}
        # As the user writes them; the key pair's name is ours (twotier-ENV), not an option.
        said = tuple("key pair name" if n == "key_name" else f"--{n.replace('_', '-')}" for n in values)
        return cls(**values, compared=said)


class Environment:
    def __init__(self, target: Target, selectors: Selectors | None = None, built_here: bool = False):
        self.target = target
        self.settings: Settings = target.settings
        self.selectors = selectors
        self.built_here = built_here      # this very run provisions it (pytest --provision)
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
    def expected(self) -> Expected:
        """What to compare: everything this run built it with; in a check-only run, what the user stated
        (on the command line), plus our key pair's name where provision.py built it."""
        comparable = [n for n in STATED if n != "ssh_user"]
        if self.built_here:
            return Expected.of(self.settings, comparable + ["key_name"])
        stated = [n for n in comparable if n in self.settings.given]
        return Expected.of(self.settings, stated + (["key_name"] if self.built_by_us else []))

    @property
    def display_name(self) -> str:
        """What the terminal and the report call it: our env name; for someone else's, its VPC ID with the
        VPC's Name tag beside it, never the tag alone (anyone with ec2:CreateTags writes it; the snapshot
        holds it made safe to show, common/display.py)."""
        if self.built_by_us:
            return self.settings.env
        snap = self._snapshot
        if snap is None:
            return f"VPC {self.selectors.vpc_id}" if self.selectors else "?"
        return f"VPC {snap.vpc.id}" + (f" (Name: {snap.vpc.name})" if snap.vpc.name else "")

    def hourly_cost(self, kind: str) -> str:
        """" (about $0.045/hour plus data in us-east-1)" for a billed kind, else "": for messages about
        leftovers, in this environment's region (or saying the figure is another region's)."""
        from .provisioning import kinds

        return kinds.cost_note(kind, self.settings.region)

    # -- reading ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if self._snapshot is None:
            if self.selectors:
                web, db = snapshot.find_selected_instances(self.ec2, self.selectors.vpc_id, self.selectors.web,
                                                           self.selectors.db)
            else:
                web, db = snapshot.find_env_instances(self.ec2, self.settings.env)
            env = self.settings.env if self.built_by_us else None
            expected = self.expected      # a CIDR the user stated (or we built with) names its subnet
            self._snapshot = snapshot.read_snapshot(self.ec2, self.settings.region, web, db, env=env,
                                                    stated_cidrs=(expected.public_cidr, expected.private_cidr))
        return self._snapshot

    def not_running(self, roles: tuple[str, ...]) -> str:
        """Why these roles' hosts can't be looked at, from the API alone ("" when all are running):
        a stopped server answers nothing, so a check of it can neither hold nor be violated."""
        try:
            snap = self.snapshot()
        except Exception:  # noqa: BLE001 - no answer from the API here: the check itself will say so
            return ""
        down = [f"the {role} server is {getattr(snap, role).state}" for role in roles
                if getattr(snap, role).state != "running"]
        return "; ".join(down) + " (its state in the API)" if down else ""

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest read, without reading again (the report uses it after teardown)."""
        return self._snapshot

    def changed(self) -> None:
        """Something changed the environment: read it again, reconnect, let the data plane follow."""
        self._snapshot = None
        if self._conns:
            self._conns.forget()      # what was reachable before may not be now, and the reverse
        self.target.settle()

    # -- hosts --------------------------------------------------------------------------------
    def connections(self, web_addr: str | None = None, db_addr: str | None = None) -> Connections:
        """The hosts over the shared SSH connections, for provisioning and checks alike (EnvError when
        there is no key to log in with)."""
        if self._conns is None:
            snap = self.snapshot()
            try:
                key = load_key(self.settings.key_file, own=self.settings.key_is_ours)
            except KeyMissing:
                if self.built_by_us:
                    raise
                # Not built by this tool: it keeps no key for it, and "provision first" doesn't apply.
                raise EnvError(f"no key for them (this tool keeps keys only for environments it built): give "
                               f"--ssh-key=PATH, the private key of {_key_pairs(snap)}") from None
            self._conns = Connections(self.target, self.settings, web_addr or snap.web.public_ip or "",
                                      db_addr or snap.db.private_ip or "", key, not_running=self.not_running)
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
        self._power(role, self.ec2.stop_instances, "instance_stopped", "stopped", progress)

    def start(self, role: str, progress=print) -> None:
        """Start a server through the API and wait until EC2 says it is running."""
        self._power(role, self.ec2.start_instances, "instance_running", "running", progress)

    def _power(self, role: str, call, waiter: str, state: str, progress) -> None:
        instance_id = getattr(self.snapshot(), role).id
        call(InstanceIds=[instance_id])
        wait_with_waiter(self.ec2, waiter, f"the {role} server {instance_id} {state}", 300, progress,
                         delay=self.target.poll_delay, first_delay=self.target.retry_first, InstanceIds=[instance_id])
        self.changed()


def _key_pairs(snap: Snapshot) -> str:
    """The key pair(s) the servers were launched with, as the no-key message names them."""
    names = {i.role: i.key_name for i in (snap.web, snap.db)}
    if len(set(names.values())) > 1:
        each = ", ".join(f"'{n}' on {role}" if n else f"none on {role}" for role, n in names.items())
        return f"the key pairs the instances were launched with ({each})"
    if names["web"]:
        return f"the key pair '{names['web']}' the instances were launched with"
    return "the key pair the instances were launched with (EC2 names none: were they launched without one?)"
