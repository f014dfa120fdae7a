"""Builds the article's environment through boto3, step by step in the article's order.

Each step is ensure_*: find by tag, create if missing; so running `up` twice creates nothing new.
Every ID goes into the ledger the moment AWS returns it, and creating calls carry a ClientToken
so a retried call (standard retry mode) never creates twice. A call that names an ID this process
just created is retried while EC2 answers that the ID doesn't exist yet (eventual consistency: the
target's session does, awsenv/retries.py); states are polled with backoff up to the target's poll_delay.
"""
from __future__ import annotations

import fnmatch
import io
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

from common import files

from .. import consistency
from ..errors import EnvError
from ..settings import DEFAULTS, Settings
from ..targets import Target
from ..waits import api_check, wait_all, wait_for, wait_with_waiter
from . import kinds, tags
from .ledger import Ledger

WORLD = "0.0.0.0/0"
# The article's t2.micro isn't offered in every zone (newer regions have no t2): its successor then,
# unless --instance-type was given (docs/ARTICLE.md).
FALLBACK_TYPE = "t3.micro"
# AL2's SSM parameters (amzn2-ami-...) and AMI names (amzn2-ami-kernel-5.10-hvm-..., amzn2-ami-hvm-...).
AMAZON_LINUX_2 = re.compile(r"(^|/)amzn2-")
IMPORTABLE_KEYS = ("ssh-rsa", "ssh-ed25519")


@dataclass
class Built:
    vpc_id: str = ""
    public_subnet_id: str = ""
    private_subnet_id: str = ""
    igw_id: str = ""
    public_rt_id: str = ""
    private_rt_id: str = ""
    web_sg_id: str = ""
    db_sg_id: str = ""
    nat_id: str = ""
    nat_eip: str = ""
    web_id: str = ""
    web_eip: str = ""
    db_id: str = ""
    image_id: str = ""


