#!/usr/bin/env python3
"""Build, show, check against drift, or remove the article's two-tier environment.

    .venv/bin/python provision.py up     [--target local|moto|aws] [--env NAME] [settings...]
    .venv/bin/python provision.py down   [--target ...] [--env NAME]
    .venv/bin/python provision.py status [--target ...] [--env NAME] [--credentials]
    .venv/bin/python provision.py ssh-config [--env NAME]        # then: ssh -F FILE web / ssh -F FILE db
    .venv/bin/python provision.py drifts                          # the drift catalogue
    .venv/bin/python provision.py drift NAME [--revert] [--env NAME]
    .venv/bin/python provision.py sweep --older-than 2h [--target ...]   # remove expired/old environments
    eval "$(.venv/bin/python provision.py lab start [--env NAME])"   # a bare local lab, this shell pointed at it
    .venv/bin/python provision.py lab status|stop [--env NAME]
    .venv/bin/python provision.py lab run [--env NAME] [--as 198.51.100.7] -- COMMAND...   # on the lab's internet
Errors are one line on stderr and a non-zero exit; nothing half-built is left behind by `up`.
"""
from __future__ import annotations

import argparse
import os
import signal
import stat
import sys
from typing import Any

from awsenv.install import missing_line

_missing = missing_line("provision.py")
if _missing:
    sys.exit(f"error: {_missing}")


from awsenv import interrupts, statedir  # noqa: E402
from awsenv.errors import API_ERRORS, EnvError, one_line  # noqa: E402
from awsenv.install import provision_command  # noqa: E402
from awsenv.settings import OPTIONS, WIDE_ADMIN_FLAG  # noqa: E402
from common import files  # noqa: E402

