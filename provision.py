#!/usr/bin/env python3
"""Build, show, check against drift, or remove the article's two-tier environment.

    python provision.py up     [--target local|moto|aws] [--env NAME] [settings...]
    python provision.py down   [--target ...] [--env NAME]
    python provision.py status [--target ...] [--env NAME]
    python provision.py ssh-config [--env NAME]        # then: ssh -F FILE web / ssh -F FILE db
    python provision.py drifts                          # the drift catalogue
    python provision.py drift NAME [--revert] [--env NAME]
    python provision.py sweep --older-than 2h [--target ...]   # remove expired/old environments
Errors are one line on stderr and a non-zero exit; nothing half-built is left behind by `up`.
"""
from __future__ import annotations

import argparse
import signal
import sys

from botocore.exceptions import BotoCoreError, ClientError

from awsenv.errors import EnvError, one_line
from awsenv.settings import OPTIONS, Settings

EXIT_ERROR = 2


def parse(argv):
    p = argparse.ArgumentParser(prog="provision.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cmds = {
        "up": "build the environment (idempotent: running it again creates nothing new)",
        "down": "remove everything the environment holds, in a safe order (also after a crash)",
        "status": "show the environment's resources (and, on local, its API endpoint)",
        "ssh-config": "print an OpenSSH config for the environment's hosts (written to STATE_DIR/ssh_config too)",
        "drifts": "list the drift catalogue: misconfigurations the suite must catch",
        "drift": "apply one drift to a kept environment (or --revert it)",
        "sweep": "remove every environment of this project (tag Project=twotier) that expired (tag ExpiresAt) "
                 "or was created longer ago than --older-than; NAT gateways and Elastic IPs first",
    }
    for name, help_text in cmds.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == "drifts":
            continue
        for opt, default, h in OPTIONS:
            sp.add_argument(f"--{opt}", default=None, help=h + (f" [default: {default}]" if default else ""))
        if name == "up":
            sp.add_argument("--no-host-setup", action="store_true", help="skip installing Apache and MariaDB")
        if name == "drift":
            sp.add_argument("name", help="drift name (see `provision.py drifts`)")
            sp.add_argument("--revert", action="store_true", help="undo the drift")
        if name == "sweep":
            sp.add_argument("--older-than", required=True, metavar="DURATION",
                            help="remove environments created longer ago than this: 30m, 2h, 1d, 1h30m")
            sp.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    return p.parse_args(argv)


def settings_of(args) -> Settings:
    return Settings.build({opt: getattr(args, opt.replace("-", "_")) for opt, _, _ in OPTIONS})


def cmd_drifts(_args) -> int:
    from awsenv.drifts import CATALOGUE

    for d in CATALOGUE:
        where = "host" if d.needs_hosts else "api"
        print(f"{d.name:<32} {where:<5} {d.description}")
    return 0


def run_for(args):
    from awsenv.session import Run

    return Run.create(settings_of(args), provision=False, keep=True, selectors=None)


def open_api(run, start: bool) -> None:
    """Reach the environment's API: on local, the kept lab (or a new one for `up`)."""
    if run.target.name == "local" and not start:
        if not run.target.attach():
            raise EnvError(f"no local environment {run.settings.env!r} is running "
                           f"(`python provision.py up --env {run.settings.env}` builds one)")
        return
    run.target.start(progress=print)
    if run.target.name == "moto":
        print("note: the moto target holds the API in this process only; what it builds is gone when the "
              "command ends (use --target local for a kept environment)")


