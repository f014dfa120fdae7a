"""The floor for a check-only run: the same API reads, host commands and probes, done bare.

Reads what a check-only run recorded (reports/run-stats.json), then does only that: one snapshot
read through boto3, one SSH connection per host (the DB's through the web server), each command in
turn, then each probe from its vantage point with the run's own timeout (a negative probe waits
that long in any run: it is work, not overhead). Prints its own wall time in seconds.
"""
import json
import sys
import time

T0 = time.monotonic()

from awsenv.discovery import snapshot  # noqa: E402
from awsenv.hosts import probes  # noqa: E402
from awsenv.hosts.ssh import Connections, load_key  # noqa: E402
from awsenv.targets import make_target  # noqa: E402


def main(env: str, state_dir: str, stats_file: str) -> None:
    stats = json.load(open(stats_file))
    commands = stats["host_commands"]
    target = make_target({"target": "local", "env": env, "state_dir": state_dir})
    settings = target.settings
    assert target.attach(lambda *_: None), f"no kept local environment {env}"
    web, db = snapshot.find_env_instances(target.ec2, env)
    snap = snapshot.read_snapshot(target.ec2, settings.region, web, db, env=env)
    key = load_key(settings.key_file, own=settings.key_is_ours)
    conns = Connections(target, settings, snap.web.public_ip, snap.db.private_ip, key)
    for role, command in commands:
        conns.execute(role, command)
    conns.close()
    probes.repeat(target, stats.get("probes", []))
    print(f"{time.monotonic() - T0:.3f} {sum(target.api_calls.values())} {len(commands)}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
