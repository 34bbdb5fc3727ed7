"""A container without a mount namespace of its own (runc's host-mntns.bats):
it shares the host's, its mounts land on the host under the rootfs, and it
is chrooted there. `delete` removes those mounts (runc leaves them: its
bats test unmounts them by hand), which the leak check verifies."""
from __future__ import annotations

import os
import subprocess

import pytest

from integration_conftest import read_mounts

DIFFERS = pytest.mark.runc_ref_differs


def host_mntns(cfg: dict) -> None:
    """host-mntns.bats: no mount namespace, and no masked or read-only paths
    (they need one)."""
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "mount"]
    cfg["linux"]["maskedPaths"] = []
    cfg["linux"]["readonlyPaths"] = []


def mounts_under(path) -> list[str]:
    p = str(path)
    return sorted(mp for mp, *_ in read_mounts() if mp == p or mp.startswith(p + "/"))


def cleanup_like_runc_bats(rt, bundle) -> None:
    """runc does not unmount what the container mounted on the host: its bats
    test does (umount -R --lazy rootfs). Done only for runc, so that a
    runtime that leaves mounts behind fails the leak check."""
    if rt.is_runc:
        subprocess.run(["umount", "-R", "--lazy", str(bundle.rootfs)], capture_output=True)


@DIFFERS(reason="runc 1.1.5 leaves the container's mounts on the host")
def test_run_with_host_mntns_and_hooks(rt, bundle, leakcheck):
    """host-mntns.bats "runc run [host mount ns + hooks]"."""
    bundle.update(host_mntns)
    with bundle.edit() as cfg:
        cfg["process"]["args"] = ["/bin/echo", "Hello World"]
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["/bin/sh", "-c",
                                                                         f"touch {bundle.path}/createRuntimeHook.$$"]}]}
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle).expect_ok()
    assert res.stdout == "Hello World\n"
    rt.delete(cid, force=True)
    assert len(list(bundle.path.glob("createRuntimeHook.*"))) == 1
    cleanup_like_runc_bats(rt, bundle)
    leakcheck.assert_clean()


@DIFFERS(reason="runc 1.1.5 leaves the container's mounts on the host, and exec runs in the host's root")
def test_host_mntns_seen_from_inside(rt, bundle, leakcheck):
    """Inside: the host's mount namespace, the container's root and /proc.
    On the host: its mounts, under the rootfs, until `delete`."""
    bundle.update(host_mntns)
    bundle.sh("readlink /proc/self/ns/mnt > /host/mnt; cat /etc/hostname > /host/hostname; "
              "ls /proc/1/ > /dev/null && echo proc-ok > /host/proc; exec sleep 3600")
    cid = rt.new_id()
    rt.run_d(cid, bundle)
    bundle.wait_host_file("proc")
    assert bundle.host("mnt").read_text() == os.readlink("/proc/self/ns/mnt") + "\n"
    assert bundle.host("hostname").read_text() == "busybox\n"  # the rootfs', not the host's
    assert bundle.host("proc").read_text() == "proc-ok\n"
    mounted = mounts_under(bundle.rootfs)
    assert str(bundle.rootfs / "proc") in mounted and str(bundle.rootfs / "dev") in mounted, mounted
    # exec: the container's root (runc would leave it in the host's)
    if not rt.is_runc:
        res = rt.exec_(cid, "sh", "-c", "cat /etc/hostname; readlink /proc/self/ns/mnt").expect_ok()
        assert res.stdout == "busybox\n" + os.readlink("/proc/self/ns/mnt") + "\n"
    rt.kill(cid, "KILL")
    rt.wait_status(cid, "stopped")
    rt.delete(cid)
    cleanup_like_runc_bats(rt, bundle)
    assert mounts_under(bundle.rootfs) == []
    leakcheck.assert_clean()