EXIT_ERROR = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (its usage is in --help), like every other error."""

    def error(self, message):
        hint = ("; a value that starts with '-' is written --OPTION=VALUE"
                if "expected one argument" in message else f"; see {self.prog} --help")
        self.exit(EXIT_ERROR, f"error: {message}{hint}\n")


def parse(argv):
    p = Parser(prog="provision.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmds = {
        "up": "build the environment, the article's last step included (run again, it completes what is missing; "
              "on a finished environment it builds a NAT gateway again for the install and deletes it again)",
        "down": "remove everything the environment holds, in a safe order (also after a crash)",
        "status": "show the environment's resources (and, on local, its API endpoint; --credentials: its keys)",
        "ssh-config": "print an OpenSSH config for the environment's hosts (written to STATE_DIR/ssh_config too)",
        "drifts": "list the drift catalogue: misconfigurations the suite must catch",
        "drift": "apply one drift to a kept environment (or --revert it)",
        "sweep": "remove every environment of this project (tag Project=twotier) that expired (tag ExpiresAt) "
                 "or was created longer ago than --older-than; NAT gateways and Elastic IPs first",
        "lab": "a bare local lab to build in by hand (its API, data plane, internet and mirror; nothing built): "
               "start, status, stop, or run a command on its internet where a CI runner stands",
    }
    for name, help_text in cmds.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == "lab":
            lab_parser(sp)
            continue
        if name == "drifts":
            continue
        for o in OPTIONS:
            sp.add_argument(f"--{o.name}", default=None, help=o.help + (f" [default: {o.default}]" if o.default else ""))
        if name == "up":
            sp.add_argument("--no-host-setup", action="store_true", help="skip installing Apache and MariaDB")
            sp.add_argument("--keep-nat", action="store_true",
                            help="stop before the article's last step: keep the NAT gateway (billed by the hour) "
                                 "and its Elastic IP, leaving the environment in the installing stage")
            sp.add_argument("--long-lived", action="store_true",
                            help="tag it Lifetime=long-lived instead of an 8-hour ExpiresAt: `sweep` keeps it "
                                 "(an environment a scheduled compliance job checks); only `down` removes it")
            sp.add_argument(WIDE_ADMIN_FLAG, action="store_true", dest="allow_wide_admin_cidr",
                            help="let --admin-cidr be wider than a /8 (up to 0.0.0.0/0: SSH from the whole internet)")
        if name == "status":
            sp.add_argument("--credentials", action="store_true",
                            help="also print the local lab API's credentials (as AWS_* variables for the AWS CLI)")
        if name == "down":
            sp.add_argument("--include-tagged", action="store_true",
                            help="also remove what carries the environment's tags (Project=twotier, Env) but is not "
                                 "in its ledger nor made by a run it knows: another state folder's, or another "
                                 "team's (default: listed and kept)")
        if name == "drift":
            sp.add_argument("name", help="drift name (see `provision.py drifts`)")
            sp.add_argument("--revert", action="store_true", help="undo the drift")
        if name == "sweep":
            sp.add_argument("--older-than", required=True, metavar="DURATION",
                            help="remove environments created longer ago than this: 30m, 2h, 1d, 1h30m")
            sp.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    return p.parse_args(argv)


LAB_ACTIONS = {
    "start": "start it (or find it running) and print the shell variables that point the AWS CLI and boto3 at "
             "its API: `eval \"$(provision.py lab start)\"` (on a terminal the secret is not shown); writes "
             "STATE_DIR/lab.ssh_config, OpenSSH's way to any host launched in it",
    "status": "whether it runs: its API's endpoints, region, namespaces, containers, runners (exit 1: not running)",
    "stop": "remove it and everything it holds (namespaces, hosts, disks, runners); prints the variables to "
            "unset (`eval \"$(provision.py lab stop)\"`)",
    "run": "run COMMAND where a CI runner stands: a namespace of its own on the lab's internet at --as, its "
           "resolv.conf naming the lab's DNS, AWS_ENDPOINT_URL the lab's API there, with the lab's credentials "
           "and region (the aws target's own code, against real hosts); exits with COMMAND's status",
}


def lab_parser(sp) -> None:
    actions = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    by_name = {o.name: o for o in OPTIONS}
    for action, help_text in LAB_ACTIONS.items():
        a = actions.add_parser(action, help=help_text, description=help_text)
        for name in ("env", "state-dir") + (("region",) if action == "start" else ()):
            o = by_name[name]
            a.add_argument(f"--{name}", dest=o.dest, default=None,
                           help=o.help + (f" [default: {o.default}]" if o.default else ""))
        if action == "run":
            from awsenv.targets import target_class

            lab: Any = target_class("local")     # the lab's own commands: the local target's alone
            default, first, last = lab.runner_addresses()
            a.add_argument("--as", dest="address", default=default, metavar="ADDRESS",
                           help=f"the runner's address on the lab's internet, {first}-{last} (give it "
                                f"as --admin-cidr ADDRESS/32 to let it SSH in) [default: {default}]")
            a.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...",
                           help="the command and its arguments, after --")


def environment_of(args):
    """The Environment named by the options, its target not yet opened; a state folder that isn't
    ours, or a --ssh-key that can't be used, is refused before anything starts."""
    from awsenv.environment import Environment
    from awsenv.hosts.ssh import load_key
    from awsenv.targets import make_target

    values = {o.dest: getattr(args, o.dest) for o in OPTIONS}
    values["allow_wide_admin_cidr"] = getattr(args, "allow_wide_admin_cidr", False)
    env = Environment(make_target(values))
    files.check_folder(env.settings.state_dir)
    if env.settings.ssh_key:
        load_key(env.settings.ssh_key, own=False)
    return env


def cmd_drifts(_args) -> int:
    from awsenv.provisioning.drifts import CATALOGUE

    for d in CATALOGUE:
        where = "host" if d.needs_hosts else "api"
        print(f"{d.name:<32} {where:<5} {d.description}")
    return 0


def attach(env) -> None:
    """Reach the environment's API without creating anything (a kept environment)."""
    if not env.target.attach(progress=print):
        if env.target.persistent:
            raise EnvError(env.target.absent_reason())
        raise EnvError(f"no {env.target.name} environment {env.settings.env!r} to reach"
                       " (the moto target keeps nothing between commands; use --target local)")


def cmd_up(args) -> int:
    from awsenv.provisioning.lock import environment_lock

    env = environment_of(args)
    env.settings.require_admin_cidr()
    state = env.settings.state_dir
    created = files.ensure_folder(state)
    account = {"clean": True}      # nothing this command made is left in the account
    with environment_lock(state, env.settings.env, "up"):
        try:
            return _up(args, env, account)
        except BaseException:
            if created and account["clean"]:
                # Still under the lock: no other command is using the folder meanwhile.
                _remove_state_folder(state)
            raise


