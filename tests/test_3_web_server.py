"""Article section 3: Apache on the web server, HTTP from anywhere, the public DNS name."""
import pytest
from drift_groups import WEB_HTTP_LOST, WEB_SSH_LOST


@pytest.mark.host
@pytest.mark.article("3.1")
@pytest.mark.fails_on(*WEB_SSH_LOST, "apache-removed")
def test_apache_installed(web_host, web_os, evidence):
    pkg = web_host.package(web_os.web_package)
    evidence("package", f"{pkg.name} installed={pkg.is_installed} version={pkg.version if pkg.is_installed else '-'}")
    assert pkg.is_installed, f"expected {pkg.name} installed on the web server, found it missing"


@pytest.mark.host
@pytest.mark.article("3.2")
@pytest.mark.fails_on(*WEB_SSH_LOST, "apache-removed", "apache-disabled")
def test_apache_running_and_enabled(web_host, web_os, evidence):
    svc = web_host.service(web_os.web_service)
    evidence("service", f"{svc.name} running={svc.is_running} enabled={svc.is_enabled}")
    assert svc.is_running, f"expected {svc.name} running, found it stopped"
    assert svc.is_enabled, f"expected {svc.name} enabled (so it starts after a restart), found it disabled"


@pytest.mark.api
@pytest.mark.article("3.3")
@pytest.mark.fails_on("http-rule-removed")
def test_web_security_group_allows_http_from_anywhere(snap, evidence):
    rules = snap.ingress_to(snap.web)
    evidence("web ingress", [f"{g.id} {p.row()}" for g, p in rules])
    assert any(p.covers_port("tcp", 80) and p.is_world for _, p in rules), (
        f"expected tcp/80 from 0.0.0.0/0 on the web server, found {[p.row() for _, p in rules]}")


@pytest.mark.host
@pytest.mark.article("3.3")
@pytest.mark.fails_on(*WEB_HTTP_LOST)
def test_http_get_to_elastic_ip_answered_by_apache(snap, probe, evidence):
    ip = snap.web.public_ip
    assert ip, "expected a public address on the web server, found none"
    status, headers, body = probe.http_get(ip)
    evidence(f"GET http://{ip}/", [f"status {status}", f"Server: {headers.get('Server', '')}", body[:200]])
    assert status == 200, f"expected 200 from http://{ip}/, found {status}"
    assert "Apache" in headers.get("Server", ""), f"expected Apache to answer, found Server: {headers.get('Server')}"


@pytest.mark.api
@pytest.mark.article("3.4")
@pytest.mark.fails_on("web-eip-disassociated", "dns-hostnames-off")
def test_vpc_dns_hostnames_and_public_dns_name(snap, evidence):
    evidence("DNS", [f"enableDnsHostnames={snap.vpc.dns_hostnames}", f"public DNS name {snap.web.public_dns!r}"])
    assert snap.vpc.dns_hostnames, f"expected DNS hostnames on in {snap.vpc.id}, found off"
    assert snap.web.public_dns, "expected the web server to have a public DNS name, found none"


@pytest.mark.host
@pytest.mark.article("3.4")
@pytest.mark.fails_on(*WEB_HTTP_LOST, "dns-hostnames-off")
def test_public_dns_name_resolves_and_site_answers(snap, probe, evidence):
    name = snap.web.public_dns
    assert name, "expected a public DNS name on the web server, found none"
    try:
        addresses = probe.resolve(name)
    except OSError as exc:
        addresses = []
        evidence("resolve error", str(exc))
    evidence(f"resolve {name}", addresses or ["no answer"])
    assert snap.web.public_ip in addresses, f"expected {name} to resolve to {snap.web.public_ip}, found {addresses}"
    status, headers, _ = probe.http_get(addresses[0], host_header=name)
    evidence(f"GET http://{name}/", f"status {status}, Server: {headers.get('Server')}")
    assert status == 200, f"expected the site to answer at http://{name}/, found status {status}"
