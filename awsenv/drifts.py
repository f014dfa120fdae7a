"""The drift catalogue: misconfigurations of a good environment, each with the checks it must fail.

A check that has never failed proves nothing. Each drift is applied through the AWS API (or on a
host, for host-only drifts) and names exactly which checks fail because of it: `api` on every
target, `host` in addition where hosts are reachable. The project's own tests apply each one and
compare. `revert` undoes it, so one kept environment can show many drifts in turn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import EnvError
from .os_table import os_family
from .ssh import run as ssh_run

WORLD = "0.0.0.0/0"

# Host checks that need an SSH session on the web server (the DB's goes through it).
WEB_SSH = {
    "test_ssh_with_environment_key_logs_in", "test_apache_installed", "test_apache_running_and_enabled",
    "test_web_server_pings_db", "test_ssh_to_db_through_web_server", "test_db_egress_leaves_through_nat_eip",
    "test_mariadb_installed_running_enabled_listening", "test_web_server_gets_mariadb_greeting",
    "test_sshd_hardening[passwordauthentication-no-web]", "test_sshd_hardening[passwordauthentication-no-db]",
    "test_sshd_hardening[permitrootlogin-no-web]", "test_sshd_hardening[permitrootlogin-no-db]",
}
WEB_HTTP = {"test_http_get_to_elastic_ip_answered_by_apache", "test_public_dns_name_resolves_and_site_answers"}
# Host checks that need an SSH session on the DB server.
DB_OVER_SSH = {
    "test_ssh_to_db_through_web_server", "test_db_egress_leaves_through_nat_eip",
    "test_mariadb_installed_running_enabled_listening",
    "test_sshd_hardening[passwordauthentication-no-db]", "test_sshd_hardening[permitrootlogin-no-db]",
}
# The web server unreachable from the internet: every check through it, and 2.3's "site answers again".
WEB_DOWN = WEB_SSH | WEB_HTTP | {"test_elastic_ip_survives_stop_and_start"}


@dataclass(frozen=True)
class Drift:
    name: str
    description: str
    apply: Callable
    revert: Callable | None
    api: frozenset[str]
    host: frozenset[str] = field(default_factory=frozenset)
    needs_hosts: bool = False      # applied on a host, so only where hosts exist

    def expected(self, host_access: bool) -> set[str]:
        return set(self.api) | (set(self.host) if host_access else set())


def _perm(protocol, port, cidr=None, group=None):
    p = {"IpProtocol": protocol, "FromPort": port if port is not None else -1,
         "ToPort": port if port is not None else -1}
    if cidr:
        p["IpRanges"] = [{"CidrIp": cidr}]
    if group:
        p["UserIdGroupPairs"] = [{"GroupId": group}]
    return p


def _web_group(run) -> str:
    return run.snapshot().web.group_ids[0]


def _db_group(run) -> str:
    return run.snapshot().db.group_ids[0]


def _public_rt(run) -> str:
    s = run.snapshot()
    return s.route_table_of(s.public_subnet).id


def _private_rt(run) -> str:
    s = run.snapshot()
    return s.route_table_of(s.private_subnet).id


def _host(run, role: str, command: str) -> None:
    client = getattr(run.connections(), role)()
    result = ssh_run(client, command)
    if result.rc != 0:
        raise EnvError(f"drift command on {role} failed: {command}: {result.stderr.strip()}")


def _web_service(run) -> str:
    return os_family(run.settings.os_family).web_service


def _db_service(run) -> str:
    return os_family(run.settings.os_family).db_service


# ---------------------------------------------------------------------------------------------
def _remove_public_default(run):
    run.target.ec2.delete_route(RouteTableId=_public_rt(run), DestinationCidrBlock=WORLD)


def _restore_public_default(run):
    igw = run.snapshot().attached_igw
    run.target.ec2.create_route(RouteTableId=_public_rt(run), DestinationCidrBlock=WORLD, GatewayId=igw.id)


def _detach_igw(run):
    s = run.snapshot()
    run.target.ec2.detach_internet_gateway(InternetGatewayId=s.attached_igw.id, VpcId=s.vpc.id)


def _attach_igw(run):
    s = run.snapshot()
    igw = next(g for g in s.internet_gateways if not g.attachments)
    run.target.ec2.attach_internet_gateway(InternetGatewayId=igw.id, VpcId=s.vpc.id)


def _private_to_igw(run):
    run.target.ec2.replace_route(RouteTableId=_private_rt(run), DestinationCidrBlock=WORLD,
                                 GatewayId=run.snapshot().attached_igw.id)


def _private_to_nat(run):
    nat = run.snapshot().live_nat_gateways[0]
    run.target.ec2.replace_route(RouteTableId=_private_rt(run), DestinationCidrBlock=WORLD, NatGatewayId=nat.id)


def _delete_private_default(run):
    run.target.ec2.delete_route(RouteTableId=_private_rt(run), DestinationCidrBlock=WORLD)


def _restore_private_default(run):
    nat = run.snapshot().live_nat_gateways[0]
    run.target.ec2.create_route(RouteTableId=_private_rt(run), DestinationCidrBlock=WORLD, NatGatewayId=nat.id)


def _sg(action, group_fn, *perm):
    def do(run):
        getattr(run.target.ec2, f"{action}_security_group_ingress")(GroupId=group_fn(run), IpPermissions=[_perm(*perm)])
    return do


def _sg_from_web(action, protocol, port):
    def do(run):
        web = _web_group(run)
        getattr(run.target.ec2, f"{action}_security_group_ingress")(
            GroupId=_db_group(run), IpPermissions=[_perm(protocol, port, group=web)])
    return do


def _disassociate_web_eip(run):
    eip = run.snapshot().eip_of(run.snapshot().web)
    run.target.ec2.disassociate_address(AssociationId=eip.association_id)


def _associate_web_eip(run):
    s = run.snapshot()
    eip = next(a for a in s.addresses if not a.association_id)
    run.target.ec2.associate_address(AllocationId=eip.allocation_id, InstanceId=s.web.id)


def _db_public_ip(run):
    from . import tags

    ec2 = run.target.ec2
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.spec("elastic-ip", run.settings.env, "drift-eip"))
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=run.snapshot().db.id)


def _vpc_attr(attribute: str, value: bool):
    def do(run):
        run.target.ec2.modify_vpc_attribute(VpcId=run.snapshot().vpc.id, **{attribute: {"Value": value}})
    return do


def _delete_nat(run):
    ec2 = run.target.ec2
    nat = run.snapshot().live_nat_gateways[0]
    ec2.delete_nat_gateway(NatGatewayId=nat.id)
    ec2.get_waiter("nat_gateway_deleted").wait(NatGatewayIds=[nat.id], WaiterConfig={"Delay": 5, "MaxAttempts": 180})


def _imds(tokens: str):
    def do(run):
        for inst in (run.snapshot().web, run.snapshot().db):
            run.target.ec2.modify_instance_metadata_options(InstanceId=inst.id, HttpTokens=tokens)
    return do


def _web_groups(with_default: bool):
    def do(run):
        s = run.snapshot()
        own = [g for g in s.web.group_ids if s.security_groups[g].name != "default"]
        default = [g.id for g in s.security_groups.values() if g.name == "default"]
        run.target.ec2.modify_instance_attribute(InstanceId=s.web.id, Groups=own + (default if with_default else []))
    return do


def _stop_web(run):
    ec2 = run.target.ec2
    ec2.stop_instances(InstanceIds=[run.snapshot().web.id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[run.snapshot().web.id])


def _start_web(run):
    ec2 = run.target.ec2
    ec2.start_instances(InstanceIds=[run.snapshot().web.id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[run.snapshot().web.id])


def _delete_key_pair(run):
    run.target.ec2.delete_key_pair(KeyName=run.snapshot().web.key_name)


def _foreign_subnet(run):
    # Something the environment did not create sits in its VPC: teardown must not delete it, so
    # the VPC stays, and 5.1 must say so rather than claim a clean account.
    import ipaddress

    vpc = ipaddress.ip_network(run.snapshot().vpc.cidr)
    used = [ipaddress.ip_network(s.cidr) for s in run.snapshot().subnets.values()]
    free = next(n for n in vpc.subnets(new_prefix=max(vpc.prefixlen + 2, 24)) if not any(n.overlaps(u) for u in used))
    run.target.ec2.create_subnet(VpcId=run.snapshot().vpc.id, CidrBlock=str(free))


def _expose_db(run):
    from . import tags

    ec2 = run.target.ec2
    _private_to_igw(run)
    eip = ec2.allocate_address(Domain="vpc", TagSpecifications=tags.spec("elastic-ip", run.settings.env, "drift-eip"))
    ec2.associate_address(AllocationId=eip["AllocationId"], InstanceId=run.snapshot().db.id)
    for port in (22, 3306):
        _sg("authorize", _db_group, "tcp", port, WORLD)(run)


def _unexpose_db(run):
    ec2 = run.target.ec2
    for port in (22, 3306):
        _sg("revoke", _db_group, "tcp", port, WORLD)(run)
    for a in run.snapshot().addresses:
        if a.instance_id == run.snapshot().db.id:
            ec2.disassociate_address(AssociationId=a.association_id)
            ec2.release_address(AllocationId=a.allocation_id)
    _private_to_nat(run)


def _remove(run) -> str:
    return ("sudo DEBIAN_FRONTEND=noninteractive apt-get -qq remove -y" if run.settings.os_family == "debian"
            else "sudo dnf -q -y remove")


def _sshd_drop_in(run, role: str, line: str | None) -> None:
    # sshd takes the first value it reads, and 00- sorts before every other drop-in.
    path = "/etc/ssh/sshd_config.d/00-drift.conf"
    write = f"echo '{line}' | sudo tee {path} >/dev/null" if line else f"sudo rm -f {path}"
    _host(run, role, f"{write} && sudo systemctl reload ssh 2>/dev/null || sudo systemctl reload sshd")


def _db_in_public_subnet(run):
    from . import tags

    ec2 = run.target.ec2
    s = run.snapshot()
    ec2.terminate_instances(InstanceIds=[s.db.id])
    ec2.get_waiter("instance_terminated").wait(InstanceIds=[s.db.id])
    ec2.run_instances(ImageId=s.db.image_id, InstanceType=s.db.instance_type, MinCount=1, MaxCount=1,
                      KeyName=s.db.key_name, SubnetId=s.public_subnet.id, SecurityGroupIds=list(s.db.group_ids),
                      MetadataOptions={"HttpTokens": "required"},
                      TagSpecifications=tags.spec("instance", run.settings.env, "db"))


CATALOGUE: list[Drift] = [
    Drift("vpc-dns-support-off", "the VPC's DNS support is turned off",
          _vpc_attr("EnableDnsSupport", False), _vpc_attr("EnableDnsSupport", True),
          frozenset({"test_vpc_has_private_cidr_and_dns_support"})),
    Drift("db-in-public-subnet", "the DB server is relaunched into the public subnet",
          _db_in_public_subnet, None,
          frozenset({"test_public_and_private_subnets_in_vpc", "test_private_subnet_has_no_route_to_igw",
                     "test_db_instance_in_private_subnet_without_public_address",
                     "test_nat_gateway_in_public_subnet_with_eip"}),
          frozenset({"test_db_egress_leaves_through_nat_eip", "test_mariadb_installed_running_enabled_listening",
                     "test_web_server_gets_mariadb_greeting"})),
    Drift("igw-detached", "the internet gateway is detached from the VPC", _detach_igw, _attach_igw,
          frozenset({"test_internet_gateway_attached", "test_public_subnet_routes_default_to_igw"}),
          frozenset(WEB_DOWN)),
    Drift("public-default-route-removed", "the public route table lost its 0.0.0.0/0 route",
          _remove_public_default, _restore_public_default,
          frozenset({"test_public_subnet_routes_default_to_igw", "test_web_instance_runs_in_public_subnet"}),
          frozenset(WEB_DOWN)),
    Drift("private-default-to-igw", "the private route table sends 0.0.0.0/0 to the internet gateway",
          _private_to_igw, _private_to_nat,
          frozenset({"test_private_subnet_has_no_route_to_igw",
                     "test_db_instance_in_private_subnet_without_public_address",
                     "test_nat_gateway_in_public_subnet_with_eip"}),
          frozenset({"test_db_egress_leaves_through_nat_eip"})),
    Drift("private-nat-route-deleted", "the private route table lost its route to the NAT gateway",
          _delete_private_default, _restore_private_default,
          frozenset({"test_nat_gateway_in_public_subnet_with_eip"}),
          frozenset({"test_db_egress_leaves_through_nat_eip"})),
    Drift("nat-gateway-deleted", "the NAT gateway is deleted", _delete_nat, None,
          frozenset({"test_nat_gateway_in_public_subnet_with_eip"}),
          frozenset({"test_db_egress_leaves_through_nat_eip"})),
    Drift("web-stopped", "the web server is stopped", _stop_web, _start_web,
          frozenset({"test_web_instance_runs_in_public_subnet"}),
          frozenset(WEB_DOWN)),
    Drift("web-eip-disassociated", "the web server's Elastic IP is disassociated",
          _disassociate_web_eip, _associate_web_eip,
          frozenset({"test_web_public_address_is_its_elastic_ip", "test_vpc_dns_hostnames_and_public_dns_name",
                     "test_elastic_ip_survives_stop_and_start"}),
          frozenset(WEB_DOWN)),
    Drift("key-pair-deleted", "the environment's key pair is deleted from the account",
          _delete_key_pair, None, frozenset({"test_web_launched_with_environment_key"})),
    Drift("web-ssh-revoked", "the web server's SSH rule is revoked",
          lambda r: _sg("revoke", _web_group, "tcp", 22, r.settings.admin_cidr)(r),
          lambda r: _sg("authorize", _web_group, "tcp", 22, r.settings.admin_cidr)(r),
          frozenset({"test_web_security_group_allows_ssh_from_admins"}),
          frozenset(WEB_SSH)),
    Drift("http-rule-removed", "port 80 is removed from the web server's group",
          _sg("revoke", _web_group, "tcp", 80, WORLD), _sg("authorize", _web_group, "tcp", 80, WORLD),
          frozenset({"test_web_security_group_allows_http_from_anywhere"}),
          frozenset(WEB_HTTP | {"test_elastic_ip_survives_stop_and_start"})),
    Drift("dns-hostnames-off", "the VPC's DNS hostnames are turned off",
          _vpc_attr("EnableDnsHostnames", False), _vpc_attr("EnableDnsHostnames", True),
          frozenset({"test_vpc_dns_hostnames_and_public_dns_name"}),
          frozenset({"test_public_dns_name_resolves_and_site_answers"})),
    Drift("db-public-ip", "the DB server is given a public (Elastic) IP", _db_public_ip, None,
          frozenset({"test_db_instance_in_private_subnet_without_public_address"})),
    Drift("db-3306-open-to-world", "tcp/3306 on the DB's group is opened to 0.0.0.0/0",
          _sg("authorize", _db_group, "tcp", 3306, WORLD), _sg("revoke", _db_group, "tcp", 3306, WORLD),
          frozenset({"test_db_allows_only_the_web_server[mariadb]", "test_db_allows_nothing_else",
                     "test_db_port_not_exposed_to_internet[3306]"}),
          frozenset({"test_other_public_host_cannot_reach_mariadb"})),
    Drift("db-icmp-revoked", "ICMP from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "icmp", None), _sg_from_web("authorize", "icmp", None),
          frozenset({"test_db_allows_only_the_web_server[icmp]"}),
          frozenset({"test_web_server_pings_db"})),
    Drift("db-3306-revoked", "tcp/3306 from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "tcp", 3306), _sg_from_web("authorize", "tcp", 3306),
          frozenset({"test_db_allows_only_the_web_server[mariadb]"}),
          frozenset({"test_web_server_gets_mariadb_greeting"})),
    Drift("db-ssh-open-to-world", "tcp/22 on the DB's group is opened to 0.0.0.0/0",
          _sg("authorize", _db_group, "tcp", 22, WORLD), _sg("revoke", _db_group, "tcp", 22, WORLD),
          frozenset({"test_db_allows_only_the_web_server[ssh]", "test_db_allows_nothing_else",
                     "test_ssh_not_open_to_world"})),
    Drift("web-ssh-open-to-world", "tcp/22 on the web server's group is opened to 0.0.0.0/0",
          _sg("authorize", _web_group, "tcp", 22, WORLD), _sg("revoke", _web_group, "tcp", 22, WORLD),
          frozenset({"test_ssh_not_open_to_world", "test_web_server_public_by_design"})),
    Drift("imdsv1-allowed", "both servers accept IMDSv1 (tokens optional)", _imds("optional"), _imds("required"),
          frozenset({"test_imdsv2_required[web]", "test_imdsv2_required[db]"})),
    Drift("default-sg-in-use", "the VPC's default security group is added to the web server",
          _web_groups(True), _web_groups(False), frozenset({"test_default_security_group_unused"})),
    Drift("foreign-subnet-blocks-teardown", "a subnet the environment did not create sits in its VPC",
          _foreign_subnet, None, frozenset({"test_teardown_leaves_nothing"})),
        Drift("db-ssh-revoked", "SSH from the web server is revoked on the DB's group",
          _sg_from_web("revoke", "tcp", 22), _sg_from_web("authorize", "tcp", 22),
          frozenset({"test_db_allows_only_the_web_server[ssh]"}),
          frozenset(DB_OVER_SSH)),
    Drift("db-reachable-from-internet", "the DB gets an Elastic IP, a route to the internet gateway and "
          "SSH and MariaDB open to the world", _expose_db, _unexpose_db,
          frozenset({"test_private_subnet_has_no_route_to_igw",
                     "test_db_instance_in_private_subnet_without_public_address",
                     "test_db_allows_only_the_web_server[mariadb]", "test_db_allows_only_the_web_server[ssh]",
                     "test_db_allows_nothing_else", "test_nat_gateway_in_public_subnet_with_eip",
                     "test_ssh_not_open_to_world", "test_db_port_not_exposed_to_internet[3306]"}),
          frozenset({"test_ssh_to_db_directly_fails", "test_internet_cannot_open_connection_to_db[22]",
                     "test_internet_cannot_open_connection_to_db[3306]", "test_db_egress_leaves_through_nat_eip",
                     "test_other_public_host_cannot_reach_mariadb"})),
    # Host-only drifts: applied on the hosts, so only where hosts exist.
    Drift("apache-removed", "the Apache package is removed from the web server",
          lambda r: _host(r, "web", f"{_remove(r)} {os_family(r.settings.os_family).web_package}"),
          lambda r: _host(r, "web", f"{os_family(r.settings.os_family).install} "
                                    f"{os_family(r.settings.os_family).web_package}"),
          frozenset(), frozenset(WEB_HTTP | {"test_apache_installed", "test_apache_running_and_enabled",
                                             "test_elastic_ip_survives_stop_and_start"}),
          needs_hosts=True),
    Drift("sshd-password-login-on", "the web server's sshd accepts passwords",
          lambda r: _sshd_drop_in(r, "web", "PasswordAuthentication yes"), lambda r: _sshd_drop_in(r, "web", None),
          frozenset(), frozenset({"test_sshd_hardening[passwordauthentication-no-web]"}), needs_hosts=True),
    Drift("sshd-root-login-on", "the DB server's sshd lets root log in",
          lambda r: _sshd_drop_in(r, "db", "PermitRootLogin yes"), lambda r: _sshd_drop_in(r, "db", None),
          frozenset(), frozenset({"test_sshd_hardening[permitrootlogin-no-db]"}), needs_hosts=True),
    Drift("apache-disabled", "Apache is disabled (it would not come back after a restart)",
          lambda r: _host(r, "web", f"sudo systemctl disable {_web_service(r)}"),
          lambda r: _host(r, "web", f"sudo systemctl enable --now {_web_service(r)}"),
          frozenset(), frozenset({"test_apache_running_and_enabled", "test_elastic_ip_survives_stop_and_start"}),
          needs_hosts=True),
    Drift("mariadb-stopped", "MariaDB is stopped",
          lambda r: _host(r, "db", f"sudo systemctl stop {_db_service(r)}"),
          lambda r: _host(r, "db", f"sudo systemctl start {_db_service(r)}"),
          frozenset(), frozenset({"test_mariadb_installed_running_enabled_listening",
                                  "test_web_server_gets_mariadb_greeting"}),
          needs_hosts=True),
]
BY_NAME = {d.name: d for d in CATALOGUE}


def get(name: str) -> Drift:
    try:
        return BY_NAME[name]
    except KeyError:
        raise EnvError(f"unknown drift {name!r}; `python provision.py drifts` lists them") from None


def apply_drift(name: str, run) -> Drift:
    drift = get(name)
    if drift.needs_hosts and not run.target.host_access:
        raise EnvError(f"drift {name} changes a host; target {run.target.name} has no hosts")
    drift.apply(run)
    run.changed()
    return drift


def revert_drift(name: str, run) -> Drift:
    drift = get(name)
    if drift.revert is None:
        raise EnvError(f"drift {name} can't be reverted in place; rebuild with provision.py down/up")
    drift.revert(run)
    run.changed()
    return drift
