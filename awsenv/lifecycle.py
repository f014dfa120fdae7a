"""One pass of the environment's life as provision.py and the pytest plugin drive it:
open the target, build (or find) the environment, hand it to the checks, tear down, close.

RunRecord is what the pass cost (stages, API calls, SSH connections, host commands), kept apart
from the Environment that the checks use.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import time
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from .environment import Environment
from .errors import EnvError, one_line
from .hosts import setup as hostsetup
from .install import provision_command
from .provisioning import kinds, teardown
from .provisioning.lock import environment_lock
from .provisioning.provisioner import Provisioner


class LastStepFailed(EnvError):
    """The article's last step (NAT gateway deleted, its Elastic IP released) failed after a full
    build: the environment is kept as built. `left` says what of the step is still there, one line
    each with its hourly cost."""

    def __init__(self, cause: str, left: list[str]):
        super().__init__(f"the article's last step failed ({cause}); the environment is kept as built: "
                         f"run `provision.py up` again to complete it, or `provision.py down` to remove it")
        self.left = left


def _still_there(provisioner: Provisioner, region: str) -> list[str]:
    try:
        left = provisioner.last_step_left()
    except (EnvError, BotoCoreError, ClientError, OSError) as exc:
        return [f"could not list what is left of the last step: {one_line(exc)}"]
    return [f"{kind} {rid} still there{kinds.cost_note(kind, region)}" for kind, rid in kinds.billed_first(left)]


@dataclass
class RunRecord:
    stages: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str):
        """Time a stage (benchmarks read these from reports/run-stats.json)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.monotonic() - start, 2)

    def stats(self, env: Environment, provisioned: bool) -> dict:
        calls = dict(env.target.api_calls)
        return {"target": env.target.name, "env": env.settings.env, "provisioned": provisioned,
                "api_calls": sum(calls.values()), "api_calls_by_operation": calls,
                "ssh_connections_opened": env.ssh_connections_opened, "stages_seconds": self.stages,
                "host_commands": env.host_commands, "probes": env.target.probes_made}


class Lifecycle:
    """provision: build a fresh environment and (unless keep) remove it at the end; else find one."""

    def __init__(self, env: Environment, provision: bool = False, keep: bool = False, progress=print,
                 prove_access: bool = True):
        self.env = env
        # False: a check-only pass lets its first read prove the credentials (Target.attach).
        self.prove_access = prove_access
        self.provision = provision
        self.keep = keep
        self.record = RunRecord()
        self.torn_down = False
        self.refused = False      # the environment existed before: never this pass's to remove
        self.opened_here = False
        self.say = progress
        self._held = contextlib.ExitStack()

    def begin(self, drift: str | None = None) -> None:
        target = self.env.target
        if self.provision:
            # One build of an environment at a time (another `up` or --provision waits its turn).
            self._held.enter_context(environment_lock(self.env.settings.state_dir, self.env.settings.env,
                                                      "pytest --provision"))
        if self.provision or not target.attach(self.say, prove=self.prove_access):
            if not self.provision and target.persistent:
                raise EnvError(target.absent_reason())
            self.record.stages.update(target.prepare(progress=self.say))
            with self.record.stage("api and data plane start"):
                self.opened_here = target.open(progress=self.say)
        if self.provision:
            self.build()
            if drift:
                from .provisioning.drifts import apply_drift

                self.say(f"applying drift {drift}")
                apply_drift(drift, self.env)
        self.env.snapshot()     # find the environment now: "could not check" before any check runs

    def build(self, provisioner: Provisioner | None = None) -> None:
        env = self.env
        provisioner = provisioner or Provisioner(env.target, env.settings, progress=self.say)
        if not self.keep and provisioner.exists():
            # This pass removes what it builds at the end; an environment that was here before is
            # not its to remove.
            self.refused = True
            raise EnvError(f"env {env.settings.env!r} already exists; --provision builds a fresh one and removes it "
                           f"afterwards: choose another --env, check it without --provision, or remove it "
                           f"({provision_command(f'down{env.target.target_option()} --env {env.settings.env}')})")
        with self.record.stage("provision through the API"):
            built = provisioner.up()
            env.target.settle()
        if not env.target.host_access:
            return
        with self.record.stage("boot until SSH accepts the key"):
            conns = env.connections(web_addr=built.web_eip, db_addr=env.snapshot().db.private_ip)
            conns.wait_ready("web", env.target.boot_timeout, progress=self.say)
            conns.wait_ready("db", env.target.boot_timeout, progress=self.say)
        with self.record.stage("install Apache and MariaDB"):
            # The two installs share nothing but the web server's SSH connection (separate
            # channels), so they run side by side: the slower one sets the pace.
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                web = pool.submit(hostsetup.setup_web, conns, env.settings, lambda m: self.say(f"[web] {m}"))
                db = pool.submit(hostsetup.setup_db, conns, env.settings, lambda m: self.say(f"[db] {m}"))
                web.result()
                db.result()

    def finish(self, provisioner: Provisioner | None = None) -> list[str]:
        """The article's last step: the NAT gateway deleted and its Elastic IP released (the
        "finished" stage); the environment is read again afterwards. It never destroys the build:
        a failure here raises LastStepFailed, naming what of it is still there (billed by the hour);
        the environment stays as built, and `up` again completes the step."""
        provisioner = provisioner or Provisioner(self.env.target, self.env.settings, progress=self.say)
        with self.record.stage("the article's last step (NAT gateway deleted)"):
            try:
                done = provisioner.finish()
            except (EnvError, BotoCoreError, ClientError, OSError) as exc:
                raise LastStepFailed(one_line(exc), _still_there(provisioner, self.env.settings.region)) from exc
            finally:
                self.env.changed()
        return done

    def end(self) -> None:
        with self._held:
            self._end()

    def _end(self) -> None:
        self.env.drop_connections()
        if self.provision and not self.keep and not self.torn_down and not self.refused:
            self.tear_down()
        # Close only what this pass opened (a lab someone kept running stays running).
        if not self.env.target.persistent or (self.opened_here and not self.keep):
            with self.record.stage("data plane stop"):
                self.env.target.close(progress=self.say)

    def tear_down(self) -> teardown.Leftovers:
        self.torn_down = True
        self.env.drop_connections()
        with self.record.stage("teardown through the API"):
            return teardown.down(self.env.target, self.env.settings, progress=self.say)
