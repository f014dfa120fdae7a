"""The drift catalogue: misconfigurations of a good environment, applied through the AWS API (or
on a host, for host-only drifts) and reverted the same way.

A check that has never failed proves nothing: each check in tests/ names the drifts it must fail
on (its `fails_on` marker), and the project's self-tests apply every drift to a good environment
and compare. This module knows nothing of the checks. `revert` undoes a drift, so one kept
environment can show many drifts in turn. Every function takes the Environment.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from common import files

from .. import consistency
from ..errors import EnvError
from ..install import provision_command
from ..waits import wait_with_waiter

WORLD = "0.0.0.0/0"
WORLD6 = "::/0"


@dataclass(frozen=True)
class Drift:
    name: str
    description: str
    apply: Callable
    revert: Callable | None
    needs_hosts: bool = False      # applied on a host, so only where hosts exist


def _perm(protocol, port, cidr=None, group=None):
    p = {"IpProtocol": protocol, "FromPort": port if port is not None else -1,
         "ToPort": port if port is not None else -1}
    if cidr and ":" in cidr:
        p["Ipv6Ranges"] = [{"CidrIpv6": cidr}]
    elif cidr:
        p["IpRanges"] = [{"CidrIp": cidr}]
    if group:
        p["UserIdGroupPairs"] = [{"GroupId": group}]
    return p


def _gone(resource_id: str) -> str:
    """A drift deleted something this process may have just created: "not found" now means gone,
    so a teardown in the same run doesn't wait for it to show up."""
    consistency.RECENT.gone(resource_id)
    return resource_id


def _fresh(env, call):
    """call() again while EC2 still says an ID this drift just created does not exist (eventual
    consistency: an Elastic IP right after AllocateAddress)."""
    t = env.target
    return consistency.retry_not_found(call, t.consistency_timeout, first=t.retry_first, cap=t.poll_delay)


def _made(env, kind: str, resource_id: str) -> str:
    """A drift made this in an environment of ours: into its ledger, so `down` removes it as ours."""
    from .ledger import Ledger

    Ledger(env.settings.state_dir).record(kind, resource_id)
    return resource_id


def _web_group(env) -> str:
    return env.snapshot().web.group_ids[0]


def _db_group(env) -> str:
    return env.snapshot().db.group_ids[0]


def _public_rt(env) -> str:
    s = env.snapshot()
    return s.route_table_of(s.public_subnet).id


def _private_rt(env) -> str:
    s = env.snapshot()
    return s.route_table_of(s.private_subnet).id


def _host(env, role: str, command: str) -> None:
    result = env.connections().execute(role, command)
    if result.rc != 0:
        raise EnvError(f"drift command on {role} failed: {command}: {result.stderr.strip()}")


def _os(env, role: str):
    return env.connections().os_family(role)


def _web_service(env) -> str:
    return _os(env, "web").web_service


def _db_service(env) -> str:
    return _os(env, "db").db_service


# ---------------------------------------------------------------------------------------------
def _remove_public_default(env):
    env.ec2.delete_route(RouteTableId=_public_rt(env), DestinationCidrBlock=WORLD)


def _restore_public_default(env):
    igw = env.snapshot().attached_igw
    env.ec2.create_route(RouteTableId=_public_rt(env), DestinationCidrBlock=WORLD, GatewayId=igw.id)


def _detach_igw(env):
    s = env.snapshot()
    env.ec2.detach_internet_gateway(InternetGatewayId=s.attached_igw.id, VpcId=s.vpc.id)


def _attach_igw(env):
    s = env.snapshot()
    igw = next(g for g in s.internet_gateways if not g.attachments)
    env.ec2.attach_internet_gateway(InternetGatewayId=igw.id, VpcId=s.vpc.id)


def _private_to_igw(env):
    env.ec2.replace_route(RouteTableId=_private_rt(env), DestinationCidrBlock=WORLD,
                                 GatewayId=env.snapshot().attached_igw.id)