def _remove_state_folder(state) -> None:
    """A failed `up` that made this folder and left nothing in the account: the folder goes too
    (its lock, the ledger of what was rolled back, a key no key pair holds any more). Only plain
    files are removed, and the folder only if that empties it."""
    for name in os.listdir(state):
        if not stat.S_ISDIR(os.lstat(state / name).st_mode):
            files.remove(state / name)
    try:
        os.rmdir(state)
    except OSError:
        pass


def _up(args, env, account: dict) -> int:
    from awsenv.lifecycle import LastStepFailed, Lifecycle
    from awsenv.provisioning import teardown
    from awsenv.provisioning.provisioner import Provisioner

    target = env.target
    lifecycle = Lifecycle(env, provision=True, keep=True)
    target.prepare(progress=print)
    started = target.open(progress=print)
    provisioner = Provisioner(target, env.settings, progress=print, long_lived=args.long_lived)
    try:
        # Bad input (image, env name taken, ...) fails here, before anything is created: one line.
        provisioner.check_inputs()
        provisioner.start_run()
    except BaseException:
        if started:
            target.close(progress=lambda _: None)
        raise
    account["clean"] = False
    # A build whose last step began and did not end (its NAT gateway deleted, the Elastic IP still
    # allocated): only the last step is left to do; building again would make a NAT gateway to delete.
    completing = not args.keep_nat and provisioner.unfinished_last_step()
    if completing:
        print("the article's last step was left unfinished: completing it (the build before it is complete)")
    try:
        if completing:
            pass
        elif args.no_host_setup or not target.host_access:
            provisioner.up()
            target.settle()     # the hosts answer (on local, the lab has realised them) before we return
        else:
            lifecycle.build(provisioner)
    except BaseException as exc:
        # Nothing half-built is left, and nothing that was there before is touched: remove
        # exactly what this attempt created, whatever the failure was.
        print(f"up failed ({one_line(exc) or 'interrupted'}); removing what this attempt made (nothing else)",
              file=sys.stderr)
        try:
            left = teardown.down(target, env.settings, progress=print, only=provisioner.made_here)
            for line in left.lines():
                print(line, file=sys.stderr)
            account["clean"] = not left
        finally:
            env.drop_connections()
            if started:
                target.close(progress=print)
        raise
    if not args.keep_nat:
        # The article's last step (the finished stage): the NAT gateway is billed by the hour and
        # the install it was there for is done, so it is deleted and its Elastic IP released. It
        # never destroys the build: a failure keeps the environment as built and says what is left.
        try:
            lifecycle.finish(provisioner)
        except LastStepFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            for line in exc.left:
                print(line, file=sys.stderr)
            _close_kept(env, started)
            return EXIT_ERROR
        except KeyboardInterrupt:
            again = provision_command(f"up{target.target_option()} --env {env.settings.env}")
            down = provision_command(f"down{target.target_option()} --env {env.settings.env}")
            print(f"interrupted during the article's last step; the environment is kept as built: run `{again}` "
                  f"again to complete it, or `{down}` to remove it", file=sys.stderr)
            _close_kept(env, started)
            raise
    print_status(env)
    if target.host_access:
        try:
            write_ssh_config(env)
            print(f"ssh_config: {env.settings.state_dir / 'ssh_config'}")
        except EnvError as exc:     # the environment is built; only the convenience file is skipped
            print(f"warning: {exc}", file=sys.stderr)
    env.drop_connections()
    if not target.persistent:
        print("note: the moto target holds the API in this process only; what it built is gone now "
              "(use --target local for a kept environment)")
        target.close()
    return 0


def _close_kept(env, started: bool) -> None:
    """The environment stays; only this process's hold on it goes (a lab it started keeps running
    for the next `up`, like after a successful one)."""
    env.drop_connections()
    if started and not env.target.persistent:
        env.target.close()


def print_status(env, credentials: bool = False) -> None:
    """The environment's resources; on a target with an API of its own (local), its endpoint, and
    its credentials only when asked (`status --credentials`): a terminal log or a CI log keeps them."""
    snap = env.snapshot()
    cli = env.target.cli_environment()
    if cli and credentials:
        print("API: " + " ".join(f"{k}={v}" for k, v in cli.items()))
    elif cli:
        print(f"API: {cli['AWS_ENDPOINT_URL']} (region {cli['AWS_REGION']}; its credentials: "
              f"{provision_command(f'status --credentials --env {env.settings.env}')})")
    for kind, rid, detail in snap.resources():
        print(f"{kind:<18} {rid:<28} {detail}")


