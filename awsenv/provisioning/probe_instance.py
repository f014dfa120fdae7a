"""A probe instance: a host inside the VPC outside the web server's groups, for a run that asks for
one (pytest --probe-instance).

"No other host can connect" (4.4's direct SSH, 4.7's MariaDB) is probed from a host in the public
subnet that is not the web server and holds none of its groups. The local target has one of its own
(the lab's neighbour namespace); on AWS there is none unless the run launches it: one instance in the
web server's subnet, from the web server's own image, instance type and key pair (so the key that
logs in to the web server logs in to it, and the image's user is the same), in a security group of
its own that admits SSH from the web server's private address only, with no public address. The
suite reaches it through the web server (a direct-tcpip channel over the web server's SSH
connection, as it reaches the DB), and it probes with bash's /dev/tcp (awsenv/hosts/probes.py:
HostVantage). Its own host key is trusted on first contact for this run only (it is new, and gone
at the end): it is never pinned in the environment's file.

Launched when the first check that needs it asks, never in a run that needs none. Everything it is
made of is tagged Project, Env, Role=probe, RunId (a RunId of its own, written to the environment's
ledger before anything is made) and ExpiresAt, and each ID goes to the ledger the moment AWS returns
it. It is removed at the end of the run whether the checks passed, failed or the run was interrupted
(the plugin's session fixture, armed before the launch), by the teardown's own code restricted to
this RunId; a run killed outright leaves it to `provision.py down` (the ledger names it) or `sweep`.
"""
from __future__ import annotations

import uuid

import paramiko
from botocore.exceptions import ClientError

from ..environment import Environment
from ..errors import EnvError, one_line
from ..hosts.probes import HostVantage, Vantage
from ..hosts.ssh import Result, execute, transport_of
from ..verdict import NotChecked
from ..waits import wait_until, wait_with_waiter
from . import tags, teardown
from .ledger import Ledger

ROLE = "probe"
NAME = "a probe instance in the public subnet (a security group of its own)"