@DIFFERS(reason="runc ignores root.readonly without a mount namespace")
def test_host_mntns_readonly_root_is_the_containers_only(rt, bundle, leakcheck):
    """root.readonly makes the container's bind read-only, not the host's
    directory."""
    bundle.update(host_mntns)
    with bundle.edit() as cfg:
        cfg["root"]["readonly"] = True
    bundle.sh("touch /x 2>/dev/null && echo rw || echo ro")
    cid = rt.new_id()
    res = rt.run_fg(cid, bundle).expect_ok()
    assert res.stdout == "ro\n"
    (bundle.rootfs / "still-writable").write_text("yes")
    leakcheck.assert_clean()


@DIFFERS(reason="runc 1.1.5 leaves the container's mounts on the host")
def test_host_mntns_failed_create_leaves_no_mount(rt, bundle, leakcheck):
    bundle.update(host_mntns)
    with bundle.edit() as cfg:
        cfg["hooks"] = {"createContainer": [{"path": "/bin/false"}]}
    cid = rt.new_id()
    rt.fail("create", "--bundle", bundle.path, cid, match="createContainer hook", one_line=True)
    cleanup_like_runc_bats(rt, bundle)
    assert mounts_under(bundle.rootfs) == []
    assert rt.container_dirs() == []
    leakcheck.assert_clean()


@pytest.mark.parametrize("field", ["maskedPaths", "readonlyPaths"])
def test_host_mntns_refuses_masked_and_readonly_paths(rt, bundle, leakcheck, field):
    """runc's validator: they would restrict the host's /proc and /sys."""
    bundle.update(host_mntns)
    with bundle.edit() as cfg:
        cfg["linux"][field] = ["/proc/kcore"]
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True,
            match="unable to restrict sys entries without a private MNT namespace")
    assert mounts_under(bundle.rootfs) == []
    leakcheck.assert_clean()


@DIFFERS(reason="runc 1.1.5 leaves the container's mounts on the host")
def test_host_mntns_under_a_shared_mount(rt, make_bundle, leakcheck, tmp_path):
    """A rootfs on a shared mount: the container's mounts do not propagate to
    the host's peers, and nothing stays after delete. The host's own
    propagation is left as it was."""
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(shared)], check=True)
        peer = tmp_path / "peer"
        peer.mkdir()
        subprocess.run(["mount", "--bind", str(shared), str(peer)], check=True)  # a peer of `shared`
        try:
            bundle = make_bundle()
            subprocess.run(["cp", "-a", str(bundle.path), str(shared / "b")], check=True)
            bundle.path, bundle.rootfs = shared / "b", shared / "b" / "rootfs"
            bundle.update(host_mntns)
            bundle.sh("ls /proc/1 >/dev/null && echo ok")
            before = mounts_under(peer)
            cid = rt.new_id()
            res = rt.run_fg(cid, bundle, "--keep").expect_ok()
            assert res.stdout == "ok\n"
            rt.delete(cid)
            cleanup_like_runc_bats(rt, bundle)
            assert mounts_under(peer) == before
            assert mounts_under(shared) == [str(shared)]
            info = {mp: opt for mp, opt in _propagation()}
            assert "shared:" in info[str(shared)]
        finally:
            subprocess.run(["umount", "-l", str(peer)])
    finally:
        subprocess.run(["umount", "-l", str(shared)])
    leakcheck.assert_clean()


def _propagation():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            yield fields[4], " ".join(fields[6:fields.index("-")])


def test_host_mntns_with_user_namespace_fails_cleanly(rt, bundle, leakcheck):
    """A user namespace may not mount in the host's mount namespace: one
    line, and neither the bind nor anything else left behind."""
    from helpers_userns import make_reachable, userns_config
    make_reachable(bundle.path)
    bundle.update(lambda c: (userns_config(c), host_mntns(c)))
    rt.fail("run", "--bundle", bundle.path, rt.new_id(), one_line=True, match="operation not permitted")
    cleanup_like_runc_bats(rt, bundle)
    assert mounts_under(bundle.rootfs) == []
    leakcheck.assert_clean()