class Provisioner:
    def __init__(self, target: Target, settings: Settings, progress=print, long_lived: bool = False):
        self.t = target
        self.s = settings
        self.ec2 = target.ec2
        self.say = progress
        self.ledger = Ledger(settings.state_dir)
        self.run_id = uuid.uuid4().hex[:12]
        self.long_lived = long_lived    # no ExpiresAt: `sweep` keeps it (a compliance target, a demo)
        self.b = Built()
        # The type launched: the setting, or where the default isn't offered, its fallback (_first_az).
        self.instance_type = settings.instance_type
        # What this very process created, so a failed `up` removes exactly that and nothing that
        # was there before (an earlier `up` of the same environment).
        self.created: set[tuple[str, str]] = set()

    def _made(self, kind: str, resource_id: str) -> None:
        self.created.add((kind, resource_id))
        self.ledger.record(kind, resource_id)

    def made_here(self, kind: str, resource_id: str, tag_list: list[dict]) -> bool:
        """Created by this very process: its ID came back to us, or it carries our run's tag (an
        answer lost to an interrupt or a 5xx after the create happened)."""
        return (kind, resource_id) in self.created or tags.value(tag_list, tags.RUN_ID) == self.run_id

    # -- helpers ---------------------------------------------------------------------------
    def _find(self, op: str, key: str, role: str | None, extra: list[dict] | None = None) -> list[dict]:
        return getattr(self.ec2, op)(Filters=tags.env_filter(self.s.env, role) + (extra or []))[key]

    def _tags(self, resource_type: str, env: str, role: str) -> list[dict]:
        return tags.spec(resource_type, env, role, long_lived=self.long_lived, run_id=self.run_id)

    def _token(self, role: str) -> str:
        return f"{self.s.env}-{role}-{self.run_id}"[:64]

    def _call(self, what: str, fn, **kwargs):
        """fn(**kwargs), its failure one line. (EC2's "not yet" answers are retried by the target's
        session: awsenv/retries.py.)"""
        try:
            return fn(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise EnvError(f"{what} failed: {err.get('Code')}: {err.get('Message')}") from None

    # -- the article's steps ----------------------------------------------------------------
    def up(self) -> Built:
        self.check_inputs()
        self.start_run()
        self.ensure_key_pair()
        self.ensure_vpc()
        self.ensure_subnets()
        self.ensure_internet_gateway()
        self.ensure_public_route_table()
        self.ensure_security_groups()
        # The NAT gateway is created before the instances so its wait (minutes on AWS) overlaps
        # their boot: the critical path is the longer of the two, not their sum.
        self.ensure_nat_gateway()
        self.ensure_web_instance()
        self.ensure_db_instance()
        self.wait_instances_and_nat()
        self.ensure_web_eip()
        self.ensure_private_route_table()
        return self.b

    _run_recorded = False

    def start_run(self) -> None:
        """Before anything is made: this run's RunId into the ledger, so whatever carries its tag is
        ours by proof even if an interrupt or a 5xx keeps an ID from the ledger. (A ledger that can't be
        written, a link say, stops the run here, with nothing made.)"""
        if not self._run_recorded:
            self.ledger.record_run(self.run_id)
            self._run_recorded = True

    def check_inputs(self) -> None:
        self.s.require_admin_cidr()
        self._importable_key()
        self.b.image_id = self.resolve_image()
        theirs = [v for v in self.ec2.describe_vpcs(Filters=[{"Name": "tag:Env", "Values": [self.s.env]}])["Vpcs"]
                  if tags.PROJECT not in [t["Value"] for t in v.get("Tags", []) if t["Key"] == "Project"]]
        if theirs:
            raise EnvError(f"env name {self.s.env!r} is taken by resources not made by this project "
                           f"({theirs[0]['VpcId']} carries tag Env={self.s.env}); choose another --env")
        self._first_az()    # an instance type no zone offers is said now, before anything is made

    def resolve_image(self) -> str:
        image = self.s.image
        if image.startswith("ssm:"):
            name = image[4:]
            try:
                image = self.t.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
            except ClientError as exc:
                raise EnvError(f"cannot resolve image parameter {name}: {exc.response['Error']['Message']}") from None
            self.say(f"image: {name} -> {image}")
        try:
            found = self.ec2.describe_images(ImageIds=[image])["Images"]
        except ClientError:
            found = []
        if not found:
            raise EnvError(f"image {image} does not exist in {self.s.region}")
        name = found[0].get("Name") or ""
        if AMAZON_LINUX_2.search(self.s.image) or AMAZON_LINUX_2.search(name):
            # Host setup is written for the OS table's other families; AL2 would fail halfway.
            raise EnvError(f"image {image} ({name or self.s.image}) is Amazon Linux 2, which up does not set up: it "
                           f"reached end of life on 2026-06-30, its sshd reads no sshd_config.d drop-in and its "
                           f"MariaDB 5.5 lacks the syntax host setup uses; use the default (Amazon Linux 2023) or "
                           f"another image of a supported OS (Debian, Ubuntu, RHEL-likes)")
        return image

    def _importable_key(self) -> None:
        """EC2's ImportKeyPair takes RSA and ED25519 keys only: another type of --ssh-key is refused
        now, before anything is made, not halfway through the build."""
        from ..hosts.ssh import load_key

        if self.s.ssh_key:
            kind = load_key(self.s.ssh_key, own=False).get_name()
            if kind not in IMPORTABLE_KEYS:
                raise EnvError(f"SSH key file {self.s.ssh_key} is an {'ECDSA' if 'ecdsa' in kind else kind} key; "
                               f"EC2 imports RSA and ED25519 keys only (ImportKeyPair): give one of those "
                               f"(ssh-keygen -t ed25519)")

    def exists(self) -> bool:
        """Anything of this environment already in the account (tagged Project and Env)?"""
        return bool(self._find("describe_vpcs", "Vpcs", None) or [
            i for r in self._find("describe_instances", "Reservations", None,
                                  [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
            for i in r["Instances"]])

    def ensure_key_pair(self) -> None:
        """The key pair is made here and only its public half is imported: the API never holds the
        private key (a kept lab's API, a proxy, a debug log can't leak it)."""
        from ..hosts.ssh import load_key

        name = self.s.key_name
        key_file = self.s.key_file
        existing = self.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
        if existing and not tags.is_ours(existing[0].get("Tags"), self.s.env):
            # Looked up by name (names are unique per region), so our tags are checked here: a pair of
            # that name that someone else made is neither used nor, later, deleted.
            raise EnvError(f"key pair {name} exists but was not made by this project (no tags Project={tags.PROJECT}, "
                           f"Env={self.s.env}); choose another --env")
        if existing:
            if not os.path.lexists(key_file):
                # AWS never hands a private half out: without our copy the pair can't log in, and
                # deleting it would lock out the servers already launched with it.
                raise EnvError(f"key pair {name} exists but its private key {key_file} is missing; pass the key "
                               f"with --ssh-key, or remove the environment (provision.py down --env {self.s.env})")
            self.say(f"key pair {name}: exists")
            return
        if self.s.ssh_key:
            key = load_key(self.s.ssh_key, own=False)      # the user's own key: import its public half only
            source = str(self.s.ssh_key)
        else:
            key, source = own_key(key_file)
        self._call("import key pair", self.ec2.import_key_pair, KeyName=name,
                   PublicKeyMaterial=f"{key.get_name()} {key.get_base64()}".encode(),
                   TagSpecifications=self._tags("key-pair", self.s.env, "key"))
        self._made("key-pair", name)
        self.say(f"key pair {name}: imported the public half of {source}")

    def ensure_vpc(self) -> None:
        found = self._find("describe_vpcs", "Vpcs", "vpc")
        if found:
            self.b.vpc_id = found[0]["VpcId"]
        else:
            vpc = self._call("create VPC", self.ec2.create_vpc, CidrBlock=self.s.vpc_cidr,
                             TagSpecifications=self._tags("vpc", self.s.env, "vpc"))["Vpc"]
            self.b.vpc_id = vpc["VpcId"]
            self._made("vpc", self.b.vpc_id)
            # Not botocore's vpc_available waiter: it has no "retry" for InvalidVpcID.NotFound, which
            # a VPC created a moment ago may still answer (eventual consistency).
            vpc_id = self.b.vpc_id
            wait_for({f"VPC {vpc_id} available": (api_check(
                lambda: self.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["State"] == "available",
                f"VPC {vpc_id} available", consistency.NOT_FOUND_AFTER_CREATE), 120)},
                self.say, delay=self.t.poll_delay, first_delay=self.t.retry_first)
        # DNS support and hostnames: the article's public DNS name (3.4) needs both.
        self._call("enable DNS support", self.ec2.modify_vpc_attribute, VpcId=self.b.vpc_id,
                   EnableDnsSupport={"Value": True})
        self._call("enable DNS hostnames", self.ec2.modify_vpc_attribute, VpcId=self.b.vpc_id,
                   EnableDnsHostnames={"Value": True})
        self.say(f"VPC {self.b.vpc_id} {self.s.vpc_cidr}, DNS support and hostnames on")

    _az: str | None = None

    def _first_az(self) -> str:
        """The first zone by name that is a standard Availability Zone (zone-type availability-zone: not a
        Local or Wavelength Zone an account opted into, which DescribeAvailabilityZones lists too and
        where few types and services exist) and that offers the instance type (not every zone offers
        every type: DescribeInstanceTypeOfferings with LocationType availability-zone)."""
        if self._az:
            return self._az
        zones = self._call("list availability zones", self.ec2.describe_availability_zones, Filters=[
            {"Name": "state", "Values": ["available"]},
            {"Name": "zone-type", "Values": ["availability-zone"]}])["AvailabilityZones"]
        names = sorted(z["ZoneName"] for z in zones if z.get("ZoneType", "availability-zone") == "availability-zone")
        if not names:
            raise EnvError(f"region {self.s.region} lists no available Availability Zone")
        itype = self.s.instance_type
        tried = [itype] + ([FALLBACK_TYPE] if "instance_type" not in self.s.given and itype == DEFAULTS["instance_type"]
                           else [])
        for candidate in tried:
            offered = {zone for zone, _ in self._offerings(candidate, names)}
            for name in names:
                if name in offered:
                    if candidate != itype:
                        self.say(f"instance type {itype} (the default) is not offered in {self.s.region}'s zones; "
                                 f"using {candidate} (pass --instance-type to choose another)")
                    self._az, self.instance_type = name, candidate
                    return name
        size = itype.split(".", 1)[1] if "." in itype else "*"
        # Every offering of these zones, matched here: not every API answers wildcards in filter values.
        others = sorted({t for _, t in self._offerings(None, names) if fnmatch.fnmatchcase(t, f"*.{size}")})
        hint = (f"types of that size offered there: {', '.join(others[:12])}" if others else
                "choose another type (aws ec2 describe-instance-type-offerings --location-type availability-zone)")
        raise EnvError(f"instance type {itype} is not offered in any Availability Zone of {self.s.region} "
                       f"({', '.join(names)}); {hint}; pass --instance-type")

    def _offerings(self, instance_type: str | None, zones: list[str]) -> list[tuple[str, str]]:
        """(zone, instance type) for each type offered in these zones (of `instance_type`, or of any)."""
        found: list[tuple[str, str]] = []
        filters = [{"Name": "location", "Values": zones}]
        if instance_type:
            filters.append({"Name": "instance-type", "Values": [instance_type]})
        pages = self.ec2.get_paginator("describe_instance_type_offerings").paginate(
            LocationType="availability-zone", Filters=filters)
        try:
            for page in pages:
                found += [(o["Location"], o["InstanceType"]) for o in page["InstanceTypeOfferings"]]
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise EnvError(f"list instance type offerings failed: {err.get('Code')}: {err.get('Message')}") from None
        return found

    def ensure_subnets(self) -> None:
        az = None
        for role, cidr in (("public", self.s.public_cidr), ("private", self.s.private_cidr)):
            found = self._find("describe_subnets", "Subnets", role)
            if found:
                sid = found[0]["SubnetId"]
            else:
                az = az or self._first_az()
                sid = self._call(f"create {role} subnet", self.ec2.create_subnet, VpcId=self.b.vpc_id,
                                 CidrBlock=cidr, AvailabilityZone=az,
                                 TagSpecifications=self._tags("subnet", self.s.env, role))["Subnet"]["SubnetId"]
                self._made("subnet", sid)
            setattr(self.b, f"{role}_subnet_id", sid)
            self.say(f"{role} subnet {sid} {cidr}")

    def ensure_internet_gateway(self) -> None:
        found = self._find("describe_internet_gateways", "InternetGateways", "igw")
        if found:
            igw = found[0]
        else:
            igw = self._call("create internet gateway", self.ec2.create_internet_gateway,
                             TagSpecifications=self._tags("internet-gateway", self.s.env, "igw"))["InternetGateway"]
            self._made("internet-gateway", igw["InternetGatewayId"])
        self.b.igw_id = igw["InternetGatewayId"]
        if not any(a["VpcId"] == self.b.vpc_id for a in igw.get("Attachments", [])):
            self._call("attach internet gateway", self.ec2.attach_internet_gateway,
                       InternetGatewayId=self.b.igw_id, VpcId=self.b.vpc_id)
        self.say(f"internet gateway {self.b.igw_id} attached to {self.b.vpc_id}")

    def _ensure_route_table(self, role: str, subnet_id: str, route: dict) -> str:
        found = self._find("describe_route_tables", "RouteTables", role)
        if found:
            rt = found[0]
        else:
            rt = self._call(f"create {role} route table", self.ec2.create_route_table, VpcId=self.b.vpc_id,
                            ClientToken=self._token(role), TagSpecifications=self._tags("route-table", self.s.env, role))["RouteTable"]
            self._made("route-table", rt["RouteTableId"])
        rt_id = rt["RouteTableId"]
        current = next((r for r in rt.get("Routes", []) if r.get("DestinationCidrBlock") == WORLD), None)
        wanted_target = next(iter(route.values()))
        if current is None:
            self._call(f"add default route to {rt_id}", self.ec2.create_route, RouteTableId=rt_id,
                       DestinationCidrBlock=WORLD, **route)
        elif wanted_target not in (current.get("GatewayId"), current.get("NatGatewayId")):
            self._call(f"replace default route of {rt_id}", self.ec2.replace_route, RouteTableId=rt_id,
                       DestinationCidrBlock=WORLD, **route)
        if not any(a.get("SubnetId") == subnet_id for a in rt.get("Associations", [])):
            self._call(f"associate {rt_id}", self.ec2.associate_route_table, RouteTableId=rt_id, SubnetId=subnet_id)
        self.say(f"{role} route table {rt_id}: 0.0.0.0/0 -> {wanted_target}, associated with {subnet_id}")
        return rt_id

    def ensure_public_route_table(self) -> None:
        self.b.public_rt_id = self._ensure_route_table("public-rt", self.b.public_subnet_id,
                                                       {"GatewayId": self.b.igw_id})

    def ensure_private_route_table(self) -> None:
        self.b.private_rt_id = self._ensure_route_table("private-rt", self.b.private_subnet_id,
                                                        {"NatGatewayId": self.b.nat_id})

    def _ensure_group(self, role: str, description: str) -> str:
        found = self._find("describe_security_groups", "SecurityGroups", role,
                           [{"Name": "vpc-id", "Values": [self.b.vpc_id]}])
        if found:
            return found[0]["GroupId"]
        gid = self._call(f"create {role} security group", self.ec2.create_security_group,
                         GroupName=f"{self.s.env}-{role}", Description=description, VpcId=self.b.vpc_id,
                         TagSpecifications=self._tags("security-group", self.s.env, role))["GroupId"]
        self._made("security-group", gid)
        return gid

    def _allow(self, group_id: str, permissions: list[dict]) -> None:
        for perm in permissions:
            try:
                self.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[perm])
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "InvalidPermission.Duplicate":
                    raise EnvError(f"authorize ingress on {group_id} failed: {exc.response['Error']['Message']}") from None

    def ensure_security_groups(self) -> None:
        self.b.web_sg_id = self._ensure_group("web-sg", "web server: SSH from admins, HTTP from anywhere")
        self.b.db_sg_id = self._ensure_group("db-sg", "db server: MariaDB, ICMP and SSH from the web server only")
        self._allow(self.b.web_sg_id, [
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
             "IpRanges": [{"CidrIp": self.s.admin_cidr, "Description": "SSH from admins"}]},
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
             "IpRanges": [{"CidrIp": WORLD, "Description": "HTTP from anywhere"}]},
        ])
        from_web = [{"GroupId": self.b.web_sg_id}]
        self._allow(self.b.db_sg_id, [
            {"IpProtocol": "tcp", "FromPort": 3306, "ToPort": 3306, "UserIdGroupPairs": from_web},
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "UserIdGroupPairs": from_web},
            {"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "UserIdGroupPairs": from_web},
        ])
        self.say(f"security groups: web {self.b.web_sg_id} (22 from {self.s.admin_cidr}, 80 from world), "
                 f"db {self.b.db_sg_id} (22, 3306, icmp from web)")

    def _ensure_eip(self, role: str) -> dict:
        found = self._find("describe_addresses", "Addresses", role)
        if found:
            return found[0]
        eip = self._call(f"allocate {role}", self.ec2.allocate_address, Domain="vpc",
                         TagSpecifications=self._tags("elastic-ip", self.s.env, role))
        self._made("elastic-ip", eip["AllocationId"])
        return eip

    def ensure_nat_gateway(self) -> None:
        found = [n for n in self._find("describe_nat_gateways", "NatGateways", "nat")
                 if n["State"] in ("pending", "available") and tags.is_ours(n.get("Tags"), self.s.env, "nat")]
        if found:
            self.b.nat_id = found[0]["NatGatewayId"]
            self.b.nat_eip = next((a.get("PublicIp", "") for a in found[0].get("NatGatewayAddresses", [])), "")
        else:
            eip = self._ensure_eip("nat-eip")
            nat = self._call("create NAT gateway", self.ec2.create_nat_gateway, SubnetId=self.b.public_subnet_id,
                             AllocationId=eip["AllocationId"], ClientToken=self._token("nat"),
                             TagSpecifications=self._tags("natgateway", self.s.env, "nat"))["NatGateway"]
            self._made("nat-gateway", nat["NatGatewayId"])
            self.b.nat_id = nat["NatGatewayId"]
            self.b.nat_eip = eip["PublicIp"]
        self.say(f"NAT gateway {self.b.nat_id} in {self.b.public_subnet_id}, EIP {self.b.nat_eip} (billed hourly)")

    def _ensure_instance(self, role: str, subnet_id: str, group_id: str) -> str:
        found = [i for r in self._find("describe_instances", "Reservations", role,
                                       [{"Name": "instance-state-name",
                                         "Values": ["pending", "running", "stopping", "stopped"]}])
                 for i in r["Instances"]]
        if found:
            iid = found[0]["InstanceId"]
            if found[0]["State"]["Name"] in ("stopped", "stopping"):
                self._call(f"start {role} instance", self.ec2.start_instances, InstanceIds=[iid])
            self.say(f"{role} instance {iid}: exists")
            return iid
        inst = self._call(f"launch {role} instance", self.ec2.run_instances,
                          ImageId=self.b.image_id, InstanceType=self.instance_type, MinCount=1, MaxCount=1,
                          KeyName=self.s.key_name, ClientToken=self._token(role),
                          # No auto-assigned public IP: the web server's public address is its EIP, as
                          # in the article (and moto would draw a new one at every start otherwise).
                          # DeleteOnTermination: the interface goes with the instance, so the teardown
                          # isn't left with an interface holding the subnet and the security group.
                          NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": [group_id],
                                              "AssociatePublicIpAddress": False, "DeleteOnTermination": True}],
                          MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled"},
                          TagSpecifications=self._tags("instance", self.s.env, role))["Instances"][0]
        self._made("instance", inst["InstanceId"])
        self.say(f"{role} instance {inst['InstanceId']} launched ({self.instance_type}, {self.b.image_id})")
        return inst["InstanceId"]

    def ensure_web_instance(self) -> None:
        self.b.web_id = self._ensure_instance("web", self.b.public_subnet_id, self.b.web_sg_id)

    def ensure_db_instance(self) -> None:
        self.b.db_id = self._ensure_instance("db", self.b.private_subnet_id, self.b.db_sg_id)

    def wait_instances_and_nat(self) -> None:
        # One wait for both: the NAT gateway (minutes on AWS) and the instances progress together.
        wait_all(self.ec2, [
            ("instance_running", f"instances {self.b.web_id} {self.b.db_id} running", 600,
             {"InstanceIds": [self.b.web_id, self.b.db_id]}),
            ("nat_gateway_available", f"NAT gateway {self.b.nat_id} available", 900,
             {"NatGatewayIds": [self.b.nat_id]}),
        ], self.say, delay=self.t.poll_delay, first_delay=self.t.retry_first)

    def ensure_web_eip(self) -> None:
        eip = self._ensure_eip("web-eip")
        if eip.get("InstanceId") != self.b.web_id:
            self._call("associate web EIP", self.ec2.associate_address, AllocationId=eip["AllocationId"],
                       InstanceId=self.b.web_id)
        self.b.web_eip = eip["PublicIp"]
        self.say(f"web Elastic IP {self.b.web_eip} -> {self.b.web_id}")

    # -- the article's last step ----------------------------------------------------------------
    def finish(self) -> list[str]:
        """The article's last step, once the DB's software is in: delete the NAT gateway (billed by the
        hour) and release its Elastic IP. The private route is left as the article leaves it, pointing
        at the deleted gateway (a blackhole). Only the article's own gateway and address (our tags,
        Role nat / nat-eip) are touched. Returns what it did, one line each."""
        done = []
        nats = [n["NatGatewayId"] for n in self._find("describe_nat_gateways", "NatGateways", "nat")
                if n["State"] in ("pending", "available") and tags.is_ours(n.get("Tags"), self.s.env, "nat")]
        for nat_id in nats:
            self._call(f"delete NAT gateway {nat_id}", self.ec2.delete_nat_gateway, NatGatewayId=nat_id)
            done.append(f"deleted NAT gateway {nat_id}")
        if nats:
            # Its address can be released only once the gateway is gone.
            wait_with_waiter(self.ec2, "nat_gateway_deleted", f"NAT gateway {', '.join(nats)} deleted", 900, self.say,
                             delay=self.t.poll_delay, first_delay=self.t.retry_first, NatGatewayIds=nats)
        for eip in self._find("describe_addresses", "Addresses", "nat-eip"):
            if not tags.is_ours(eip.get("Tags"), self.s.env, "nat-eip"):
                continue
            # Right after its gateway is deleted EC2 may still refuse (InvalidIPAddress.InUse,
            # AuthFailure, InvalidNetworkInterfaceID.NotFound): retried within the target's deadline.
            try:
                with self.t.retries.waiting_out_dependencies(self.t.dependency_timeout):
                    kinds.release_address(self.t, eip["AllocationId"])
            except ClientError as exc:
                err = exc.response.get("Error", {})
                raise EnvError(f"release Elastic IP {eip['PublicIp']} failed: {err.get('Code')}: "
                               f"{err.get('Message')}") from None
            done.append(f"released Elastic IP {eip['PublicIp']} ({eip['AllocationId']})")
        self.say("the article's last step: " + ("; ".join(done) if done else "no NAT gateway left to delete"))
        return done

    def last_step_left(self) -> list[tuple[str, str]]:
        """(kind, id) of what the article's last step removes that is still there: our NAT gateway
        (unless deleting or deleted) and its Elastic IP. Both bill by the hour."""
        left = [("nat-gateway", n["NatGatewayId"]) for n in self._find("describe_nat_gateways", "NatGateways", "nat")
                if n["State"] in ("pending", "available") and tags.is_ours(n.get("Tags"), self.s.env, "nat")]
        left += [("elastic-ip", a["AllocationId"]) for a in self._find("describe_addresses", "Addresses", "nat-eip")
                 if tags.is_ours(a.get("Tags"), self.s.env, "nat-eip")]
        return left

    def unfinished_last_step(self) -> bool:
        """Did the article's last step begin and not end? The build it follows is complete (both
        servers and the private route table, whose default route points at a NAT gateway that is no
        longer live), and our NAT gateway's Elastic IP is still allocated."""
        env = self.s.env
        if not any(tags.is_ours(a.get("Tags"), env, "nat-eip") for a in self._find("describe_addresses", "Addresses",
                                                                                 "nat-eip")):
            return False
        live = {n["NatGatewayId"] for n in self._find("describe_nat_gateways", "NatGateways", "nat")
                if n["State"] in ("pending", "available") and tags.is_ours(n.get("Tags"), env, "nat")}
        if live:
            return False
        tables = [t for t in self._find("describe_route_tables", "RouteTables", "private-rt")
                  if tags.is_ours(t.get("Tags"), env, "private-rt")]
        default = next((r for t in tables for r in t.get("Routes", []) if r.get("DestinationCidrBlock") == WORLD), None)
        servers = [i for r in self._find("describe_instances", "Reservations", None,
                                         [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping",
                                                                                     "stopped"]}])
                   for i in r["Instances"]]
        roles = {tags.value(i.get("Tags"), "Role") for i in servers if tags.is_ours(i.get("Tags"), env)}
        return bool(default and default.get("NatGatewayId") and {"web", "db"} <= roles)


