"""Reachability probes, each from a named vantage point, and negatives proven beside a control.

A probe says "open", "refused", "timeout" or "unreachable (...)". A closed port proves nothing by
itself: from a vantage point that reaches nothing, everything looks closed. So a negative counts
only when, from the same vantage point in the same run, a control answered (any of the ports it is
given: the web server's 80, else its 22), and a probe that could have reached the subject was made
and failed (`Probe.closed`, then `Probe.conclude`). Otherwise the check is "not checked", saying
what would make it checkable, never "holds". Every negative a check makes is kept in `Probe.record`
(the plugin puts it in reports/run-stats.json, per check, and refuses a "holds" without one).

Vantage points, and where each means something:
- the internet: the target's own (the lab's internet on local, this runner on aws). Public
  addresses only: a private address probed from a runner tests the runner's own network, and a
  "public" address in loopback (moto hands out 127.x) is this machine, so neither is ever probed.
- inside the VPC, outside the web server's groups (`Probe.inside`): a host in the public subnet.
  The local target has one of its own (the lab's neighbour namespace, no security group); on aws it
  is a probe instance launched for the run (--probe-instance, awsenv/provisioning/probe_instance.py),
  else it is missing and the checks that need it say so.
- a host of the environment: through its SSH connection, with bash's /dev/tcp (inside the VPC).
Inside the VPC a refused port is an answer of the host itself (security groups drop, they never
reset), so it serves as a control there; from the internet only an open port does (a runner's own
network may refuse on the host's behalf).
"""
from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import re
import shlex
import socket
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import TypeAlias

import paramiko

from ..errors import one_line
from ..targets import Target
from ..verdict import NotApplicable, NotChecked