def _private_to_nat(env):
    """Back to the article's private route: to the NAT gateway while it lives; after the article's
    last step (no NAT gateway) no way out at all."""
    nats = env.snapshot().live_nat_gateways
    if nats:
        env.ec2.replace_route(RouteTableId=_private_rt(env), DestinationCidrBlock=WORLD, NatGatewayId=nats[0].id)
    else:
        _delete_private_default(env)


def _delete_private_default(env):
    env.ec2.delete_route(RouteTableId=_private_rt(env), DestinationCidrBlock=WORLD)


def _restore_private_default(env):
    nats = env.snapshot().live_nat_gateways
    if nats:
        env.ec2.create_route(RouteTableId=_private_rt(env), DestinationCidrBlock=WORLD, NatGatewayId=nats[0].id)


def _sg(action, group_fn, *perm):
    def do(env):
        getattr(env.ec2, f"{action}_security_group_ingress")(GroupId=group_fn(env), IpPermissions=[_perm(*perm)])
    return do


def _sg_from_web(action, protocol, port):
    def do(env):
        web = _web_group(env)
        getattr(env.ec2, f"{action}_security_group_ingress")(
            GroupId=_db_group(env), IpPermissions=[_perm(protocol, port, group=web)])
    return do


def _disassociate_web_eip(env):
    eip = env.snapshot().eip_of(env.snapshot().web)
    env.ec2.disassociate_address(AssociationId=eip.association_id)


def _associate_web_eip(env):
    s = env.snapshot()
    eip = next(a for a in s.addresses if not a.association_id)
    env.ec2.associate_address(AllocationId=eip.allocation_id, InstanceId=s.web.id)


def _db_public_ip(env):
    from . import tags

    ec2 = env.ec2
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.spec("elastic-ip", env.settings.env, "drift-eip"))
    _made(env, "elastic-ip", eip["AllocationId"])
    db = env.snapshot().db.id
    _fresh(env, lambda: ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=db))


def _vpc_attr(attribute: str, value: bool):
    def do(env):
        env.ec2.modify_vpc_attribute(VpcId=env.snapshot().vpc.id, **{attribute: {"Value": value}})
    return do


def _delete_nat(env):
    nat = env.snapshot().live_nat_gateways[0]
    env.ec2.delete_nat_gateway(NatGatewayId=_gone(nat.id))
    wait_with_waiter(env.ec2, "nat_gateway_deleted", f"NAT gateway {nat.id} deleted", 900, lambda _: None,
                     NatGatewayIds=[nat.id])


def _imds(tokens: str):
    def do(env):
        for inst in (env.snapshot().web, env.snapshot().db):
            env.ec2.modify_instance_metadata_options(InstanceId=inst.id, HttpTokens=tokens)
    return do


def _web_groups(with_default: bool):
    def do(env):
        s = env.snapshot()
        own = [g for g in s.web.group_ids if s.security_groups[g].name != "default"]
        default = [g.id for g in s.security_groups.values() if g.name == "default"]
        env.ec2.modify_instance_attribute(InstanceId=s.web.id, Groups=own + (default if with_default else []))
    return do


def _stop_web(env):
    env.stop("web", progress=lambda _: None)


def _start_web(env):
    env.start("web", progress=lambda _: None)


def _delete_key_pair(env):
    env.ec2.delete_key_pair(KeyName=_gone(env.snapshot().web.key_name or ""))


def _foreign_subnet(env):
    # Something the environment did not create sits in its VPC: teardown must not delete it, so
    # the VPC stays, and 5.1 must say so rather than claim a clean account.
    import ipaddress

    vpc = ipaddress.ip_network(env.snapshot().vpc.cidr)
    used = [ipaddress.ip_network(s.cidr) for s in env.snapshot().subnets.values()]
    free = next(n for n in vpc.subnets(new_prefix=max(vpc.prefixlen + 2, 24)) if not any(n.overlaps(u) for u in used))
    env.ec2.create_subnet(VpcId=env.snapshot().vpc.id, CidrBlock=str(free))