def write_ssh_config(env) -> str:
    from awsenv.hosts.ssh import SSH_CONFIG_HEADER, ssh_config

    snap = env.snapshot()
    text = ssh_config(env.settings, snap.web.public_ip, snap.db.private_ip, env.target.proxy_command())
    path = env.settings.state_dir / "ssh_config"
    if os.path.lexists(path) and (os.path.islink(path) or not (files.read_text(path) or "").startswith(SSH_CONFIG_HEADER)):
        raise EnvError(f"{path} exists and was not written by this project; refusing to overwrite it")
    files.write_private(path, text)
    return text


def cmd_status(args) -> int:
    env = environment_of(args)
    attach(env)
    print_status(env, credentials=args.credentials)
    return 0


def cmd_ssh_config(args) -> int:
    env = environment_of(args)
    attach(env)
    text = write_ssh_config(env)
    path = env.settings.state_dir / "ssh_config"
    print(text, end="")
    print(f"# written to {path}: ssh -F {path} web   |   ssh -F {path} db", file=sys.stderr)
    return 0


def cmd_down(args) -> int:
    from awsenv.provisioning.lock import environment_lock

    env = environment_of(args)
    with environment_lock(env.settings.state_dir, env.settings.env, "down"):
        return _down(env, args.include_tagged)


def _down(env, include_tagged: bool) -> int:
    from awsenv.provisioning import teardown

    target = env.target
    if not target.persistent:
        print(f"the {target.name} target keeps nothing between commands: nothing to remove")
        return 0
    if not target.attach(progress=print):
        print(f"no API running for {env.settings.env!r}; cleaning up what a crashed lab may have left")
        target.close(progress=print)
        return 0
    try:
        left = teardown.down(target, env.settings, progress=print, include_tagged=include_tagged)
    except KeyboardInterrupt:
        # Interrupted half-way: say what still exists (and what of it bills by the hour).
        try:
            still = teardown.leftovers(target, env.settings)
        except Exception:  # noqa: BLE001 - a second interrupt or a dead API: say that much
            still = None
        print("down interrupted; " + ("still there: " + "; ".join(still.lines()) if still else
                                      "could not list what is left" if still is None else "nothing is left"),
              file=sys.stderr)
        raise
    target.close(progress=print)
    if left or left.kept:
        # Never "nothing left" while something of the environment, or tagged as it, still exists.
        for line in left.lines() + left.kept_lines(env.settings.env):
            print(line, file=sys.stderr)
        return 1
    print(f"env {env.settings.env}: nothing left")
    kept = statedir.kept_line(env.settings)
    if kept:
        print(kept)
    return 0


def cmd_sweep(args) -> int:
    from awsenv.provisioning import sweep

    older_than = sweep.parse_duration(args.older_than)
    env = environment_of(args)
    if not env.target.persistent:
        print(f"the {env.target.name} target keeps nothing between commands: nothing to sweep")
        return 0
    attach(env)
    left = sweep.sweep(env.target, env.settings, older_than, dry_run=args.dry_run, progress=print)
    for line in left:
        print(line, file=sys.stderr)
    return 1 if left else 0


def cmd_drift(args) -> int:
    from awsenv.provisioning.drifts import apply_drift, revert_drift
    from awsenv.provisioning.lock import environment_lock

    env = environment_of(args)
    attach(env)
    with environment_lock(env.settings.state_dir, env.settings.env, "drift"):
        d = (revert_drift if args.revert else apply_drift)(args.name, env)
    env.drop_connections()
    print(f"{'reverted' if args.revert else 'applied'} drift {d.name}: {d.description}")
    return 0


# What `lab start` exports (the target's variables, plus no instance metadata) and unsets (a real
# account's profile or session token would win over the lab's keys).
LAB_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
NO_METADATA = {"AWS_EC2_METADATA_DISABLED": "true"}
LAB_EXPORTED = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
                *NO_METADATA)


