"""The lab's package mirror: a flat apt repository of Apache + MariaDB, gathered once on the host.

The dependency closure is computed against the base image's dpkg status (a private apt), so the
repository holds exactly what an instance lacks; recommends are included because apt inside the
instances installs them by default. Cached under CACHE_DIR, next to the image it belongs to.

Built by image.ensure_image_and_mirror(), together with the image when both are missing: prefetch()
runs while mmdebstrap installs, against a dpkg status predicted from the image's package selection,
and finish() checks the closure against the finished image's real status (fetching only what the
prediction missed). With the image already cached, build() does the same without the prediction.
A mirror belongs to one image: every function here is handed that image's folder (and its suite,
its package selection) rather than asking image.py, which is the one that imports this module.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import cache
from .aptsources import sources_list
from .errors import LabError
from .names import CACHE_DIR

PACKAGES = ["apache2", "mariadb-server", "mariadb-client"]
RECIPE_VERSION = "2"
UPDATE_TIMEOUT = 300.0
DOWNLOAD_TIMEOUT = 900.0
INDEX_TIMEOUT = 300.0


def repo_dir(base: Path) -> Path:
    """The mirror's folder for the image in `base` (its name is part of the key)."""
    key = "|".join([RECIPE_VERSION, base.name, *PACKAGES])
    return CACHE_DIR / f"mirror-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ready(base: Path) -> bool:
    return (repo_dir(base) / "Release").is_file()


