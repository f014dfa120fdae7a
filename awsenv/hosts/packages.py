"""What a host's package manager remembers of an install: when it happened, and from which sources.

Article 4.7 says MariaDB was installed through the NAT gateway. The host's side of that is its
package manager's log (apt's history and dpkg's log, dnf's rpm log) and its configured sources;
the time is read in the host's own UTC offset (asked of the host, never assumed).
"""
from __future__ import annotations

import datetime as dt
import re
import shlex
from dataclasses import dataclass, field


def command(install_logs: tuple[str, ...]) -> str:
    """One host command: the host's UTC offset, each of the OS family's install logs (os_table.py)
    under a `==> PATH` line, then its configured package sources."""
    logs = " ".join(shlex.quote(f) for f in install_logs)
    return (f"date +%z; for f in {logs}; do "
            "if sudo -n test -r \"$f\"; then echo \"==> $f\"; sudo -n cat \"$f\"; fi; done; echo '==> sources'; "
            "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; "
            "grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources; "
            "grep -hs '^\\(baseurl\\|mirrorlist\\)' /etc/yum.repos.d/*.repo; true")


@dataclass
class Installs:
    package: str
    when: dt.datetime | None = None               # the first install of the package
    sources: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def evidence(self) -> list[str]:
        return (self.lines or [f"no install of {self.package} in the package manager's logs"]) + [
            f"package sources: {', '.join(self.sources) or 'none found'}"]


def parse(output: str, package: str) -> Installs:
    text_lines = output.splitlines()
    offset = _offset(text_lines[0] if text_lines else "")
    found = Installs(package)
    section, start = "", None
    for line in text_lines[1:]:
        if line.startswith("==> "):
            section = line[4:].strip()
            continue
        if section == "sources":
            found.sources += _source_urls(line)
        elif section.endswith("history.log"):
            if line.startswith("Start-Date:"):
                start = _time(line.split(":", 1)[1].strip(), offset)
            elif line.startswith("Install:") and re.search(rf"(^|[\s,]){re.escape(package)}[:\s]", line[8:] + " "):
                found = _earliest(found, start, f"apt history: Start-Date {start}: install {package}")
        elif section.endswith("dpkg.log"):
            m = re.match(rf"(\S+ \S+) install {re.escape(package)}[: ]", line)
            if m:
                found = _earliest(found, _time(m.group(1), offset), f"dpkg log: {line.strip()}")
        elif section.endswith("dnf.rpm.log"):
            m = re.match(rf"(\S+) \w+ Installed: {re.escape(package)}-\d", line)
            if m:
                found = _earliest(found, _time(m.group(1), offset), f"dnf rpm log: {line.strip()}")
    return found


def _earliest(found: Installs, when: dt.datetime | None, line: str) -> Installs:
    found.lines.append(line)
    if when is not None and (found.when is None or when < found.when):
        found.when = when
    return found


def _offset(text: str) -> dt.timezone:
    m = re.fullmatch(r"\s*([+-])(\d\d)(\d\d)\s*", text)
    if not m:
        return dt.UTC
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return dt.timezone(dt.timedelta(minutes=minutes if m.group(1) == "+" else -minutes))


def _time(text: str, offset: dt.timezone) -> dt.datetime | None:
    text = " ".join(text.replace("T", " ").split())
    for fmt in ("%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S"):
        try:
            when = dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return when if when.tzinfo else when.replace(tzinfo=offset)
    return None


def _source_urls(line: str) -> list[str]:
    line = line.split("#", 1)[0].strip()
    if line.startswith(("baseurl=", "mirrorlist=")):
        return [line.split("=", 1)[1].strip()]
    if line.startswith("URIs:"):
        return line[5:].split()
    words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
    return [w for w in words[1:2] if "://" in w] if words[:1] == ["deb"] else []