def cmd_lab(args) -> int:
    from awsenv.targets import make_target

    values = {o.dest: getattr(args, o.dest, None) for o in OPTIONS}
    target = make_target({**values, "target": "local"})
    files.check_folder(target.settings.state_dir)
    return {"start": lab_start, "stop": lab_stop, "status": lab_status, "run": lab_run}[args.action](target, args)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lab_start(target, _args) -> int:
    import shlex

    from awsenv.provisioning.lock import environment_lock

    env, state = target.settings.env, target.settings.state_dir
    vantage = target.vantage_ip()
    files.ensure_folder(state)
    with environment_lock(state, env, "lab start"):
        target.open(progress=_err)         # progress on stderr: stdout is for eval
    variables = {**target.cli_environment(), **NO_METADATA}
    fragment = target.ssh_fragment()
    _err(f"lab {env}: its hosts from here: ssh -F {fragment} -i KEY ec2-user@ADDRESS (you are {vantage} on its "
         f"internet: open SSH to {vantage}/32); a command where a CI runner stands: "
         f"{provision_command(f'lab run --env {env} -- COMMAND')}; remove it: "
         f'eval "$({provision_command(f"lab stop --env {env}")})"')
    if sys.stdout.isatty():
        # A terminal keeps what it shows (scrollback, a recorded session): the secret goes only to eval.
        shown = {k: ("(not shown on a terminal)" if k == "AWS_SECRET_ACCESS_KEY" else v) for k, v in variables.items()}
        for k, v in shown.items():
            print(f"{k}={v}")
        print(f'point this shell at it: eval "$({provision_command(f"lab start --env {env}")})"')
        return 0
    print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items()))
    print("unset " + " ".join(LAB_UNSET))
    return 0


def lab_stop(target, _args) -> int:
    from awsenv.hosts.ssh import forget_pins
    from awsenv.provisioning.lock import environment_lock

    env, state = target.settings.env, target.settings.state_dir
    if (state / "ledger.jsonl").exists():
        raise EnvError(f"env {env} holds an environment that `up` built (its ledger.jsonl): remove it with "
                       f"`{provision_command(f'down --env {env}')}`, which stops its lab too")
    if state.is_dir():
        with environment_lock(state, env, "lab stop"):
            target.close(progress=_err)
            forget_pins(target.settings)      # the hosts went with the lab; their addresses come back with new keys
    else:
        target.close(progress=_err)
    if not sys.stdout.isatty():
        print("unset " + " ".join(LAB_EXPORTED))
    return 0


def lab_status(target, _args) -> int:
    env, state = target.settings.env, target.settings.state_dir
    info = target.lab_status()
    if not info:
        print(f"no lab of env {env} is running (start one: {provision_command(f'lab start --env {env}')})")
        return 1
    print(f"lab {env}: {'ready' if info['ready'] else 'starting'}, daemon pid {info['pid']}, region {info['region']}")
    print(f"API: {info['endpoint']} (here), {info['internet_endpoint'] or '-'} (on its internet, for runners)")
    print(f"namespaces: {len(info['namespaces'])}; containers: {len(info['containers'])}; "
          f"runners: {', '.join(info['runners']) or 'none'}")
    print(f"state dir: {state} (OpenSSH: {target.ssh_fragment()})")
    return 0


def lab_run(target, args) -> int:
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        raise EnvError(f"lab run needs a command after --: {provision_command('lab run --env NAME -- COMMAND...')}")
    target.check_runner_address(args.address)
    if not target.attach(progress=_err):
        env = target.settings.env
        raise EnvError(f"no lab of env {env} is running: start it with `{provision_command(f'lab start --env {env}')}`")
    ns, variables = target.runner(args.address)
    # A runner has no profile or config file of its own: only what the job gives it.
    child = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    child.update(variables, **NO_METADATA, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    sys.stdout.flush()
    os.execvpe("ip", ["ip", "netns", "exec", ns, *command], child)
    return 127      # not reached: exec replaces this process


def main(argv=None) -> int:
    interrupts.arm()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # `provision.py status | head` ends quietly
    args = parse(argv if argv is not None else sys.argv[1:])
    handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh-config": cmd_ssh_config,
               "drifts": cmd_drifts, "drift": cmd_drift, "sweep": cmd_sweep, "lab": cmd_lab}[args.command]
    try:
        return handler(args)
    except (EnvError, *API_ERRORS) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - SSH, OS and parser errors: one line, never a traceback wall
        print(f"error: {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