def _expose_db(env):
    from . import tags

    ec2 = env.ec2
    _private_to_igw(env)
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.spec("elastic-ip", env.settings.env, "drift-eip"))
    _made(env, "elastic-ip", eip["AllocationId"])
    db = env.snapshot().db.id
    _fresh(env, lambda: ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=db))
    for port in (22, 3306):
        _sg("authorize", _db_group, "tcp", port, WORLD)(env)


def _unexpose_db(env):
    ec2 = env.ec2
    for port in (22, 3306):
        _sg("revoke", _db_group, "tcp", port, WORLD)(env)
    for a in env.snapshot().addresses:
        if a.instance_id == env.snapshot().db.id:
            ec2.disassociate_address(AssociationId=a.association_id)
            ec2.release_address(AllocationId=_gone(a.allocation_id))
    _private_to_nat(env)


def _public_cidr(env) -> str:
    s = env.snapshot()
    return s.public_subnet.cidr


def _sg_public_subnet(action):
    def do(env):
        _sg(action, _db_group, "tcp", 3306, _public_cidr(env))(env)
    return do


def _extra_nat(env):
    from . import tags

    ec2, s = env.ec2, env.snapshot()
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.spec("elastic-ip", env.settings.env,
                                                                         "drift-nat-eip"))
    _made(env, "elastic-ip", eip["AllocationId"])
    nat = _fresh(env, lambda: ec2.create_nat_gateway(
        SubnetId=s.public_subnet.id, AllocationId=eip["AllocationId"],
        TagSpecifications=tags.spec("natgateway", env.settings.env, "drift-nat")))
    _made(env, "nat-gateway", nat["NatGateway"]["NatGatewayId"])
    wait_with_waiter(ec2, "nat_gateway_available", "the drift's NAT gateway available", 900, lambda _: None,
                     NatGatewayIds=[nat["NatGateway"]["NatGatewayId"]])


def _remove_extra_nat(env):
    from . import tags

    ec2 = env.ec2
    for n in ec2.describe_nat_gateways(Filters=tags.env_filter(env.settings.env, "drift-nat"))["NatGateways"]:
        if n["State"] in ("pending", "available") and tags.is_ours(n.get("Tags"), env.settings.env, "drift-nat"):
            ec2.delete_nat_gateway(NatGatewayId=_gone(n["NatGatewayId"]))
            wait_with_waiter(ec2, "nat_gateway_deleted", "the drift's NAT gateway deleted", 900, lambda _: None,
                             NatGatewayIds=[n["NatGatewayId"]])
    for a in ec2.describe_addresses(Filters=tags.env_filter(env.settings.env, "drift-nat-eip"))["Addresses"]:
        if tags.is_ours(a.get("Tags"), env.settings.env, "drift-nat-eip"):
            ec2.release_address(AllocationId=_gone(a["AllocationId"]))


def _retag_nat_eip(old: str, new: str):
    # The article's last step releases the Elastic IP tagged Role=nat-eip; retagged, it is left behind.
    def do(env):
        from . import tags

        for a in env.ec2.describe_addresses(Filters=tags.env_filter(env.settings.env, old))["Addresses"]:
            if tags.is_ours(a.get("Tags"), env.settings.env, old):
                env.ec2.create_tags(Resources=[a["AllocationId"]], Tags=[{"Key": "Role", "Value": new}])
    return do


