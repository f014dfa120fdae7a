"""An emulated EC2 API for trying the aws target without an account, root or the lab.

    eval "$(.venv/bin/python -m emulator start)"   # moto + the realism layer on 127.0.0.1, in the background
    ... .venv/bin/python provision.py up --target aws ... / .venv/bin/pytest --target aws ...
    eval "$(.venv/bin/python -m emulator stop)"

`start` prints the shell variables that point boto3 and the AWS CLI at it (endpoint, region,
dummy credentials, no instance metadata) and unsets the ones of a real account that would
otherwise win (profile, session token). Addresses are moto's own (Elastic IPs in 127.0.0.0/8):
the suite never probes them, so host checks are "not checked" here; the local target is the one
with hosts. The realism layer's windows are the lab's (a twentieth of its defaults).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PID_VAR = "TWOTIER_EMULATOR_PID"
SCALE = 0.05
EXPORTED = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def serve(port: int) -> int:
    import dataclasses

    from . import realism

    timings = realism.Timings().scaled(SCALE)
    server = realism.RealisticMotoServer("127.0.0.1", port, timings=dataclasses.replace(timings)).start()
    print(server.get_host_and_port()[1], flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    server.stop()
    return 0


def start(port: int, log: Path) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "emulator", "serve", "--port", str(port)],
                                stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()     # the port, once it listens (moto takes ~2 s to load)
    if not line.isdigit():
        proc.kill()
        print(f"error: the emulator did not start; see {log}", file=sys.stderr)
        return 2
    proc.stdout.close()
    with socket.create_connection(("127.0.0.1", int(line)), timeout=10):
        pass
    print(f"export AWS_ENDPOINT_URL=http://127.0.0.1:{line} "
          + " ".join(f"{k}={v}" for k, v in EXPORTED.items()) + f" {PID_VAR}={proc.pid}")
    print("unset " + " ".join(UNSET))
    print(f"echo 'emulated EC2 on 127.0.0.1:{line} (pid {proc.pid}); stop it with: "
          f"eval \"$(.venv/bin/python -m emulator stop)\"' >&2")
    return 0


def stop() -> int:
    pid = os.environ.get(PID_VAR, "")
    if not pid.isdigit():
        print(f"error: {PID_VAR} is not set: no emulator started from this shell", file=sys.stderr)
        return 2
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        cmdline = []
    if b"emulator" in cmdline and b"serve" in cmdline:      # ours, not a reused PID
        os.kill(int(pid), signal.SIGTERM)
    print("unset AWS_ENDPOINT_URL " + " ".join(EXPORTED) + f" {PID_VAR}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start it in the background; prints the shell variables to eval")
    s.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    s.add_argument("--log", type=Path, default=Path(".state/emulator.log"), help="its log [.state/emulator.log]")
    sub.add_parser("stop", help="stop the one this shell started; prints the variables to unset")
    v = sub.add_parser("serve", help="serve in the foreground (prints the port, then serves until SIGTERM)")
    v.add_argument("--port", type=int, default=0)
    args = p.parse_args(argv)
    if args.command == "start":
        return start(args.port, args.log)
    if args.command == "stop":
        return stop()
    return serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
