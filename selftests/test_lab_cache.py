"""The lab's cache folders (base image, package mirror): only folders the lab marked are ever removed.

Unit-level, no network, no root: the helpers of lab/cache.py, lab/image.py and lab/mirror.py on a temp folder
standing in for TWOTIER_LAB_CACHE (which may be a shared folder with other people's things in it).
Run: python3 -m pytest -c selftests/pytest.ini selftests/test_lab_cache.py
"""
from __future__ import annotations

import fcntl
import subprocess
import sys
import time

import pytest

from lab import cache as lab_cache
from lab import image, mirror, names
from lab.errors import LabError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache folder of its own for the lab modules (as TWOTIER_LAB_CACHE would give)."""
    for mod in (names, lab_cache, image, mirror):
        monkeypatch.setattr(mod, "CACHE_DIR", tmp_path)
    return tmp_path


def folder(parent, name, marked, content="x"):
    d = parent / name
    d.mkdir()
    (d / "etc").mkdir()
    (d / "etc" / "file").write_text(content)
    if marked:
        lab_cache.mark(d, name)
    return d


def test_marker_is_written_by_us_and_read_back(tmp_path):
    d = folder(tmp_path, "base-bookworm-0000000001", marked=True)
    assert lab_cache.is_marked(d)
    assert (d / lab_cache.MARKER).read_text().startswith(lab_cache.MARKER_TEXT)
    other = folder(tmp_path, "base-bookworm-0000000002", marked=False)
    (other / lab_cache.MARKER).write_text("someone else's file that happens to have this name\n")
    assert not lab_cache.is_marked(other)
    linked = folder(tmp_path, "mirror-0000000003", marked=False)
    (linked / lab_cache.MARKER).symlink_to(d / lab_cache.MARKER)
    assert not lab_cache.is_marked(linked), "a symlinked marker is not ours"


def test_old_recipe_cleanup_removes_only_marked_folders(cache):
    keep = folder(cache, "base-bookworm-aaaaaaaaaa", marked=True)
    old = folder(cache, "base-bookworm-bbbbbbbbbb", marked=True)
    stale_build = folder(cache, "base-bookworm-cccccccccc.work", marked=True)
    foreign = folder(cache, "base-bookworm-dddddddddd", marked=False, content="not ours")
    foreign_tmp = folder(cache, "base-bookworm-eeeeeeeeee.tmp", marked=False, content="not ours")
    removed = lab_cache.remove_old(cache, "base-bookworm-*", keep)
    assert sorted(removed) == sorted([old, stale_build])
    assert keep.is_dir() and lab_cache.is_marked(keep)
    for d in (foreign, foreign_tmp):
        assert (d / "etc" / "file").read_text() == "not ours", f"{d.name} was touched"


def test_unmarked_mirror_folders_are_never_removed(cache):
    current = folder(cache, "mirror-1111111111", marked=True)
    unmarked = folder(cache, "mirror-2222222222", marked=False, content="a colleague's mirror")
    (unmarked / "Release").write_text("looks like ours, but has no marker\n")
    old = folder(cache, "mirror-3333333333", marked=True)
    assert lab_cache.remove_old(cache, "mirror-*", current) == [old]
    assert (unmarked / "etc" / "file").read_text() == "a colleague's mirror"
    assert (unmarked / "Release").is_file()


def test_symlinked_cache_folders_are_not_followed(cache, tmp_path_factory):
    elsewhere = folder(tmp_path_factory.mktemp("elsewhere"), "target", marked=True)
    link = cache / "base-bookworm-ffffffffff"
    link.symlink_to(elsewhere, target_is_directory=True)
    keep = folder(cache, "base-bookworm-aaaaaaaaaa", marked=True)
    assert lab_cache.remove_old(cache, "base-bookworm-*", keep) == []
    assert elsewhere.is_dir() and link.is_symlink()
    with pytest.raises(LabError):
        lab_cache.remove(link)
    assert (elsewhere / "etc" / "file").is_file()


def test_remove_cache_refuses_unmarked(tmp_path):
    d = folder(tmp_path, "mirror-4444444444", marked=False)
    with pytest.raises(LabError, match="no .twotier-lab-cache"):
        lab_cache.remove(d)
    assert (d / "etc" / "file").is_file()
    lab_cache.mark(d, "now ours")
    lab_cache.remove(d)
    assert not d.exists()


def test_a_cache_a_running_lab_uses_is_kept(cache):
    keep = folder(cache, "base-bookworm-aaaaaaaaaa", marked=True)
    used = folder(cache, "base-bookworm-9999999999", marked=True)
    # a process whose command line names the folder, as a lab daemon's --base does
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(used)])
    try:
        deadline = time.monotonic() + 10
        while not names.cache_in_use(used) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert names.cache_in_use(used)
        assert lab_cache.remove_old(cache, "base-bookworm-*", keep) == []
        with pytest.raises(LabError, match="running lab"):
            lab_cache.remove(used)
        assert (used / "etc" / "file").is_file()
    finally:
        proc.kill()
        proc.wait()
    assert lab_cache.remove_old(cache, "base-bookworm-*", keep) == [used]


def test_fresh_folder_replaces_ours_and_stops_at_others(cache):
    ours = folder(cache, "base-bookworm-aaaaaaaaaa.work", marked=True)
    (ours / "leftover").write_text("from a crashed build")
    lab_cache.fresh_folder(ours, "build folder")
    assert lab_cache.is_marked(ours) and not (ours / "leftover").exists()
    theirs = folder(cache, "mirror-5555555555.work", marked=False, content="not ours")
    with pytest.raises(LabError, match="did not make it"):
        lab_cache.fresh_folder(theirs, "build folder")
    assert (theirs / "etc" / "file").read_text() == "not ours"


def test_build_folders_are_in_the_families_the_cleanup_knows(cache):
    # what a crashed build leaves is found (and, being marked, removed) by the next build's cleanup
    assert image.base_dir().parent == cache and image.base_dir().name.startswith(f"base-{image.SUITE}-")
    repo = mirror.repo_dir(image.base_dir())
    assert repo.parent == cache and repo.name.startswith("mirror-")


def test_ensure_returns_what_is_cached_without_building(cache):
    base = image.base_dir()
    repo = mirror.repo_dir(base)
    base.mkdir()
    (base / ".lab-complete").write_text("")
    repo.mkdir()
    (repo / "Release").write_text("")
    said = []
    assert image.ensure_image_and_mirror(said.append) == (base, repo)
    assert image.ensure_base(said.append) == base
    assert mirror.ready(base)
    assert said == []


def test_recipe_changes_with_the_unsafe_io_setting(cache, monkeypatch):
    before = image.base_dir()
    monkeypatch.setattr(image, "DPKG_CFG", (image.DPKG_CFG[0], "force-unsafe-io\nforce-confold\n"))
    assert image.base_dir() != before
    assert "force-unsafe-io" in image.DPKG_CFG[1] and image.DPKG_CFG[0].startswith("etc/dpkg/dpkg.cfg.d/")


def test_waiting_for_another_builder_says_so_and_gives_up(cache, monkeypatch):
    monkeypatch.setattr(lab_cache, "HEARTBEAT", 0.2)
    with open(cache / ".base.lock", "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)
        said = []
        with pytest.raises(LabError, match="another process"):
            with lab_cache.lock("base", "base image", said.append, timeout=0.7):
                pass
        assert said and all("waiting for another process" in s for s in said)
    with lab_cache.lock("base", "base image", said.append, timeout=0.7):
        pass


def test_run_step_names_what_it_waits_for_and_times_out(monkeypatch):
    monkeypatch.setattr(lab_cache, "HEARTBEAT", 0.2)
    said = []
    t0 = time.monotonic()
    with pytest.raises(LabError, match="gave up on sleeping"):
        lab_cache.run_step(["sleep", "30"], "sleeping", said.append, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert any("still sleeping" in s for s in said)
    with pytest.raises(LabError, match="false exited 1"):
        lab_cache.run_step(["false"], "failing", said.append, timeout=5)


def test_apt_simulation_lines_and_file_names():
    lines = ["Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64]) []",
             "Inst perl-base [5.36.0-7+deb12u3] (5.36.0-7+deb12u4 Debian:12.15/oldstable, "
             "Debian-Security:12/oldstable-security [amd64])",
             "Inst automake (1:1.16.5-1.3 Debian:12.15/oldstable [all])",
             "Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [amd64])"]
    pkgs = [mirror.Pkg(*m.groups()) for m in map(mirror.INST.match, lines) if m]
    assert pkgs == [mirror.Pkg("libc6", "2.36-9+deb12u14", "amd64"),
                    mirror.Pkg("perl-base", "5.36.0-7+deb12u4", "amd64"),
                    mirror.Pkg("automake", "1:1.16.5-1.3", "all")]
    assert pkgs[2].deb == "automake_1%3a1.16.5-1.3_all.deb"


def test_predicted_status_from_package_data():
    shown = ("Package: dash\nVersion: 0.5.12-2\nArchitecture: amd64\nEssential: yes\nDepends: debianutils\n"
             "Description: POSIX shell\n a long\n description\nFilename: pool/main/d/dash/dash_0.5.12-2_amd64.deb\n"
             "Size: 1\nSHA256: ab\n\n"
             "Package: dash\nVersion: 0.5.12-2\nArchitecture: amd64\nEssential: yes\n\n")
    status = mirror.status_from_show(shown)
    assert status.count("Package: dash") == 1
    assert status.splitlines()[:2] == ["Package: dash", "Status: install ok installed"]
    assert "Filename" not in status and "SHA256" not in status and "Depends: debianutils" in status
    assert " a long" in status