def _replace_web_key(env):
    """Only a key of the drift's own is authorized on the web server; the environment's key is refused.
    The drift's key (kept in the state directory) is how the revert gets back in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = env.settings.state_dir / DRIFT_KEY
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                    serialization.NoEncryption())
    files.write_private(path, pem)
    key = _load_drift_key(path)
    line = f"{key.get_name()} {key.get_base64()} twotier-drift"
    _host(env, "web", f"cp ~/.ssh/authorized_keys ~/.ssh/authorized_keys.before-drift && "
                      f"echo '{line}' > ~/.ssh/authorized_keys")


def _restore_web_key(env):
    from ..hosts.ssh import Connections

    snap = env.snapshot()
    conns = Connections(env.target, env.settings, snap.web.public_ip or "", snap.db.private_ip or "",
                        _load_drift_key(env.settings.state_dir / DRIFT_KEY))
    try:
        result = conns.execute("web", "mv ~/.ssh/authorized_keys.before-drift ~/.ssh/authorized_keys")
    finally:
        conns.close()
    if result.rc != 0:
        raise EnvError(f"could not restore the web server's authorized key: {result.stderr.strip()}")
    files.remove(env.settings.state_dir / DRIFT_KEY)


def _load_drift_key(path):
    from ..hosts.ssh import load_key

    return load_key(path, own=True)


DRIFT_KEY = "drift-web-key"


def _remove(env) -> str:
    return _os(env, "web").remove


def _sshd_drop_in(env, role: str, line: str | None) -> None:
    # sshd takes the first value it reads, and 00- sorts before every other drop-in.
    path = "/etc/ssh/sshd_config.d/00-drift.conf"
    write = f"echo '{line}' | sudo tee {path} >/dev/null" if line else f"sudo rm -f {path}"
    _host(env, role, f"{write} && sudo systemctl reload ssh 2>/dev/null || sudo systemctl reload sshd")


def _sshd_setting(role: str, line: str) -> tuple[Callable, Callable]:
    """(apply, revert) for a drift that turns one sshd setting on through a drop-in."""
    return (lambda e: _sshd_drop_in(e, role, line)), (lambda e: _sshd_drop_in(e, role, None))


def _relaunch_db(env, subnet_id: str) -> None:
    """The DB server terminated and launched again, as the provisioner launches it, into `subnet_id`."""
    from . import tags

    ec2 = env.ec2
    s = env.snapshot()
    ec2.terminate_instances(InstanceIds=[_gone(s.db.id)])
    wait_with_waiter(ec2, "instance_terminated", f"the DB server {s.db.id} terminated", 600, lambda _: None,
                     InstanceIds=[s.db.id])
    # Launched as the provisioner launches (no public address; the interface goes with the instance).
    new = _fresh(env, lambda: ec2.run_instances(
        ImageId=s.db.image_id, InstanceType=s.db.instance_type, MinCount=1, MaxCount=1, KeyName=s.db.key_name,
        MetadataOptions={"HttpTokens": "required"},
        NetworkInterfaces=[{"DeviceIndex": 0, "SubnetId": subnet_id, "Groups": list(s.db.group_ids),
                            "AssociatePublicIpAddress": False, "DeleteOnTermination": True}],
        TagSpecifications=tags.spec("instance", env.settings.env, "db")))
    _made(env, "instance", new["Instances"][0]["InstanceId"])


def _db_in_public_subnet(env):
    _relaunch_db(env, env.snapshot().public_subnet.id)


def _private_subnet_replaced(env):
    """Another private subnet (the next free /24 of the VPC) on the private route table, the DB server
    relaunched into it, the article's private subnet deleted: what was built with (or stated as)
    --private-cidr is gone, though the new subnet is private by its routes."""
    from . import tags

    ec2, s = env.ec2, env.snapshot()
    old, table = s.private_subnet, s.route_table_of(s.private_subnet)
    used = [ipaddress.ip_network(x.cidr) for x in s.subnets.values()]
    cidr = next(str(n) for n in ipaddress.ip_network(s.vpc.cidr).subnets(new_prefix=24)
                if not any(n.overlaps(u) for u in used))
    new = ec2.create_subnet(VpcId=s.vpc.id, CidrBlock=cidr, AvailabilityZone=old.az,
                            TagSpecifications=tags.spec("subnet", env.settings.env, "drift-private-subnet"))
    subnet_id = _made(env, "subnet", new["Subnet"]["SubnetId"])
    _fresh(env, lambda: ec2.associate_route_table(RouteTableId=table.id, SubnetId=subnet_id))
    _relaunch_db(env, subnet_id)
    # The terminated DB's interface holds the old subnet for a while (DependencyViolation).
    consistency.retry_codes(lambda: ec2.delete_subnet(SubnetId=_gone(old.id)), consistency.DEPENDENCY,
                            env.target.dependency_timeout, first=env.target.retry_first, cap=env.target.poll_delay,
                            what=f"delete subnet {old.id}")


CATALOGUE: list[Drift] = [
    Drift("vpc-dns-support-off", "the VPC's DNS support is turned off",
          _vpc_attr("EnableDnsSupport", False), _vpc_attr("EnableDnsSupport", True)),
    Drift("db-in-public-subnet", "the DB server is relaunched into the public subnet", _db_in_public_subnet, None),
    Drift("private-subnet-replaced", "the private subnet is replaced by one with another CIDR, the DB server "
          "relaunched into it", _private_subnet_replaced, None),
    Drift("igw-detached", "the internet gateway is detached from the VPC", _detach_igw, _attach_igw),
    Drift("public-default-route-removed", "the public route table lost its 0.0.0.0/0 route",
          _remove_public_default, _restore_public_default),
    Drift("private-default-to-igw", "the private route table sends 0.0.0.0/0 to the internet gateway",
          _private_to_igw, _private_to_nat),
    Drift("private-nat-route-deleted", "the private route table lost its route to the NAT gateway",
          _delete_private_default, _restore_private_default),
    Drift("nat-gateway-deleted", "the NAT gateway is deleted", _delete_nat, None),
    Drift("web-stopped", "the web server is stopped", _stop_web, _start_web),
    Drift("web-eip-disassociated", "the web server's Elastic IP is disassociated",
          _disassociate_web_eip, _associate_web_eip),
    Drift("key-pair-deleted", "the environment's key pair is deleted from the account", _delete_key_pair, None),
    Drift("web-ssh-revoked", "the web server's SSH rule is revoked",
          lambda e: _sg("revoke", _web_group, "tcp", 22, e.settings.admin_cidr)(e),
          lambda e: _sg("authorize", _web_group, "tcp", 22, e.settings.admin_cidr)(e)),
    Drift("http-rule-removed", "port 80 is removed from the web server's group",
          _sg("revoke", _web_group, "tcp", 80, WORLD), _sg("authorize", _web_group, "tcp", 80, WORLD)),
    Drift("dns-hostnames-off", "the VPC's DNS hostnames are turned off",
          _vpc_attr("EnableDnsHostnames", False), _vpc_attr("EnableDnsHostnames", True)),
    Drift("db-public-ip", "the DB server is given a public (Elastic) IP", _db_public_ip, None),
    Drift("db-3306-open-to-world", "tcp/3306 on the DB's group is opened to 0.0.0.0/0",
          _sg("authorize", _db_group, "tcp", 3306, WORLD), _sg("revoke", _db_group, "tcp", 3306, WORLD)),
    Drift("db-icmp-revoked", "ICMP from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "icmp", None), _sg_from_web("authorize", "icmp", None)),
    Drift("db-3306-revoked", "tcp/3306 from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "tcp", 3306), _sg_from_web("authorize", "tcp", 3306)),
    Drift("db-ssh-open-to-world", "tcp/22 on the DB's group is opened to 0.0.0.0/0",
          _sg("authorize", _db_group, "tcp", 22, WORLD), _sg("revoke", _db_group, "tcp", 22, WORLD)),
    Drift("web-ssh-open-to-world", "tcp/22 on the web server's group is opened to 0.0.0.0/0",
          _sg("authorize", _web_group, "tcp", 22, WORLD), _sg("revoke", _web_group, "tcp", 22, WORLD)),
    Drift("imdsv1-allowed", "both servers accept IMDSv1 (tokens optional)", _imds("optional"), _imds("required")),
    Drift("default-sg-in-use", "the VPC's default security group is added to the web server",
          _web_groups(True), _web_groups(False)),
    Drift("foreign-subnet-blocks-teardown", "a subnet the environment did not create sits in its VPC",
          _foreign_subnet, None),
    Drift("db-ssh-revoked", "SSH from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "tcp", 22), _sg_from_web("authorize", "tcp", 22)),
    Drift("db-reachable-from-internet", "the DB gets an Elastic IP, a route to the internet gateway and "
          "SSH and MariaDB open to the world", _expose_db, _unexpose_db),
    Drift("db-3306-open-to-ipv6-world", "tcp/3306 on the DB's group is opened to ::/0",
          _sg("authorize", _db_group, "tcp", 3306, WORLD6), _sg("revoke", _db_group, "tcp", 3306, WORLD6)),
    Drift("db-ssh-open-to-ipv6-world", "tcp/22 on the DB's group is opened to ::/0",
          _sg("authorize", _db_group, "tcp", 22, WORLD6), _sg("revoke", _db_group, "tcp", 22, WORLD6)),
    Drift("db-3306-from-public-subnet", "tcp/3306 on the DB's group is opened to the whole public subnet",
          _sg_public_subnet("authorize"), _sg_public_subnet("revoke")),
    # The article's last step (the NAT gateway deleted, its Elastic IP released) left undone in part.
    Drift("extra-nat-gateway", "a second NAT gateway with its own Elastic IP runs in the public subnet",
          _extra_nat, _remove_extra_nat),
    Drift("nat-eip-not-released", "the NAT gateway's Elastic IP is kept when the NAT gateway is deleted",
          _retag_nat_eip("nat-eip", "nat-eip-kept"), _retag_nat_eip("nat-eip-kept", "nat-eip")),
    # Host-only drifts: applied on the hosts, so only where hosts exist.
    Drift("apache-removed", "the Apache package is removed from the web server",
          lambda e: _host(e, "web", f"{_remove(e)} {_os(e, 'web').web_package}"),
          lambda e: _host(e, "web", f"{_os(e, 'web').install} {_os(e, 'web').web_package}"), needs_hosts=True),
    Drift("sshd-password-login-on", "the web server's sshd accepts passwords",
          *_sshd_setting("web", "PasswordAuthentication yes"), needs_hosts=True),
    Drift("sshd-root-login-on", "the DB server's sshd lets root log in",
          *_sshd_setting("db", "PermitRootLogin yes"), needs_hosts=True),
    Drift("sshd-db-password-login-on", "the DB server's sshd accepts passwords",
          *_sshd_setting("db", "PasswordAuthentication yes"), needs_hosts=True),
    Drift("sshd-web-root-login-on", "the web server's sshd lets root log in",
          *_sshd_setting("web", "PermitRootLogin yes"), needs_hosts=True),
    Drift("web-key-replaced", "the web server no longer accepts the environment's key (another key replaced it)",
          _replace_web_key, _restore_web_key, needs_hosts=True),
    Drift("site-forbidden", "the web server's document root is unreadable to Apache (it answers 403 Forbidden)",
          lambda e: _host(e, "web", f"sudo chmod 700 {_os(e, 'web').web_docroot}"),
          lambda e: _host(e, "web", f"sudo chmod 755 {_os(e, 'web').web_docroot}"), needs_hosts=True),
    Drift("apache-disabled", "Apache is disabled (it would not come back after a restart)",
          lambda e: _host(e, "web", f"sudo systemctl disable {_web_service(e)}"),
          lambda e: _host(e, "web", f"sudo systemctl enable --now {_web_service(e)}"), needs_hosts=True),
    Drift("mariadb-stopped", "MariaDB is stopped",
          lambda e: _host(e, "db", f"sudo systemctl stop {_db_service(e)}"),
          lambda e: _host(e, "db", f"sudo systemctl start {_db_service(e)}"), needs_hosts=True),
]
BY_NAME = {d.name: d for d in CATALOGUE}


def get(name: str) -> Drift:
    try:
        return BY_NAME[name]
    except KeyError:
        raise EnvError(f"unknown drift {name!r}; `{provision_command('drifts')}` lists them") from None


def apply_drift(name: str, env) -> Drift:
    drift = get(name)
    if drift.needs_hosts and not env.target.host_access:
        raise EnvError(f"drift {name} changes a host; target {env.target.name} has no hosts")
    drift.apply(env)
    env.changed()
    return drift


def revert_drift(name: str, env) -> Drift:
    drift = get(name)
    if drift.revert is None:
        raise EnvError(f"drift {name} can't be reverted in place; rebuild with provision.py down/up")
    drift.revert(env)
    env.changed()
    return drift