KEY_MARK = ".twotier-key"     # the public half of the key file we wrote: proof that the file is ours


def own_key(path: Path):
    """Our key at path: the one we wrote earlier (its public half matches our mark), or a new one.
    A file there that we did not write is the user's: refused, never read as ours nor overwritten.
    Both files are read and written as every file of a state folder is (common/files.py)."""
    from ..hosts.ssh import load_key

    mark = path.parent / KEY_MARK
    if os.path.lexists(path):
        try:
            mark_text = files.read_text(mark)
        except EnvError:
            mark_text = None
        if os.path.islink(path) or mark_text is None:
            raise EnvError(f"{path} already exists and was not written by this project; refusing to use or "
                           "overwrite it (choose another --state-dir, or pass it with --ssh-key if it is the key to use)")
        key = load_key(path, own=True)
        if mark_text.strip() != f"{key.get_name()} {key.get_base64()}":
            raise EnvError(f"{path} is not the key this project wrote there; refusing to use or overwrite it")
        return key, f"this environment's key {path}"
    key = write_new_key(path)
    files.write_private(mark, f"{key.get_name()} {key.get_base64()}\n")
    return key, f"a new key saved to {path} (0600)"


def write_new_key(path: Path):
    """A new ed25519 key written to path, 0600 from the first byte, never over an existing file
    nor through a symlink (the state directory may be one the user shares with other files)."""
    import paramiko
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                    serialization.NoEncryption())
    try:
        files.create_private(path, pem)
    except FileExistsError:
        raise EnvError(f"{path} already exists and is not this environment's key; refusing to overwrite it "
                       "(choose another --state-dir, or pass it with --ssh-key if it is the key to use)") from None
    return paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))