# --- a private apt -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    arch: str

    @property
    def deb(self) -> str:
        """The file name apt gives it in its download cache."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


INST = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) [^\[]*\[([^\]]+)\]\)")


class AptWork:
    """apt with the host's Debian sources for the image's suite, and lists and a download cache of
    its own under `root`; the dpkg status to resolve against is given per call."""

    def __init__(self, root: Path, suite: str):
        self.root = root
        for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d",
                  "etc/sources.list.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.sources = root / "etc/sources.list"
        self.sources.write_text(sources_list(suite))
        self.lists = root / "state/lists"
        self.archives = root / "cache/archives"
        self.empty_status = root / "empty-status"
        self.empty_status.write_text("")
        self.conf = root / "apt.conf"
        self.conf.write_text("\n".join([
            f'Dir::Etc "{root}/etc";',
            f'Dir::Etc::SourceList "{self.sources}";',
            f'Dir::Etc::SourceParts "{root}/etc/sources.list.d";',
            f'Dir::Etc::Parts "{root}/etc/apt.conf.d";',
            f'Dir::Etc::PreferencesParts "{root}/etc/preferences.d";',
            'Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";',
            f'Dir::State "{root}/state";',
            f'Dir::State::status "{self.empty_status}";',
            f'Dir::Cache "{root}/cache";',
            'Acquire::Languages "none";',
            'Acquire::Retries "3";',
            'APT::Sandbox::User "root";',
            'Debug::NoLocking "true";',
            "",
        ]))

    def _run(self, tool: str, args: list[str], what: str, progress, timeout: float, status: Path | None = None) -> str:
        env = dict(os.environ, APT_CONFIG=str(self.conf), DEBIAN_FRONTEND="noninteractive", LC_ALL="C.UTF-8")
        opts = ["-o", f"Dir::State::status={status}"] if status else []
        return cache.run_step([tool, "-q", *opts, *args], what, progress, timeout, env=env)

    def update(self, progress) -> None:
        t0 = time.monotonic()
        n = len(self.sources.read_text().splitlines())
        progress(f"lab:   apt: fetching the package lists ({n} sources; the image and the mirror share them) ...")
        out = self._run("apt-get", ["update"], "fetching the package lists", progress, UPDATE_TIMEOUT)
        fetched = re.search(r"^Fetched (.*?) in ", out, re.M)
        progress(f"lab:   apt: package lists fetched in {time.monotonic() - t0:.1f}s"
                 + (f" ({fetched.group(1)})" if fetched else ""))

    def simulate(self, args: list[str], status: Path, progress, opts: Sequence[str] = ()) -> list[Pkg]:
        """What `apt-get install ARGS` would install on a system with this dpkg status."""
        out = self._run("apt-get", ["-s", *opts, "install", *args], "resolving packages", progress, 120, status)
        return [Pkg(*m.groups()) for m in map(INST.match, out.splitlines()) if m]

    def download(self, args: list[str], status: Path, what: str, progress) -> None:
        self._run("apt-get", ["-y", "-o", "APT::Install-Recommends=true", "install", "--download-only", *args],
                  what, progress, DOWNLOAD_TIMEOUT, status)

    def status_of(self, pkgs: list[Pkg], out: Path, progress) -> Path:
        """A dpkg status file with `pkgs` installed (their control data from the lists)."""
        shown = self._run("apt-cache", ["show", *[f"{p.name}={p.version}" for p in pkgs]],
                          "reading package data", progress, 120)
        out.write_text(status_from_show(shown))
        return out


def status_from_show(shown: str) -> str:
    """`apt-cache show` stanzas as dpkg status entries of installed packages (each version once)."""
    drop = {"Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512", "Description-md5"}
    stanzas, seen = [], set()
    for block in shown.split("\n\n"):
        fields, keep = [], True
        for line in block.splitlines():
            if not line[:1].isspace():
                keep = line.split(":", 1)[0] not in drop
            if keep:
                fields.append(line)
        if not fields or not fields[0].startswith("Package:"):
            continue
        ident = tuple(f for f in fields if f.startswith(("Package:", "Version:", "Architecture:")))
        if ident in seen:
            continue
        seen.add(ident)
        stanzas.append("\n".join([fields[0], "Status: install ok installed", *fields[1:]]))
    return "\n\n".join(stanzas) + "\n"


# --- building ----------------------------------------------------------------------------------
@dataclass
class Ahead:
    """The mirror as fetched and indexed while the image was still being built."""
    base: set[Pkg]
    closure: set[Pkg]
    repo: Path


def prefetch(apt: AptWork, work: Path, image_selection: Callable[[], tuple[list[str], list[str]]],
             progress) -> Ahead | None:
    """Fetch and index the mirror against the dpkg status the image will have (image_selection: the
    apt options and arguments that select the image's packages). Never fatal: on any failure the
    mirror is fetched after the image instead (finish)."""
    t0 = time.monotonic()
    try:
        opts, selection = image_selection()
        base = apt.simulate(selection, apt.empty_status, progress, opts)
        if not base:
            raise LabError("apt selected nothing for the image")
        status = apt.status_of(base, work / "predicted-status", progress)
        closure = apt.simulate(PACKAGES, status, progress, ["-o", "APT::Install-Recommends=true"])
        progress(f"lab:   mirror: the image will hold {len(base)} packages; {', '.join(PACKAGES)} need "
                 f"{len(closure)} more: downloading them while the image is built ...")
        apt.download(PACKAGES, status, "downloading the mirror's packages", progress)
        repo = _assemble(apt, closure, work / "repo-ahead", progress)
        progress(f"lab:   mirror: {len(closure)} packages fetched and indexed in {time.monotonic() - t0:.1f}s "
                 f"(checked against the finished image next)")
        return Ahead(set(base), set(closure), repo)
    except (LabError, OSError, subprocess.SubprocessError) as exc:
        progress(f"lab:   mirror: could not fetch ahead of the image ({exc}); fetching after it instead")
        return None


def finish(apt: AptWork, base: Path, work: Path, ahead: Ahead | None, progress) -> Path:
    """The mirror for the finished image `base`: the closure against its real dpkg status; what
    `ahead` fetched is used, only what it missed is fetched now. Publishes repo_dir(base)."""
    t0 = time.monotonic()
    repo = repo_dir(base)
    status = base / "var/lib/dpkg/status"
    exact = apt.simulate(PACKAGES, status, progress, ["-o", "APT::Install-Recommends=true"])
    if not exact:
        raise LabError(f"building the lab mirror: apt says the image already has {', '.join(PACKAGES)}")
    if ahead is not None and set(exact) == ahead.closure:
        built = ahead.repo
        progress("lab:   mirror: the prediction matched the finished image: nothing more to fetch")
    else:
        if ahead is not None:
            missing, extra = set(exact) - ahead.closure, ahead.closure - set(exact)
            progress(f"lab:   mirror: the finished image differs from the prediction ({len(missing)} packages "
                     f"missing, {len(extra)} not needed): fetching what is missing ...")
        else:
            progress(f"lab:   mirror: downloading {len(exact)} packages ({', '.join(PACKAGES)} and dependencies) ...")
        apt.download(PACKAGES, status, "downloading the mirror's packages", progress)
        built = _assemble(apt, exact, work / "repo", progress)
    if repo.exists() or repo.is_symlink():
        cache.remove(repo)  # an unfinished one of ours (no Release)
    built.rename(repo)
    cache.mark(repo, f"package mirror {repo.name}")
    size = sum(f.stat().st_size for f in repo.glob("*.deb")) / 1e6
    progress(f"lab: package mirror ready ({len(exact)} packages, {size:.0f} MB, {time.monotonic() - t0:.1f}s "
             f"after the image): {repo}")
    return repo


def build(base: Path, suite: str, progress) -> Path:
    """The mirror alone, for the image in `base` (of Debian `suite`), already cached. The caller holds
    the mirror lock."""
    t0 = time.monotonic()
    repo = repo_dir(base)
    work = cache.fresh_folder(CACHE_DIR / f"{repo.name}.work", f"build folder of {repo.name}")
    try:
        progress(f"lab: building the package mirror ({', '.join(PACKAGES)} and dependencies) ...")
        apt = AptWork(work / "apt", suite)
        apt.update(progress)
        finish(apt, base, work, None, progress)
    finally:
        cache.discard(work, progress)
    cache.remove_old(CACHE_DIR, "mirror-*", repo)
    progress(f"lab: package mirror built in {time.monotonic() - t0:.1f}s")
    return repo


def _assemble(apt: AptWork, pkgs: list[Pkg] | set[Pkg], dest: Path, progress) -> Path:
    """A flat repository in `dest`: the packages' files from apt's download cache (hard links), indexed."""
    cache.fresh_folder(dest, "package mirror being assembled")
    for p in sorted(pkgs, key=lambda p: p.name):
        src = apt.archives / p.deb
        if not src.is_file():
            raise LabError(f"building the lab mirror: {p.deb} is not in apt's download cache")
        try:
            os.link(src, dest / p.deb)
        except OSError:
            shutil.copy2(src, dest / p.deb)
    packages = cache.run_step(["dpkg-scanpackages", "--multiversion", "."], "indexing the mirror's packages",
                              progress, INDEX_TIMEOUT, cwd=dest)
    (dest / "Packages").write_text(packages)
    cache.run_step(["gzip", "-k", "-9", "Packages"], "compressing the mirror's index", progress, INDEX_TIMEOUT,
                   cwd=dest)
    release = cache.run_step(["apt-ftparchive", "release", "."], "writing the mirror's Release file", progress,
                             INDEX_TIMEOUT, cwd=dest)
    (dest / "Release").write_text(release)
    return dest