class ProbeInstance(Vantage):
    """The vantage point, launched on first use: tcp() probes from the instance."""
    refusal_answers = True          # inside the VPC: a refusal is the host's own answer
    name = NAME

    def __init__(self, env: Environment, progress=print):
        self.env = env
        self.say = progress
        self.run_id = uuid.uuid4().hex[:12]
        self.instance_id = ""
        self.group_id = ""
        self.address = ""
        self._failed = ""
        self._client: paramiko.SSHClient | None = None
        self._launched = False
        self._vantage = HostVantage(self._run, NAME)

    # -- the vantage point -----------------------------------------------------------------------
    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        self._ready()
        return self._vantage.tcp(address, port, timeout)

    def _ready(self) -> None:
        if self._failed:
            raise NotChecked(self._failed)
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            try:
                if not self._launched:
                    self._launch()
                self._client = self._connect_when_up()
            except (EnvError, ClientError, OSError, paramiko.SSHException) as exc:
                self._failed = f"the probe instance could not be used: {one_line(exc) or type(exc).__name__}"
                raise NotChecked(self._failed) from None

    def _run(self, command: str) -> Result:
        assert self._client is not None
        try:
            return execute(self._client, command, timeout=60)
        except (OSError, paramiko.SSHException, EOFError, EnvError) as exc:
            self._client = None
            raise NotChecked(f"the SSH connection to the probe instance failed during a probe: {one_line(exc)}") from None

    # -- launch ------------------------------------------------------------------------------------
    def _launch(self) -> None:
        self._launched = True      # once: a failed launch is not tried again by every later check
        env, target, s = self.env, self.env.target, self.env.settings
        web = env.snapshot().web
        if not (web.subnet_id and web.private_ip and web.image_id and web.instance_type):
            raise EnvError(f"the web server {web.id} shows no subnet, address, image or type to launch a probe beside it")
        if not web.key_name:
            raise EnvError(f"the web server {web.id} was launched without a key pair, so a probe launched with its key "
                           "could not be logged in to")
        conns = env.connections()
        login = conns.login("web")
        if not login.ok:
            raise EnvError(f"the probe instance is reached through the web server, which was {login.outcome}: "
                           f"{login.detail}")
        ledger = Ledger(s.state_dir)
        ledger.record_run(self.run_id)      # before anything is made: whatever carries this RunId is ours
        ec2 = target.ec2
        vpc = env.snapshot().vpc.id
        self.group_id = self._create("security-group", ledger, ec2.create_security_group, "GroupId",
                                     GroupName=f"{s.env}-probe-{self.run_id}", VpcId=vpc,
                                     Description="twotier probe: a host outside the web server's groups, for one run",
                                     TagSpecifications=self._tags("security-group"))
        # Names the group just made: its NotFound meanwhile is retried by the target's session.
        ec2.authorize_security_group_ingress(GroupId=self.group_id, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": f"{web.private_ip}/32", "Description": "SSH from the web server only"}]}])
        self.instance_id = self._create(
            "instance", ledger, ec2.run_instances, "Instances",
            ImageId=web.image_id, InstanceType=web.instance_type, KeyName=web.key_name, MinCount=1, MaxCount=1,
            ClientToken=f"{s.env}-probe-{self.run_id}"[:64],
            NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": web.subnet_id, "Groups": [self.group_id],
                                "AssociatePublicIpAddress": False, "DeleteOnTermination": True}],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
            TagSpecifications=self._tags("instance"))
        self.say(f"probe instance {self.instance_id} launched in {web.subnet_id} (security group {self.group_id}, "
                 f"SSH from the web server only; removed at the end of the run)")
        wait_with_waiter(ec2, "instance_running", f"probe instance {self.instance_id} running", target.boot_timeout + 300,
                         self.say, delay=target.poll_delay, first_delay=target.retry_first, InstanceIds=[self.instance_id])
        found = ec2.describe_instances(InstanceIds=[self.instance_id])["Reservations"][0]["Instances"][0]
        self.address = found.get("PrivateIpAddress", "")
        if not self.address:
            raise EnvError(f"probe instance {self.instance_id} shows no private address")
        target.settle()

    def _tags(self, resource_type: str) -> list[dict]:
        return tags.spec(resource_type, self.env.settings.env, ROLE, run_id=self.run_id)

    def _create(self, kind: str, ledger: Ledger, call, key: str, **kwargs) -> str:
        """A create call (the target's session keeps it in doubt until it answers, and what it made
        fresh: awsenv/retries.py); the new ID into the ledger at once."""
        answer = call(**kwargs)[key]
        rid = answer[0]["InstanceId"] if kind == "instance" else answer
        ledger.record(kind, rid)
        return rid

    def _connect_when_up(self) -> paramiko.SSHClient:
        target = self.env.target
        made: list[paramiko.SSHClient] = []

        def logged_in() -> bool:
            try:
                client = self._connect()
            except (OSError, paramiko.SSHException, EOFError, EnvError):
                return False
            made.append(client)
            return True
        wait_until(logged_in, f"SSH on probe instance {self.instance_id} ({self.address}) through the web server",
                   target.boot_timeout, self.say, delay=2)
        return made[-1]

    def _connect(self) -> paramiko.SSHClient:
        conns = self.env.connections()
        channel = transport_of(conns.web()).open_channel(
            "direct-tcpip", (self.address, 22), ("127.0.0.1", 0), timeout=self.env.target.answer_timeout)
        client = paramiko.SSHClient()
        # New for this run and gone at its end: its key is trusted on first contact, in memory only.
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            client.connect(self.address, username=self.env.settings.ssh_user, pkey=conns.key, sock=channel,
                           timeout=self.env.target.answer_timeout, banner_timeout=15, auth_timeout=15,
                           allow_agent=False, look_for_keys=False)
        except BaseException:
            client.close()
            raise
        return client

    # -- removal -------------------------------------------------------------------------------------
    def remove(self) -> teardown.Leftovers | None:
        """Remove what this run launched (None when it launched nothing); what is left is returned."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if not self._launched:
            return None
        run_id = self.run_id

        def this_probe(kind: str, rid: str, tag_list: list[dict]) -> bool:
            return tags.value(tag_list, tags.RUN_ID) == run_id and tags.value(tag_list, "Role") == ROLE
        return teardown.down(self.env.target, self.env.settings, progress=self.say, only=this_probe)
