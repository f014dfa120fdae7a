"""The pieces behind the verdicts, without AWS or hosts: what a security-group source admits, which
addresses may be probed from the internet, negatives beside their control, and what a package
manager's log and a mirror's access log say about an install."""
import datetime as dt

import pytest

from awsenv.discovery.rules import Judge, Permission, flatten
from awsenv.hosts import packages
from awsenv.hosts.probes import Endpoint, Fetches, Probe, Vantage, not_public_reason
from awsenv.verdict import NotApplicable, NotChecked

JUDGE = Judge(web_ips=("10.0.1.4",), web_groups=("sg-web", "sg-clients"),
              group_members={"sg-web": ("10.0.1.4",), "sg-clients": ("10.0.1.4", "10.0.1.9"), "sg-other": ("10.0.2.7",)},
              group_names={"sg-web": "web", "sg-clients": "clients", "sg-other": "other"},
              subnets={"10.0.1.0/24": "the public subnet", "10.0.2.0/24": "the private subnet",
                       "10.0.0.0/16": "the whole VPC"})


def admits(**source):
    return JUDGE.admits(Permission("tcp", 3306, 3306, **source))


@pytest.mark.parametrize("source,only_web,words", [
    ({"group_id": "sg-web"}, True, "the web server's security group"),
    ({"group_id": "sg-clients"}, True, "also held by 10.0.1.9"),       # a group the web server is in
    ({"cidr": "10.0.1.4/32"}, True, "the web server's own private address"),
    ({"cidr": "10.0.1.0/24"}, False, "255 addresses besides the web server (10.0.1.4) (the public subnet)"),
    ({"cidr": "10.0.0.0/16"}, False, "the whole VPC"),
    ({"cidr": "10.0.2.9/32"}, False, "not the web server"),
    ({"cidr": "0.0.0.0/0"}, False, "every IPv4 address, the whole internet"),
    ({"cidr": "::/0"}, False, "every IPv6 address, the whole internet"),
    ({"cidr": "2001:db8::/64"}, False, "not the web server"),
    ({"group_id": "sg-other"}, False, "which the web server is not in (held by 10.0.2.7)"),
    ({"group_id": "sg-elsewhere"}, False, "another VPC or account"),
    ({"prefix_list_id": "pl-1", "prefix_cidrs": ("10.0.1.4/32",)}, True, "prefix list pl-1"),
    ({"prefix_list_id": "pl-2", "prefix_cidrs": ("10.0.1.0/24",)}, False, "the public subnet"),
    ({"prefix_list_id": "pl-3", "prefix_cidrs": None}, None, "could not be read"),
])
def test_a_source_is_judged_by_what_it_admits(source, only_web, words):
    a = admits(**source)
    assert a.only_web is only_web and words in a.meaning, a.meaning


def test_boto3_rules_flatten_every_kind_of_source():
    perms = flatten([{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "1.2.3.4/32"}],
                      "Ipv6Ranges": [{"CidrIpv6": "::/0"}], "UserIdGroupPairs": [{"GroupId": "sg-web"}],
                      "PrefixListIds": [{"PrefixListId": "pl-1"}]},
                     {"IpProtocol": "58", "FromPort": -1, "ToPort": -1, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}],
                    {"pl-1": ("0.0.0.0/0",)})
    assert [p.source for p in perms] == ["1.2.3.4/32", "::/0", "sg-web", "pl-1 [0.0.0.0/0]", "::/0"]
    assert [p.is_world for p in perms] == [False, True, False, True, True]
    assert perms[-1].protocol == "icmpv6" and not perms[-1].covers_port("icmp", None)


@pytest.mark.parametrize("address,allowed", [
    ("198.51.100.7", True), ("203.0.113.9", True), ("8.8.8.8", True),
    ("127.12.0.5", False), ("10.0.1.4", False), ("172.20.0.1", False), ("192.168.1.1", False),
    ("100.64.0.1", False), ("169.254.169.254", False), ("::1", False), (None, False), ("not-an-ip", False),
])
def test_only_public_addresses_are_probed_from_the_internet(address, allowed):
    assert (not_public_reason(address) is None) is allowed