# Ranges that are never "the internet" for a probe from the runner: this machine, its own networks.
# Documentation ranges (198.51.100.0/24 ...) stay allowed: the local lab's public addresses live there.
NOT_PUBLIC = [ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
    "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "::1/128", "fe80::/10", "fc00::/7", "::/128")]
# A host name bash may look up for /dev/tcp (the echo service's): letters, digits, dots and dashes only.
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# The ports a control is tried on, in turn, until one answers: the web server's HTTP, then its SSH.
CONTROL_PORTS = (80, 22)


def not_public_reason(address: str | None) -> str | None:
    """Why an address must not be probed from the internet vantage point, or None if it may be."""
    if not address:
        return "no address"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    if ip.is_loopback:
        return f"{address} is in loopback (this machine, not the environment; moto hands such addresses out)"
    if any(ip in n for n in NOT_PUBLIC if n.version == ip.version):
        return (f"{address} is not a public address: probed from this runner it would test the runner's own "
                "network, not the environment")
    return None


@dataclass(frozen=True)
class Endpoint:
    label: str            # "the web server's Elastic IP", "the DB's private address"
    address: str
    port: int
    # Why this endpoint's silence proves nothing, when it can't answer whatever the environment says
    # (a NAT gateway never accepts a connection from outside): probed and shown, never counted.
    proves_nothing: str = ""

    def __str__(self) -> str:
        return f"{self.label} {self.address}:{self.port}"


# A control is given longer than a negative probe: it must not read "no answer" into a first contact
# that is merely slow (a proxy-ARP reply in the lab comes after up to 0.8 s, EC2's first SYN too).
CONTROL_TIMEOUT = 3.0


class Vantage:
    """Where a probe starts. tcp() answers an outcome, or raises NotChecked / NotApplicable when
    this vantage point can't probe that address at all. `refusal_answers`: a refused port is the
    host's own answer from here (inside the VPC), so it serves as a control."""
    name = "?"
    refusal_answers = False

    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        raise NotImplementedError


class InternetVantage(Vantage):
    def __init__(self, target: Target):
        self._target = target
        self.name = "the internet"

    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        reason = not_public_reason(address)
        if reason:
            raise NotChecked(f"not probed from the internet: {reason}")
        return _socket_outcome(self._target, address, port, "internet", self.name, timeout)


class NeighbourVantage(Vantage):
    """A host in the public subnet outside the web server's groups that the target has of its own
    (the lab's neighbour namespace, with no security group)."""
    refusal_answers = True

    def __init__(self, target: Target):
        self._target = target
        self.name = "a neighbour in the public subnet (no security group)"

    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        return _socket_outcome(self._target, address, port, "public-probe", self.name, timeout)


class MissingVantage(Vantage):
    """A vantage point this run doesn't have: every probe from it is "not checked", with the reason
    (and what would make it checkable)."""

    def __init__(self, name: str, reason: str):
        self.name, self._reason = name, reason

    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        raise NotChecked(self._reason)


class HostVantage(Vantage):
    """A host through its SSH connection (`run(command)` -> Result): inside the VPC, as the host sees it."""
    refusal_answers = True

    def __init__(self, run: Callable, name: str, timeout: float = 3.0):
        self._run, self._timeout = run, timeout
        self.name = name

    def tcp(self, address: str, port: int, timeout: float | None = None) -> str:
        # Never a word that reaches a shell unchecked: an IP address, or a plain host name.
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not HOST_NAME.fullmatch(address):
                raise ValueError(f"not an address or host name: {address!r}") from None
        command = f"timeout {timeout or self._timeout:g} bash -c {shlex.quote(f'</dev/tcp/{address}/{int(port)}')}"
        result = self._run(command)
        if result.rc == 0:
            return "open"
        if result.rc == 124:
            return "timeout"
        said = result.stderr.lower()
        if "refused" in said:
            return "refused"
        return f"unreachable ({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.rc})"


def _socket_outcome(target: Target, address: str, port: int, origin: str, name: str,
                    timeout: float | None = None) -> str:
    timeout = timeout or target.probe_timeout
    target.probes_made.append(("tcp", address, port, origin, timeout))
    try:
        sock = target.connect(address, port, timeout=timeout, origin=origin)
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"
    except NotImplementedError as exc:
        raise NotApplicable(f"target {target.name} has no such vantage point ({name}): {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a vantage point that can't even be entered reached nothing
        raise NotChecked(f"the vantage point ({name}) is not available: {one_line(exc)}") from None
    sock.close()
    return "open"


@dataclass
class Tried:
    """One probe of a negative: where to, what it met, and whether its failure counts as proof."""
    endpoint: str
    address: str
    port: int
    outcome: str
    counts: bool = True           # it could have reached the subject (see Endpoint.proves_nothing)
    note: str = ""                # why it doesn't count, or who answered instead of the subject

    @property
    def opened(self) -> bool:
        """It reached the subject: a connection opened, and nothing showed it was another host."""
        return self.outcome == "open" and not self.note

    @property
    def proves(self) -> bool:
        """It could have reached the subject and did not."""
        return self.counts and not self.opened

    def line(self) -> str:
        return f"  {self.endpoint}: {self.outcome}" + (f" ({self.note})" if self.note else "")


@dataclass
class Negative:
    """A negative from one vantage point: the controls tried (the first that answered decides), every
    probe, and `unchecked`: why it proves nothing from there (no such vantage point, no control answered)."""
    vantage: str
    controls: list[str] = field(default_factory=list)       # "endpoint: outcome", in the order tried
    control: str = ""                                        # the one that answered
    probes: list[Tried] = field(default_factory=list)
    unchecked: str = ""

    @property
    def opened(self) -> list[str]:
        return [t.endpoint for t in self.probes if t.opened]

    @property
    def proven(self) -> list[Tried]:
        return [t for t in self.probes if t.proves] if not self.unchecked else []

    def answered_by_another(self, tried: Tried, who: str) -> None:
        """An open probe reached another host, not the subject (told apart by what answered)."""
        tried.note = who

    def evidence(self) -> list[str]:
        if self.unchecked and not self.controls:
            return [f"from {self.vantage}: not probed ({self.unchecked})"]
        lines = [f"from {self.vantage}:"]
        lines += [f"  control {c}" + (" (answered: this vantage point reaches what it should)" if c == self.control
                                      else "") for c in self.controls]
        if self.unchecked:
            return lines + [f"  not probed: {self.unchecked}"]
        return lines + ([t.line() for t in self.probes] or ["  (nothing to probe)"])

    def as_record(self) -> dict:
        return {"vantage": self.vantage, "controls": self.controls, "control": self.control,
                "probes": [asdict(t) for t in self.probes], "unchecked": self.unchecked}


def unproven(record: Iterable[Negative]) -> str | None:
    """Why these negatives prove nothing (None when they prove it): a vantage point that was missing or
    whose control did not answer, or no probe that could have reached the subject made beside its control."""
    negatives = list(record)
    for n in negatives:
        if n.unchecked:
            return n.unchecked
    if not any(n.proven for n in negatives):
        tried = [t.line().strip() for n in negatives for t in n.probes]
        return ("no probe that could have reached the subject was made beside a control that answered"
                + (f" (probed: {'; '.join(tried)})" if tried else " (nothing to probe)"))
    return None


@dataclass
class Fetches:
    """Lines of package sources' access logs for one package: who fetched it, and when."""
    clients: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    read_from: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def unavailable(self) -> str:
        return f"no package source offers a log: {', '.join(self.skipped) or 'none configured'}"

    def add(self, log: str, package: str, since: dt.datetime | None) -> None:
        # `{time} {client} "GET /./mariadb-server_1%3a10.11..._amd64.deb HTTP/1.1" 200 -`, time in UTC.
        wanted = re.compile(rf'"GET /(?:\./)?{re.escape(package)}_[^ "/]*\.deb ')
        for line in log.splitlines():
            parts = line.split(" ", 2)
            if len(parts) < 3 or not wanted.search(parts[2]):
                continue
            when = _log_time(parts[0])
            if since is not None and when is not None and when < since:
                continue            # an earlier environment's install
            self.lines.append(line)
            if parts[1] not in self.clients:
                self.clients.append(parts[1])

    def evidence(self) -> list[str]:
        if not self.read_from:
            return [self.unavailable]
        return [f"read from {', '.join(self.read_from)}:"] + (self.lines or ["  no fetch of the package since launch"])


def _log_time(text: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


# RHEL-family httpd (Amazon Linux 2 and 2023, RHEL, Fedora, Rocky) answers / with its test page and
# status 403 while the document root has no index page (welcome.conf: ErrorDocument 403
# /.noindex.html; the page says "Test Page", or "It works!" on Amazon Linux 2023). That is what the
# article's reader sees once Apache is installed. Apache's own 403 ("Forbidden ... You don't have
# permission") is a site that refuses its visitors.
_TEST_PAGE = re.compile(r"test page|it works!", re.IGNORECASE)
_FORBIDDEN_PAGE = re.compile(r"<title>403 Forbidden</title>", re.IGNORECASE)


def site_answer(status: int, body: str) -> str:
    """What GET / answered, when it is the site ("" when it is not): 200, or the test page."""
    if status == 200:
        return "200"
    if status == 403 and _TEST_PAGE.search(body) and not _FORBIDDEN_PAGE.search(body):
        return "403 with the web server's test page (no site content yet, as RHEL-family httpd answers)"
    return ""


@dataclass
class Site:
    """What GET / at an address answered from the internet, or why it did not answer."""
    address: str
    status: int | None = None
    server: str = ""
    answer: str = ""              # what the site answered (see site_answer); "" when it didn't
    problem: str = ""             # set when nothing answered: what the host did instead
    lines: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return bool(self.answer)

    def evidence(self) -> list[str]:
        return self.lines


class Probe:
    """The vantage points as the checks use them: TCP, HTTP and DNS from outside the VPC, from a
    host inside it outside the web server's groups (`inside`), or from a host of the environment.
    `record`: every negative proven (or not) through this object, for the check that uses it."""
    Endpoint: TypeAlias = Endpoint      # what a check probes: probe.Endpoint(label, address, port)

    def __init__(self, target: Target, inside: Vantage | None = None, record: list[Negative] | None = None):
        self._target = target
        self.internet = InternetVantage(target)
        self.inside = inside or _own_inside(target)
        self.record: list[Negative] = [] if record is None else record

    @property
    def available(self) -> bool:
        return self._target.host_access

    @property
    def unavailable_reason(self) -> str:
        return self._target.host_access_reason

    @property
    def boot_timeout(self) -> float:
        return self._target.boot_timeout

    @property
    def negative_timeout(self) -> float:
        """How long a probe that should meet silence waits (after a control showed the path answers)."""
        return self._target.probe_timeout

    def through(self, hosts, role: str) -> HostVantage:
        return HostVantage(lambda command: hosts.execute(role, command), f"the {role} server")

    @staticmethod
    def controls(label: str, address: str | None, ports: tuple[int, ...] = CONTROL_PORTS) -> list[Endpoint]:
        """A host's ports to try as the control, in turn, until one answers (any port that answers will do)."""
        return [Endpoint(label, address or "", port) for port in ports]

    def closed(self, vantage: Vantage, controls: Endpoint | list[Endpoint], endpoints: list[Endpoint]) -> Negative:
        """From one vantage point: the controls in turn until one answers, then each endpoint. Never
        raises for the vantage point's sake: a missing vantage point, or one where no control answered,
        leaves `.unchecked` set (so what opened from elsewhere is still seen); `conclude` then says the
        check is not checked. With nothing to probe, no control is tried. The caller asserts that
        nothing is in `.opened`, then calls `conclude`."""
        negative = Negative(vantage.name)
        self.record.append(negative)
        if not endpoints:
            return negative
        try:
            for c in [controls] if isinstance(controls, Endpoint) else controls:
                outcome = vantage.tcp(c.address, c.port, timeout=CONTROL_TIMEOUT)
                negative.controls.append(f"{c}: {outcome}")
                if outcome == "open" or (outcome == "refused" and vantage.refusal_answers):
                    negative.control = negative.controls[-1]
                    break
            if not negative.control:
                negative.unchecked = (f"from {vantage.name}, no control answered ({'; '.join(negative.controls)}), "
                                      "so a closed port proves nothing from there")
                return negative
            for e in endpoints:
                negative.probes.append(Tried(str(e), e.address, e.port, vantage.tcp(e.address, e.port),
                                             counts=not e.proves_nothing, note=e.proves_nothing))
        except (NotChecked, NotApplicable) as exc:
            negative.unchecked = str(exc)
        return negative

    def conclude(self, *negatives: Negative) -> None:
        """After the check found nothing open: NotChecked unless every vantage point it needed was there
        and a probe that could have reached the subject failed beside a control that answered."""
        reason = unproven(negatives or self.record)
        if reason:
            raise NotChecked(reason)

    def ssh_host_key(self, address: str) -> str:
        """The SSH host key (type and fingerprint) of the sshd answering at address:22 from the internet."""
        self.require_public(address, "SSH host key not read from the internet")
        self._target.probes_made.append(("tcp", address, 22, "internet", CONTROL_TIMEOUT))
        try:
            transport = paramiko.Transport(self._target.connect(address, 22, timeout=CONTROL_TIMEOUT))
        except (OSError, NotImplementedError) as exc:
            raise NotChecked(f"the sshd at {address}:22 could not be asked for its host key: {one_line(exc)}") from None
        try:
            transport.start_client(timeout=15)
            return key_text(transport.get_remote_server_key())
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise NotChecked(f"the sshd at {address}:22 gave no host key: {one_line(exc) or type(exc).__name__}") from None
        finally:
            transport.close()

    def tcp(self, address: str, port: int, control: bool = False) -> str:
        """One probe from the internet (public addresses only); a control waits longer for its answer."""
        return self.internet.tcp(address, port, timeout=CONTROL_TIMEOUT if control else None)

    def require_public(self, address: str | None, what: str) -> str:
        """The address, if it may be probed from the internet; else NotChecked saying why."""
        reason = not_public_reason(address)
        if reason:
            raise NotChecked(f"{what}: {reason}")
        return address or ""

    def http_get(self, address: str, host_header: str | None = None, path: str = "/"):
        self.require_public(address, "HTTP from the internet not attempted")
        return http_get(self._target, address, host_header, path=path)

    def get_site(self, address: str, host_header: str | None = None) -> Site:
        """GET / from the internet. A refused port is the host answering "nothing here" (a finding);
        a silent one is a finding only if the same host answers on tcp/22 from the same place (the
        control); if neither answers, the web server is not reachable from here: not checked."""
        self.require_public(address, "HTTP from the internet not attempted")
        site = Site(address)
        try:
            status, headers, body = http_get(self._target, address, host_header)
        except ConnectionRefusedError:
            outcome = "refused"
        except TimeoutError:
            outcome = "timeout"
        except http.client.HTTPException as exc:
            site.problem = f"tcp/80 answered, but not with HTTP ({type(exc).__name__}: {exc})"
            site.lines.append(site.problem)
            return site
        except OSError as exc:
            outcome = f"unreachable ({exc.strerror or exc})"
        except NotImplementedError as exc:
            raise NotApplicable(f"target {self._target.name} has no internet vantage point: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - a vantage point that can't be entered reached nothing
            raise NotChecked(f"the internet vantage point is not available: {one_line(exc)}") from None
        else:
            site.status, site.server = status, headers.get("Server", "")
            site.answer = site_answer(status, body)
            if not site.answer:
                site.problem = f"status {status}" + (" (not the web server's test page)" if status == 403 else "")
            site.lines += [f"status {status}" + (f": {site.answer}" if site.answer and status != 200 else ""),
                           f"Server: {site.server}", body[:200]]
            return site
        site.lines.append(f"tcp {address}:80 {outcome}")
        if outcome == "refused":
            site.problem = "tcp/80 refused: the host answered, and nothing listens on port 80"
            return site
        control = self.internet.tcp(address, 22, timeout=CONTROL_TIMEOUT)
        site.lines.append(f"control: tcp {address}:22 {control}")
        if control == "open":
            site.problem = (f"tcp/80 {outcome} while tcp/22 on the same address answered from the same place: "
                            "port 80 is filtered")
            return site
        raise NotChecked(f"neither tcp/80 ({outcome}) nor tcp/22 ({control}) answered at {address} from the "
                         "internet: the web server is not reachable from here")

    def resolve(self, name: str) -> list[str]:
        """A records of a name, asked from the internet; [] when the name does not exist."""
        try:
            return self._target.resolve(name)
        except socket.gaierror as exc:
            if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
                return []
            raise NotChecked(f"the internet's resolver did not answer for {name}: {exc}") from None
        except OSError as exc:
            raise NotChecked(f"the internet's resolver did not answer for {name}: {one_line(exc)}") from None
        except NotImplementedError as exc:
            raise NotApplicable(f"target {self._target.name} has no resolver on the internet: {exc}") from None

    def echo_url(self) -> str:
        return self._target.echo_url()

    def echo_endpoint(self) -> Endpoint:
        """The echo service as an endpoint a host can probe: its address as the internet resolves it."""
        url = urllib.parse.urlsplit(self.echo_url())
        host, port = url.hostname or "", url.port or 80
        if not_public_reason(host) is None:
            return Endpoint("the echo service", host, port)
        addresses = self.resolve(host)
        if not addresses:
            raise NotChecked(f"the echo service's name {host} does not resolve from the internet")
        return Endpoint(f"the echo service ({host})", addresses[0], port)

    def package_fetches(self, sources: list[str], package: str, since=None) -> Fetches:
        """Who fetched a package's files, by the access log of the package source that offers one.

        Asked only of a source named by a public address over plain HTTP (the lab's mirror serves its
        log at /access-log); a source named by a host name (a distribution's CDN) keeps its logs to
        itself, and is never asked."""
        found = Fetches()
        for url in sources:
            m = re.match(r"http://([0-9.]+)(?::80)?(/.*)?$", url)
            if not m or not_public_reason(m.group(1)):
                found.skipped.append(url)
                continue
            try:
                status, _, body = http_get(self._target, m.group(1), path="/access-log")
            except Exception as exc:  # noqa: BLE001 - a source without a readable log is simply not evidence
                found.skipped.append(f"{url} ({one_line(exc) or type(exc).__name__})")
                continue
            if status != 200:
                found.skipped.append(f"{url} (no access log: HTTP {status})")
                continue
            found.read_from.append(url)
            found.add(body, package, since)
        return found

    def wait_for_site(self, address: str) -> str | None:
        """Wait (up to the target's boot timeout) for GET / at address to answer as a site does (200,
        or the test page: see site_answer); None if it never did."""
        from ..errors import EnvError
        from ..waits import wait_until

        self.require_public(address, "HTTP from the internet not attempted")

        seen = []

        def answered() -> bool:
            try:
                status, _, body = http_get(self._target, address)
            except OSError:
                return False
            seen.append(site_answer(status, body))
            return bool(seen[-1])
        try:
            wait_until(answered, f"Apache at {address}", timeout=self._target.boot_timeout, progress=lambda m: None)
        except EnvError:
            return None
        return f"GET http://{address}/ answered {seen[-1]}"


def key_text(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def _own_inside(target: Target) -> Vantage:
    """The target's own host inside the VPC outside the web server's groups, or the missing one."""
    if target.neighbour:
        return NeighbourVantage(target)
    return MissingVantage("a host inside the VPC outside the web server's groups", target.neighbour_reason)


class _Conn(http.client.HTTPConnection):
    def __init__(self, target: Target, address: str, host_header: str, timeout: float):
        super().__init__(host_header, 80, timeout=timeout)
        self._target, self._address, self._timeout = target, address, timeout

    def connect(self):
        self.sock = self._target.connect(self._address, 80, timeout=self._timeout)


def repeat(target: Target, recorded: list) -> None:
    """Make again, bare, the probes a run recorded in target.probes_made (bench/floor.py)."""
    for kind, address, *rest in recorded:
        if kind == "tcp":
            port, origin, timeout = rest
            _socket_outcome(target, address, port, origin, "repeat", timeout)
        else:
            host_header, timeout, path = rest
            try:
                http_get(target, address, host_header, timeout, path)
            except OSError:
                pass      # what it answered doesn't matter here, only what it cost


def http_get(target: Target, address: str, host_header: str | None = None, timeout: float = 5.0, path: str = "/"):
    """GET path at address (Host: host_header); returns (status, headers dict, body text)."""
    target.probes_made.append(("http", address, host_header, timeout, path))
    conn = _Conn(target, address, host_header or address, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read(1 << 20).decode(errors="replace")
    finally:
        conn.close()
