"""Self-tests of the integration harness: the leak check must see real leaks
(no runtime involved; these keep the safety net honest)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from integration_conftest import cgroup_hierarchies, clone_rootfs


def test_rootfs_layout(busybox_rootfs):
    assert os.access(busybox_rootfs / "bin" / "busybox", os.X_OK)
    assert os.readlink(busybox_rootfs / "bin" / "sh") == "busybox"
    assert (busybox_rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    passwd = (busybox_rootfs / "etc" / "passwd").read_text()
    assert "root:x:0:0:" in passwd and "nobody:x:65534:" in passwd and ":1000:1000:" in passwd
    for d in ("proc", "sys", "dev", "tmp", "root", "etc"):
        assert (busybox_rootfs / d).is_dir()


def test_bundle_config(rt, bundle, spec_template):
    cfg = bundle.config
    assert cfg["process"]["terminal"] is False
    assert cfg["process"]["args"] == ["sleep", "3600"]
    assert cfg["mounts"][-1]["destination"] == "/host"
    assert (bundle.path / "config.json").exists()
    with bundle.edit() as c:
        c["hostname"] = "edited"
    assert '"edited"' in (bundle.path / "config.json").read_text()


def test_ids_are_unique(rt):
    ids = {rt.new_id() for _ in range(5)}
    assert len(ids) == 5 and all(rt.token in i for i in ids)


def test_detects_process_in_bundle(rt, bundle, leakcheck):
    p = subprocess.Popen(["sleep", "30"], cwd=bundle.rootfs)
    try:
        leaks = leakcheck.find_leaks()
        assert any("in the bundle" in x for x in leaks.get("processes", [])), leaks
        assert any(f"descendant pid {p.pid}" in x for x in leaks.get("processes", [])), leaks
    finally:
        p.kill()
        p.wait()
    assert not leakcheck.find_leaks()


def test_detects_runtime_process(rt, leakcheck):
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(rt.root)])
    try:
        time.sleep(0.1)
        leaks = leakcheck.find_leaks()
        assert any("runtime pid" in x for x in leaks.get("processes", [])), leaks
    finally:
        p.kill()
        p.wait()


def test_detects_state_dir(rt, leakcheck):
    d = rt.root / "leftover"
    d.mkdir()
    try:
        assert leakcheck.find_leaks().get("state dirs") == [str(d)]
    finally:
        d.rmdir()


def test_detects_cgroup(rt, leakcheck):
    hier = [h for h in cgroup_hierarchies() if (h / "cgroup.procs").exists()]
    if not hier:
        pytest.skip("no writable cgroup hierarchy")
    d = hier[0] / f"leak-{rt.token}"
    d.mkdir()
    try:
        assert leakcheck.find_leaks().get("cgroups") == [str(d)]
    finally:
        d.rmdir()


def test_detects_mount(rt, tmp_path, leakcheck):
    m = tmp_path / "mnt"
    m.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(m)], check=True)
    try:
        assert any(str(m) in x for x in leakcheck.find_leaks().get("mounts", []))
    finally:
        subprocess.run(["umount", str(m)], check=True)
    assert not leakcheck.find_leaks()


def test_clone_rootfs_is_independent(busybox_rootfs, fast_tmp, token):
    dest = fast_tmp / f"clone-{token}"
    clone_rootfs(busybox_rootfs, dest)
    (dest / "etc" / "passwd").write_text("changed\n")
    assert (busybox_rootfs / "etc" / "passwd").read_text() != "changed\n"
    assert (dest / "bin" / "busybox").stat().st_ino == (busybox_rootfs / "bin" / "busybox").stat().st_ino
    assert os.readlink(dest / "bin" / "ls") == "busybox"