class FakeVantage(Vantage):
    name = "the test's vantage point"

    def __init__(self, outcomes):
        self.outcomes, self.asked = outcomes, []

    def tcp(self, address, port, timeout=None):
        self.asked.append((address, port))
        outcome = self.outcomes.get((address, port), "timeout")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_a_negative_without_an_answering_control_is_not_checked():
    probe = Probe.__new__(Probe)
    probe.record = []
    silent = FakeVantage({})
    neg = probe.closed(silent, probe.controls("web", "198.51.100.10"), [Endpoint("db", "198.51.100.11", 22)])
    assert "no control answered" in neg.unchecked and not neg.proven
    assert silent.asked == [("198.51.100.10", 80), ("198.51.100.10", 22)]   # the negative was never taken for proof
    with pytest.raises(NotChecked, match="no control answered"):
        probe.conclude(neg)


def test_a_negative_beside_its_control_counts_and_names_what_opened():
    v = FakeVantage({("198.51.100.10", 80): "open", ("198.51.100.12", 22): "open"})
    probe = Probe.__new__(Probe)
    probe.record = []
    neg = probe.closed(v, Endpoint("web", "198.51.100.10", 80),
                       [Endpoint("db", "198.51.100.11", 22), Endpoint("nat", "198.51.100.12", 22)])
    assert neg.opened == ["nat 198.51.100.12:22"]
    assert "control web 198.51.100.10:80: open" in "\n".join(neg.evidence())
    assert probe.record == [neg]


def test_a_vantage_point_the_target_lacks_leaves_the_negative_unchecked_with_the_reason():
    v = FakeVantage({("10.0.1.4", 80): NotApplicable("no neighbour on this target")})
    probe = Probe.__new__(Probe)
    probe.record = []
    neg = probe.closed(v, Endpoint("web", "10.0.1.4", 80), [Endpoint("db", "10.0.2.5", 22)])
    assert neg.unchecked == "no neighbour on this target" and not neg.opened
    with pytest.raises(NotChecked, match="no neighbour"):
        probe.conclude(neg)


APT = """+0000
==> /var/log/apt/history.log

Start-Date: 2026-11-29  14:01:20
Commandline: apt-get install -y apache2
Install: apache2:amd64 (2.4.62-1), ssl-cert:amd64 (1.1.2)
End-Date: 2026-11-29  14:01:22

Start-Date: 2026-11-29  14:01:23
Commandline: apt-get install -y mariadb-server
Install: galera-4:amd64 (26.4), mariadb-server:amd64 (1:10.11.19-0+deb12u1), mariadb-client:amd64 (1:10.11.19)
End-Date: 2026-11-29  14:01:40
==> /var/log/dpkg.log
2026-11-29 14:01:26 install mariadb-server:amd64 <none> 1:10.11.19-0+deb12u1
==> sources
deb [trusted=yes] http://198.51.100.1/ ./
"""


def test_apt_history_dates_the_install_and_names_the_sources():
    found = packages.parse(APT, "mariadb-server")
    assert found.when == dt.datetime(2026, 11, 29, 14, 1, 23, tzinfo=dt.UTC)
    assert found.sources == ["http://198.51.100.1/"]
    assert packages.parse(APT, "mariadb").when is None          # a package name, not a prefix of one


def test_dnf_log_in_the_hosts_own_offset():
    out = ("+0900\n==> /var/log/dnf.rpm.log\n2026-11-29T09:00:05+0900 SUBDEBUG Installed: "
           "mariadb105-server-3:10.5.25-1.amzn2023.x86_64\n==> sources\n"
           "mirrorlist=https://al2023-repos-$awsregion-de612dc2.s3.dualstack.$awsregion.$awsdomain/core/mirrors\n")
    found = packages.parse(out, "mariadb105-server")
    assert found.when == dt.datetime(2026, 11, 29, 0, 0, 5, tzinfo=dt.UTC)
    assert found.sources[0].startswith("https://al2023-repos")


def test_the_mirror_log_names_who_fetched_the_package_since_the_db_launched():
    log = ('2026-11-29T13:00:00Z 198.51.100.99 "GET /./mariadb-server_1%253a10.11_amd64.deb HTTP/1.1" 200 -\n'
           '2026-11-29T14:01:23Z 198.51.100.16 "GET /./mariadb-server_1%253a10.11_amd64.deb HTTP/1.1" 200 -\n'
           '2026-11-29T14:01:23Z 198.51.100.16 "GET /./mariadb-server-core_1%253a10.11_amd64.deb HTTP/1.1" 200 -\n'
           '2026-11-29T14:01:24Z 198.51.100.19 "GET /./apache2_2.4_amd64.deb HTTP/1.1" 200 -\n')
    found = Fetches()
    found.add(log, "mariadb-server", since=dt.datetime(2026, 11, 29, 14, 0, tzinfo=dt.UTC))
    assert found.clients == ["198.51.100.16"] and len(found.lines) == 1
