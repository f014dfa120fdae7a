"""The lab's package mirror: a flat apt repository of Apache + MariaDB, gathered once on the host.

The dependency closure is computed against the base image's dpkg status (private APT_CONFIG), so
the repository holds exactly what an instance lacks; recommends are included because apt inside
the instances installs them by default. Built in about ten seconds, cached under CACHE_DIR.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from . import image
from .aptsources import sources_list
from .errors import LabError
from .names import CACHE_DIR, cache_in_use

PACKAGES = ["apache2", "mariadb-server", "mariadb-client"]
RECIPE_VERSION = "1"


def repo_dir() -> Path:
    key = "|".join([RECIPE_VERSION, image.base_dir().name, *PACKAGES])
    return CACHE_DIR / f"mirror-{hashlib.sha1(key.encode()).hexdigest()[:10]}"


def ready() -> bool:
    return (repo_dir() / "Release").is_file()


def _apt_config(work: Path, base: Path) -> Path:
    for d in ("state/lists/partial", "cache/archives/partial", "etc/preferences.d", "etc/apt.conf.d",
              "etc/sources.list.d"):
        (work / d).mkdir(parents=True, exist_ok=True)
    (work / "etc/sources.list").write_text(sources_list(image.SUITE))
    conf = work / "apt.conf"
    conf.write_text("\n".join([
        f'Dir::Etc "{work}/etc";',
        f'Dir::Etc::SourceList "{work}/etc/sources.list";',
        f'Dir::Etc::SourceParts "{work}/etc/sources.list.d";',
        f'Dir::Etc::Parts "{work}/etc/apt.conf.d";',
        f'Dir::Etc::PreferencesParts "{work}/etc/preferences.d";',
        'Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d";',
        f'Dir::State "{work}/state";',
        f'Dir::State::status "{base}/var/lib/dpkg/status";',
        f'Dir::Cache "{work}/cache";',
        'APT::Install-Recommends "true";',
        'APT::Sandbox::User "root";',
        'Debug::NoLocking "true";',
        "",
    ]))
    return conf


def _apt(conf: Path, *args: str, timeout: float = 600) -> None:
    env = dict(os.environ, APT_CONFIG=str(conf), DEBIAN_FRONTEND="noninteractive")
    proc = subprocess.run(["apt-get", "-q", "-y", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"building the lab mirror, apt-get {args[0]}: "
                       f"{(proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1][:200]}")


def ensure_mirror(progress=print) -> Path:
    """Return the cached repository directory, building it first if needed."""
    repo = repo_dir()
    if ready():
        return repo
    base = image.ensure_base(progress)
    with open(CACHE_DIR / ".mirror.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            return repo
        t0 = time.monotonic()
        work = repo.with_name(repo.name + ".work")
        shutil.rmtree(work, ignore_errors=True)
        conf = _apt_config(work, base)
        progress(f"lab: building the package mirror ({', '.join(PACKAGES)} and dependencies) ...")
        _apt(conf, "update")
        progress("lab:   downloading packages ...")
        _apt(conf, "install", "--download-only", *PACKAGES)
        tmp = repo.with_name(repo.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        debs = sorted((work / "cache/archives").glob("*.deb"))
        for deb in debs:
            shutil.copy2(deb, tmp / deb.name)
        progress(f"lab:   indexing {len(debs)} packages ...")
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", "."], cwd=tmp,
                                  capture_output=True, text=True, timeout=300)
        if packages.returncode != 0:
            raise LabError(f"dpkg-scanpackages failed: {packages.stderr.strip()[:200]}")
        (tmp / "Packages").write_text(packages.stdout)
        subprocess.run(["gzip", "-k", "-9", "Packages"], cwd=tmp, check=True)
        release = subprocess.run(["apt-ftparchive", "release", "."], cwd=tmp, capture_output=True,
                                 text=True, timeout=120)
        if release.returncode != 0:
            raise LabError(f"apt-ftparchive release failed: {release.stderr.strip()[:200]}")
        (tmp / "Release").write_text(release.stdout)
        shutil.rmtree(repo, ignore_errors=True)
        tmp.rename(repo)
        shutil.rmtree(work, ignore_errors=True)
        size = sum(f.stat().st_size for f in repo.glob("*.deb")) / 1e6
        progress(f"lab: package mirror ready in {time.monotonic() - t0:.0f}s: {len(debs)} packages, {size:.0f} MB")
        for old in CACHE_DIR.glob("mirror-*"):
            if old != repo and not old.name.endswith((".tmp", ".work")) and not cache_in_use(old):
                shutil.rmtree(old, ignore_errors=True)
    return repo