def cmd_up(args) -> int:
    from awsenv import teardown

    from awsenv.provisioner import Provisioner

    run = run_for(args)
    run.provision = True
    run.settings.require_admin_cidr()
    open_api(run, start=True)
    try:
        # Bad input (image, env name taken, ...) fails here, before anything is created: one line.
        Provisioner(run.target, run.settings, progress=lambda _: None).check_inputs()
    except BaseException:
        if run.target.name == "local":
            run.target.stop(progress=print)
        raise
    try:
        if args.no_host_setup or not run.target.host_access:
            Provisioner(run.target, run.settings).up()
        else:
            run.build()
    except (EnvError, KeyboardInterrupt, BotoCoreError, ClientError) as exc:
        # Nothing half-built is left: remove what this attempt made, then say what went wrong.
        print(f"up failed ({one_line(exc) or 'interrupted'}); removing what was made", file=sys.stderr)
        try:
            left = teardown.down(run.target, run.settings, progress=print)
            for line in left.lines():
                print(line, file=sys.stderr)
        finally:
            if run.target.name == "local":
                run.target.stop(progress=print)
        raise
    print_status(run)
    if run.target.host_access:
        write_ssh_config(run)
    if run.target.name == "moto":
        run.target.stop()
    return 0


def print_status(run) -> None:
    snap = run.snapshot()
    if run.target.endpoint_url():
        print(f"API endpoint: {run.target.endpoint_url()}  (AWS_ENDPOINT_URL={run.target.endpoint_url()} "
              f"AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION={run.settings.region})")
    for kind, rid, detail in snap.resources():
        print(f"{kind:<18} {rid:<28} {detail}")


def write_ssh_config(run) -> str:
    from awsenv.ssh import ssh_config

    snap = run.snapshot()
    proxy = run.target.proxy_command() if hasattr(run.target, "proxy_command") else None
    text = ssh_config(run.settings, snap.web.public_ip, snap.db.private_ip, proxy)
    path = run.settings.state_dir / "ssh_config"
    path.write_text(text)
    return str(path)


def cmd_status(args) -> int:
    run = run_for(args)
    open_api(run, start=False)
    print_status(run)
    return 0


def cmd_ssh_config(args) -> int:
    run = run_for(args)
    open_api(run, start=False)
    path = write_ssh_config(run)
    print(open(path).read(), end="")
    print(f"# written to {path}: ssh -F {path} web   |   ssh -F {path} db", file=sys.stderr)
    return 0


def cmd_down(args) -> int:
    from awsenv import teardown

    run = run_for(args)
    if run.target.name == "moto":
        print("the moto target keeps nothing between commands: nothing to remove")
        return 0
    if run.target.name == "local" and not run.target.attach():
        print(f"no API running for {run.settings.env!r}; cleaning the lab's leftovers")
        run.target.stop(progress=print)
        return 0
    if run.target.name == "aws":
        run.target.start(progress=print)
    left = teardown.down(run.target, run.settings, progress=print)
    if run.target.name == "local":
        run.target.stop(progress=print)
    if left:
        for line in left.lines():
            print(line, file=sys.stderr)
        return 1
    print(f"env {run.settings.env}: nothing left")
    return 0


def cmd_sweep(args) -> int:
    from awsenv import sweep

    older_than = sweep.parse_duration(args.older_than)
    run = run_for(args)
    if run.target.name == "moto":
        print("the moto target keeps nothing between commands: nothing to sweep")
        return 0
    open_api(run, start=False)
    left = sweep.sweep(run.target, run.settings, older_than, dry_run=args.dry_run, progress=print)
    for line in left:
        print(line, file=sys.stderr)
    return 1 if left else 0


def cmd_drift(args) -> int:
    from awsenv.drifts import apply_drift, revert_drift

    run = run_for(args)
    open_api(run, start=False)
    d = (revert_drift if args.revert else apply_drift)(args.name, run)
    print(f"{'reverted' if args.revert else 'applied'} drift {d.name}: {d.description}")
    return 0


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)   # `provision.py status | head` ends quietly
    args = parse(argv if argv is not None else sys.argv[1:])
    handler = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "ssh-config": cmd_ssh_config,
               "drifts": cmd_drifts, "drift": cmd_drift, "sweep": cmd_sweep}[args.command]
    try:
        return handler(args)
    except (EnvError, BotoCoreError, ClientError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
