"""Article section 3: Apache on the web server, HTTP from anywhere, the public DNS name."""
import pytest


@pytest.mark.host
@pytest.mark.article("3.1")
@pytest.mark.fails_on("apache-removed")
def test_apache_installed(web_host, web_os, evidence):
    pkg = web_host.package(web_os.web_package)
    evidence("package", f"{pkg.name} installed={pkg.is_installed} version={pkg.version if pkg.is_installed else '-'}")
    assert pkg.is_installed, f"expected {pkg.name} installed on the web server, found it missing"


@pytest.mark.host
@pytest.mark.article("3.2")
@pytest.mark.fails_on("apache-removed", "apache-disabled")
def test_apache_running_and_enabled(web_host, web_os, evidence):
    svc = web_host.service(web_os.web_service)
    running, enabled = svc.is_running, svc.is_enabled
    evidence("service", f"{svc.name} running={running} enabled={enabled}")
    # Both said at once: a stopped and disabled Apache is told as such, not "stopped" now and
    # "disabled" only once someone has started it.
    assert running and enabled, (f"expected {svc.name} running and enabled (so it starts after a restart), found "
                                 f"it {'running' if running else 'stopped'} and {'enabled' if enabled else 'disabled'}")


@pytest.mark.api
@pytest.mark.article("3.3")
@pytest.mark.fails_on("http-rule-removed")
def test_web_security_group_allows_http_from_anywhere(snap, evidence):
    rules = snap.admitted_to(snap.web)
    evidence("web ingress, by what each source admits", [f"{g.id} {a.row()}" for g, a in rules])
    assert any(a.permission.covers_port("tcp", 80) and a.permission.is_world for _, a in rules), (
        f"expected tcp/80 from 0.0.0.0/0 on the web server, found {[a.permission.row() for _, a in rules]}")


@pytest.mark.host
@pytest.mark.article("3.3")
@pytest.mark.fails_on("http-rule-removed", "apache-removed", "site-forbidden")
def test_http_get_to_elastic_ip_answered_by_apache(snap, probe, evidence):
    ip = snap.web.public_ip
    assert ip, "expected a public address on the web server, found none"
    site = probe.get_site(ip)
    evidence(f"GET http://{ip}/ from the internet", site.evidence())
    assert site.answered, f"expected the site to answer at http://{ip}/, found {site.problem or site.status}"
    assert "Apache" in site.server, f"expected Apache to answer, found Server: {site.server!r}"


@pytest.mark.api
@pytest.mark.article("3.4")
@pytest.mark.fails_on("web-eip-disassociated", "dns-hostnames-off")
def test_vpc_dns_hostnames_and_public_dns_name(snap, evidence):
    evidence("DNS", [f"enableDnsHostnames={snap.vpc.dns_hostnames}", f"public DNS name {snap.web.public_dns!r}"])
    assert snap.vpc.dns_hostnames, f"expected DNS hostnames on in {snap.vpc.id}, found off"
    assert snap.web.public_dns, "expected the web server to have a public DNS name, found none"


@pytest.mark.host
@pytest.mark.article("3.4")
@pytest.mark.fails_on("dns-hostnames-off", "http-rule-removed", "apache-removed", "site-forbidden")
def test_public_dns_name_resolves_and_site_answers(snap, probe, evidence):
    # The name is looked up only where its address may be probed: a name for 127.x is this machine's.
    probe.require_public(snap.web.public_ip, "the public DNS name was not looked up")
    name = snap.web.public_dns
    assert name, "expected a public DNS name on the web server, found none"
    addresses = probe.resolve(name)
    evidence(f"resolve {name} from the internet", addresses or ["no such name (NXDOMAIN)"])
    assert snap.web.public_ip in addresses, f"expected {name} to resolve to {snap.web.public_ip}, found {addresses}"
    site = probe.get_site(snap.web.public_ip, host_header=name)
    evidence(f"GET http://{name}/", site.evidence())
    assert site.answered, f"expected the site to answer at http://{name}/, found {site.problem or site.status}"
