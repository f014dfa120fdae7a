"""The host's own apt sources: the one place the lab learns which Debian mirror to use.

Never hard-code a registry host: CI machines point apt at different mirrors.
"""
from __future__ import annotations

from pathlib import Path

from .errors import LabPrerequisiteError

APT_DIR = Path("/etc/apt")


def _deb822_entries(text: str):
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("types", "").split().count("deb") and fields.get("uris"):
            if fields.get("enabled", "yes").lower() == "no":
                continue
            yield fields


def host_sources() -> list[dict]:
    """[{uri, suites, components, signed_by}] for every `deb` entry in the host's apt config."""
    entries = []
    for path in sorted((APT_DIR / "sources.list.d").glob("*.sources")):
        for f in _deb822_entries(path.read_text()):
            for uri in f["uris"].split():
                entries.append({"uri": uri, "suites": f.get("suites", "").split(),
                                "components": f.get("components", "main").split(),
                                "signed_by": f.get("signed-by", "")})
    lists = [APT_DIR / "sources.list", *sorted((APT_DIR / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = [w for w in words[1:] if not w.startswith("[")]
            if len(words) >= 2:
                entries.append({"uri": words[0], "suites": [words[1]], "components": words[2:] or ["main"],
                                "signed_by": ""})
    return entries


def debian_mirror(suite: str = "bookworm") -> str:
    """The host's mirror URI that carries `suite` (named in the lab's progress messages)."""
    for e in host_sources():
        if suite in e["suites"]:
            return e["uri"]
    raise LabPrerequisiteError(f"no apt source for Debian {suite} in /etc/apt (the lab builds its hosts from it)")


def sources_list(suite: str = "bookworm") -> str:
    """One-line-style sources for `suite` and its -updates/-security companions, as on the host."""
    lines = []
    for e in host_sources():
        suites = [s for s in e["suites"] if s.split("-")[0] == suite]
        for s in suites:
            opt = f"[signed-by={e['signed_by']}] " if e["signed_by"] else ""
            lines.append(f"deb {opt}{e['uri']} {s} {' '.join(e['components'])}")
    if not lines:
        raise LabPrerequisiteError(f"no apt source for Debian {suite} in /etc/apt")
    return "\n".join(lines) + "\n"
