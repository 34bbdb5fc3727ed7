"""Mounts and paths (issue 11, item 16), after runc 1.5's mounts.bats,
mounts_sshfs.bats, mounts_recursive.bats, mounts_propagation.bats, mask.bats,
no_pivot.bats, dev.bats and root.bats: each observed from inside the
container (stat, /proc/self/mountinfo) or on the host's rootfs afterwards."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from helpers_userns import make_reachable, userns_config

NEWER = pytest.mark.runc_ref_differs


def run(rt, b, *args: str):
    b.set_args(*args)
    return rt.run_fg(rt.new_id(), b)


def out(rt, b, *args: str) -> str:
    res = run(rt, b, *args)
    assert res.rc == 0, str(res)
    return res.stdout


def mount_line(text: str, dest: str) -> str:
    """The /proc/self/mounts line of `dest` (the last, the one on top)."""
    lines = [ln for ln in text.splitlines() if ln.split()[1:2] == [dest]]
    assert lines, f"no mount at {dest} in:\n{text}"
    return lines[-1]


def opts_of(text: str, dest: str) -> set[str]:
    return set(mount_line(text, dest).split()[3].split(","))


# -- tmpfs mode= ------------------------------------------------------------------------------------
@NEWER(reason="runc 1.1.5 does not inherit the target's mode")
def test_tmpfs_mode_inherited_from_target(rt, bundle):
    (bundle.rootfs / "tmpfs").mkdir()
    os.chmod(bundle.rootfs / "tmpfs", 0o710)
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/tmpfs",
                                    "options": ["rw", "nodev", "nosuid"]})
    text = out(rt, bundle, "sh", "-c", "stat -c %a /tmpfs; cat /proc/self/mounts")
    assert text.split()[0] == "710"
    assert "mode=710" in opts_of(text, "/tmpfs")


def test_tmpfs_explicit_mode_wins(rt, bundle):
    (bundle.rootfs / "tmpfs").mkdir()
    os.chmod(bundle.rootfs / "tmpfs", 0o710)
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/tmpfs",
                                    "options": ["rw", "nodev", "nosuid", "mode=1500"]})
    text = out(rt, bundle, "sh", "-c", "stat -c %a /tmpfs; cat /proc/self/mounts")
    assert text.split()[0] == "1500"
    assert "mode=1500" in opts_of(text, "/tmpfs")
    assert oct(os.stat(bundle.rootfs / "tmpfs").st_mode & 0o7777) == oct(0o710)  # not chmod-ed


def test_tmpfs_new_target_keeps_tmpfs_default(rt, bundle):
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/non-existent/foo/bar/baz",
                                    "options": ["rw", "nodev", "nosuid"]})
    text = out(rt, bundle, "sh", "-c", "stat -c %a /non-existent/foo/bar/baz; cat /proc/self/mounts")
    assert text.split()[0] == "1777"
    assert not [o for o in opts_of(text, "/non-existent/foo/bar/baz") if o.startswith("mode=")]
    for p in ("non-existent", "non-existent/foo", "non-existent/foo/bar", "non-existent/foo/bar/baz"):
        assert os.stat(bundle.rootfs / p).st_mode & 0o7777 == 0o755, p


@NEWER(reason="runc 1.1.5 gives the copy-up tmpfs the default mode")
def test_tmpcopyup_keeps_target_mode(rt, bundle):
    (bundle.rootfs / "dir1" / "dir2").mkdir(parents=True)
    os.chmod(bundle.rootfs / "dir1" / "dir2", 0o777)
    bundle.config["mounts"].append({"source": "tmpfs", "destination": "/dir1", "type": "tmpfs",
                                    "options": ["tmpcopyup"]})
    assert out(rt, bundle, "ls", "-ld", "/dir1/dir2").startswith("drwxrwxrwx")


def test_setgid_inherited_by_created_mountpoints(rt, bundle):
    (bundle.rootfs / "setgid").mkdir()
    os.chmod(bundle.rootfs / "setgid", 0o7755)
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/setgid/a/b/c",
                                    "options": ["ro", "nodev", "nosuid"]})
    out(rt, bundle, "true")
    assert os.stat(bundle.rootfs / "setgid").st_mode & 0o7777 == 0o7755
    for p in ("a", "a/b", "a/b/c"):
        assert os.stat(bundle.rootfs / "setgid" / p).st_mode & 0o7777 == 0o2755, p


@pytest.mark.parametrize("host_path", [False, True], ids=["dest", "dest-by-host-path"])
def test_ro_tmpfs(rt, bundle, host_path):
    dest = f"{bundle.rootfs}/mnt" if host_path else "/mnt"
    bundle.config["mounts"].append({"source": "tmpfs", "destination": dest, "type": "tmpfs",
                                    "options": ["ro", "nodev", "nosuid", "mode=755"]})
    assert "ro" in opts_of(out(rt, bundle, "cat", "/proc/mounts"), "/mnt")


def test_tmpfs_under_absolute_symlink(rt, bundle):
    (bundle.rootfs / "real" / "conf").mkdir(parents=True)
    os.symlink("/real/conf", bundle.rootfs / "conf")
    bundle.config["mounts"].append({"type": "tmpfs", "source": "tmpfs", "destination": "/conf/stack",
                                    "options": ["ro", "nodev", "nosuid"]})
    out(rt, bundle, "true")
    assert (bundle.rootfs / "real" / "conf" / "stack").is_dir()


# -- mount order: a bind source under an earlier container mount ---------------------------------
@pytest.fixture
def order_tree(bundle):
    """bind-src/{a/x,b/y,c/z} with sym-{a,b,c} links, as mounts.bats'
    test_mount_order; bind-src itself unreachable for others."""
    src = bundle.path / "bind-src"
    for sub in ("a/x", "b/y", "c/z"):
        (src / sub).mkdir(parents=True)
        (src / sub / "file").write_text(sub + "\n")
        top = sub.split("/")[0]
        os.symlink(top, src / f"sym-{top}")
    os.chmod(src, 0o750)
    (bundle.rootfs / "final").mkdir()
    (bundle.rootfs / "mnt").mkdir()  # a container root in a user namespace cannot create it
    return src


def _order_mounts(bundle, src, idmap: bool) -> list[dict]:
    root = str(bundle.rootfs)

    def bind(s, d, opts=("rbind",)):
        m = {"source": str(s), "destination": d, "type": "bind", "options": [*opts, "rprivate"]}
        if "idmap" in opts:
            m["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            m["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        return m
    ctr = ("rbind", "idmap") if idmap else ("rbind",)
    return [bind(src / "a", "/mnt", ("bind",)), bind(src / "sym-b", "/mnt/x", ("bind",)),
            bind(src / "c", "/mnt/x/y", ("bind",)), bind(src / "sym-a", "/mnt/x/y/z", ("bind",)),
            # sources inside the container's tree, named by their host path
            bind(f"{root}/mnt/x", f"{root}/mnt/x/y/z/x", ctr), bind(f"{root}/mnt/x/y", f"{root}/mnt/x/y/z", ctr),
            bind(f"{root}/mnt", f"{root}/final", ctr)]


@NEWER(reason="runc 1.1.5 resolves the sources differently")
@pytest.mark.parametrize("variant", ["plain", "userns", "idmap", "userns-idmap"])
def test_mount_order_container_source(rt, bundle, order_tree, variant):
    if "idmap" in variant:
        from test_idmap import _REASON
        if _REASON:
            pytest.skip(_REASON)

    def cfg(c):
        if "userns" in variant:
            userns_config(c)
        c["mounts"] += _order_mounts(bundle, order_tree, "idmap" in variant)
    bundle.update(cfg)
    if "userns" in variant:
        make_reachable(bundle.rootfs)
    assert out(rt, bundle, "cat", "/final/x/y/z/z/x/y/z/x/file").strip() == "a/x"


def test_bind_source_the_user_namespace_cannot_reach(rt, bundle):
    """runc asks its host side for such a source (an O_PATH fd opened in the
    container's mount namespace): the container's root may not search it."""
    secret = bundle.path / "secret"
    (secret / "inner").mkdir(parents=True)
    (secret / "inner" / "f").write_text("ok\n")
    os.chmod(secret, 0o700)

    def cfg(c):
        userns_config(c)
        c["mounts"].append({"source": str(secret / "inner"), "destination": "/tmp/inner", "options": ["bind"]})
    bundle.update(cfg)
    make_reachable(bundle.rootfs)
    assert out(rt, bundle, "cat", "/tmp/inner/f") == "ok\n"


# -- bind targets through dangling symlinks ----------------------------------------------------------
def _check_target(rt, bundle, src, dest: str, real: str) -> None:
    saved = list(bundle.config["mounts"])
    bundle.config["mounts"].append({"source": str(src), "destination": dest, "options": ["bind"]})
    text = out(rt, bundle, "sh", "-c", f"stat -c '%n %d:%i' -- {real}; cat /proc/self/mounts")
    first = text.splitlines()[0]
    assert first.split()[0] == real
    assert mount_line(text, real)
    bundle.config["mounts"] = saved
    bundle.save()
    # the inode is the source's (device numbers differ inside: compare inodes)
    assert first.split()[1].split(":")[1] == str(os.stat(src).st_ino)


@NEWER(reason="runc 1.1.5 refuses dangling symlinks on the way")
def test_bind_through_dangling_symlink_component(rt, bundle):
    (bundle.rootfs / "etc" / "hosts").unlink(missing_ok=True)
    os.symlink("/tmp/foo/bar", bundle.rootfs / "jump")
    os.symlink("/jump/baz/hosts", bundle.rootfs / "etc" / "hosts")
    (bundle.path / "hosts-src").write_text("x\n")
    _check_target(rt, bundle, bundle.path / "hosts-src", "/etc/hosts", "/tmp/foo/bar/baz/hosts")


@NEWER(reason="runc 1.1.5 refuses a trailing dangling symlink")
@pytest.mark.parametrize("kind", ["file", "dir"])
def test_bind_through_trailing_dangling_symlink(rt, bundle, kind):
    (bundle.rootfs / "etc" / "hosts").unlink(missing_ok=True)
    os.symlink("/tmp/hosts", bundle.rootfs / "etc" / "hosts")
    (bundle.path / "hosts-src").write_text("x\n")
    src = bundle.path / "hosts-src" if kind == "file" else bundle.path
    _check_target(rt, bundle, src, "/etc/hosts", "/tmp/hosts")


# -- /proc, /dev ----------------------------------------------------------------------------------------
def test_proc_symlink_refused(rt, bundle, leakcheck):
    os.rmdir(bundle.rootfs / "proc")
    (bundle.rootfs / "bad-proc").mkdir()
    os.symlink("/bad-proc", bundle.rootfs / "proc")
    res = run(rt, bundle, "true")
    res.expect_fail(match="must be mounted on ordinary directory")
    leakcheck.assert_clean()


@NEWER(reason="runc 1.1.5 leaves /dev writable")
def test_ro_dev(rt, bundle):
    for m in bundle.config["mounts"]:
        if m["destination"] == "/dev":
            m["options"].append("ro")
    assert "ro" in opts_of(out(rt, bundle, "cat", "/proc/mounts"), "/dev")


@NEWER(reason="runc 1.1.5 leaves /sys/fs/cgroup writable")
@pytest.mark.parametrize("cgroupns", [False, True])
def test_cgroup_mounts_read_only(rt, bundle, cgroupns):
    def cfg(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "cgroup"]
        if cgroupns:
            c["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.update(cfg)
    text = out(rt, bundle, "cat", "/proc/mounts")
    # every hierarchy (v1: each under runc's writable tmpfs; v2: the one mount)
    cg = {ln.split()[1] for ln in text.splitlines()
          if ln.split()[1].startswith("/sys/fs/cgroup") and ln.split()[2] in ("cgroup", "cgroup2")}
    assert cg
    for mp in cg:
        assert "ro" in opts_of(text, mp), mount_line(text, mp)


# -- bind flags over a source mount's flags (mounts_sshfs.bats, with a tmpfs) ---------------------
@pytest.fixture
def srcmnt(bundle):
    """A tmpfs on the host standing for mounts_sshfs.bats' fuse mount; set(flags)
    re-flags it (a bind remount, so nothing sticks to the superblock)."""
    from pyrunc.linux import consts as C
    from pyrunc.linux import sys as L
    from pyrunc.rootfs import options as O
    d = bundle.path / "fuse-sshfs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "rw,suid,dev,exec,diratime,strictatime", "tmpfs", str(d)], check=True)

    def set_flags(flags: str) -> None:
        L.mount(None, str(d), None, C.MS_REMOUNT | C.MS_BIND | C.MS_STRICTATIME)  # diratime,atime,strictatime
        L.mount(None, str(d), None, C.MS_REMOUNT | C.MS_BIND | O.parse(flags.split(",")).flags)
    set_flags.path = d
    yield set_flags
    subprocess.run(["umount", "-l", str(d)], check=False)


def _bind_flags(rt, bundle, srcmnt, host: str, bind: str, userns: bool):
    srcmnt(host)

    def cfg(c):
        if userns:
            userns_config(c)
        c["mounts"] = [m for m in c["mounts"] if m["destination"] != "/mnt"]
        c["mounts"].append({"source": str(srcmnt.path), "destination": "/mnt", "type": "bind",
                            "options": bind.split(",")})
    bundle.update(cfg)
    (bundle.rootfs / "mnt").mkdir(exist_ok=True)
    if userns:
        make_reachable(bundle.rootfs)
    return run(rt, bundle, "cat", "/proc/self/mounts")


def _expect(res, want: str) -> None:
    """want: "ro,!rw,noexec" — options that must (or, with !, must not) show."""
    assert res.rc == 0, str(res)
    got = opts_of(res.stdout, "/mnt")
    for w in want.split(","):
        if w.startswith("!"):
            assert w[1:] not in got, (want, got)
        else:
            assert w in got, (want, got)


STRICT = "!noatime,!relatime,!nodiratime"

# (host flags, bind options, expected without a user namespace, expected with one; None: refused)
SSHFS_CASES = [
    ("ro,noexec,nosymfollow,nodiratime", "bind", "ro,!rw,noexec,nodiratime,nosymfollow",
     "ro,!rw,noexec,nodiratime,nosymfollow"),
    ("ro,noexec,nosymfollow,nodiratime", "bind,dev", "!ro,rw,!noexec,!nosymfollow,nodiratime",
     "ro,!rw,noexec,nodiratime,!nosymfollow"),
    ("ro", "bind,nosuid,nodev,rprivate", "!ro,rw,nosuid,nodev", "ro,nosuid,nodev"),
    ("ro", "bind,rw,nosuid,nodev,rprivate", "!ro,rw,nosuid,nodev", None),
    ("nosuid,nodev,noexec,noatime", "bind,dev,suid,exec,atime", "!ro,rw,!nosuid,!nodev,!noexec,noatime", None),
    ("rw,nodev,nosuid,noexec,noatime", "bind,ro", "ro,!nosuid,!nodev,!noexec", "ro,nosuid,nodev,noexec"),
    ("rw,nodev,nosymfollow", "bind,ro,symfollow", "ro,!rw,!nodev,!nosymfollow", "ro,nodev,!nosymfollow"),
    ("rw,nodev,nosymfollow", "bind,rw", "rw,!nodev,!nosymfollow", "rw,nodev,!nosymfollow"),
    ("nodev,nosuid,noatime", "bind,ro,exec", "ro,!noexec,!nosuid,!nodev,noatime",
     "ro,!noexec,nosuid,nodev,noatime"),
    # atime: kept unless another is asked for; with a user namespace all are locked
    ("noatime", "bind", "noatime,!relatime", "noatime,!relatime"),
    ("noatime", "bind,norelatime", "noatime,!relatime", "noatime,!relatime"),
    ("noatime", "bind,atime", "noatime,!relatime", "noatime,!relatime"),
    ("noatime", "bind,relatime", "!noatime,relatime", None),
    ("noatime", "bind,nodiratime", "!noatime,nodiratime,relatime", None),
    ("noatime", "bind,strictatime", STRICT, None),
    ("nodiratime", "bind,strictatime", STRICT, None),
    ("noatime", "bind,nodiratime,strictatime", "!noatime,nodiratime,!relatime", None),
    ("noatime", "bind,nodiratime,norelatime", "!noatime,nodiratime,relatime", None),
    ("strictatime", "bind", STRICT, STRICT),
    ("relatime", "bind", "relatime", "relatime"),
    ("nodiratime", "bind", "nodiratime", "nodiratime"),
    ("noatime,nodiratime", "bind", "noatime,nodiratime", "noatime,nodiratime"),
    ("noatime,nodiratime", "bind,norelatime", "noatime,nodiratime", "noatime,nodiratime"),
    ("relatime", "bind,strictatime", STRICT, None),
    ("nodiratime", "bind,noatime", "noatime", None),
    ("relatime", "bind,noatime", "noatime", None),
    ("relatime", "bind,nodiratime", "nodiratime", None),
    ("strictatime", "bind,relatime", "relatime", None),
    ("strictatime", "bind,noatime", "noatime", None),
    ("strictatime", "bind,nodiratime", "nodiratime", None),
    ("strictatime", "bind,nostrictatime", STRICT, STRICT),
    ("nodiratime", "bind,diratime", "nodiratime", "nodiratime"),
    ("nodiratime", "bind,norelatime", "nodiratime", "nodiratime"),
    ("relatime", "bind,norelatime", "relatime", "relatime"),
    ("noatime,nodiratime", "bind,atime", "noatime,nodiratime", "noatime,nodiratime"),
]


@NEWER(reason="runc 1.1.5 keeps no locked flags and clears none")
@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("host, bind, plain, in_userns", SSHFS_CASES,
                         ids=[f"{h}->{b}" for h, b, _, _ in SSHFS_CASES])
def test_bind_flags_over_source_flags(rt, bundle, srcmnt, host, bind, plain, in_userns, userns):
    want = in_userns if userns else plain
    res = _bind_flags(rt, bundle, srcmnt, host, bind, userns)
    if want is None:
        res.expect_fail(match=r"error mounting.*operation not permitted", one_line=True)
    else:
        _expect(res, want)


# -- recursive flags (mounts_recursive.bats) ---------------------------------------------------------
@pytest.fixture
def volume(bundle):
    """A host tmpfs with another tmpfs mounted at subvol/ below it."""
    v = bundle.path / "volume"
    v.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", str(v)], check=True)
    try:
        (v / "foo").write_text("foo\n")
        (v / "subvol").mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "none", str(v / "subvol")], check=True)
        (v / "subvol" / "bar").write_text("bar\n")
        yield v
    finally:
        subprocess.run(["umount", "-R", "-l", str(v)], check=False)


@pytest.mark.parametrize("opts, sub_ro", [(["rbind", "ro"], False), (["rbind", "rro"], True),
                                          (["rbind", "ro", "rro"], True)])
def test_rbind_ro_and_rro(rt, bundle, volume, opts, sub_ro):
    bundle.config["mounts"].append({"source": str(volume), "destination": "/mnt", "options": opts})
    text = out(rt, bundle, "sh", "-c", "touch /mnt/foo 2>&1; touch /mnt/subvol/bar 2>&1; echo done")
    lines = text.splitlines()
    assert "Read-only file system" in lines[0]
    assert ("Read-only file system" in lines[1]) == sub_ro, text


@NEWER(reason="runc 1.1.5 refuses ratime & co (EINVAL)")
def test_rbind_recursive_atime(rt, bundle, volume):
    want = {"ratime": "relatime", "rnoatime": "noatime", "rstrictatime": None, "rnostrictatime": "relatime",
            "rrelatime": "relatime", "rnorelatime": "relatime"}
    for i, opt in enumerate(want, 1):
        bundle.config["mounts"].append({"source": str(volume), "destination": f"/mnt{i}", "options": ["rbind", opt]})
    text = out(rt, bundle, "cat", "/proc/self/mounts")
    for i, (opt, atime) in enumerate(want.items(), 1):
        for mp in (f"/mnt{i}", f"/mnt{i}/subvol"):
            got = opts_of(text, mp)
            assert "rw" in got
            if atime is None:
                assert not got & {"relatime", "noatime"}, (opt, mp, got)
            else:
                assert atime in got and not got & ({"relatime", "noatime"} - {atime}), (opt, mp, got)


# -- rootfsPropagation, --no-pivot -----------------------------------------------------------------
def test_rootfs_propagation_shared(rt, bundle):
    bundle.config["linux"]["rootfsPropagation"] = "shared"
    line = next(ln for ln in out(rt, bundle, "cat", "/proc/self/mountinfo").splitlines() if ln.split()[4] == "/")
    assert "shared:" in line.split(" - ")[0], line


@NEWER(reason="runc 1.1.5 leaves the host's /proc reachable under --no-pivot")
def test_no_pivot_does_not_expose_bare_proc(rt, bundle):
    """no_pivot.bats: with the host's full procfs gone from the mount
    namespace, a fresh procfs cannot be mounted (the kernel wants an unmasked
    one to exist). Recent kernels (6.18 here) refuse it even when the host's
    /proc is still there under the moved root: there this test also passes
    without the unmounting in Rootfs._move_root."""
    caps = bundle.config["process"]["capabilities"]
    for k in ("bounding", "permitted", "effective"):
        caps[k] = sorted(set(caps.get(k, [])) | {"CAP_SETFCAP"})
    bundle.set_args("unshare", "-mrpf", "sh", "-c", "mount -t proc none /proc && echo h > /proc/sysrq-trigger")
    res = rt.run_fg(rt.new_id(), bundle, "--no-pivot")
    assert res.rc == 1, str(res)
    assert "permission denied" in (res.stdout + res.stderr).lower(), str(res)


# -- masked paths (mask.bats) -----------------------------------------------------------------------
@pytest.fixture
def masked(bundle):
    for d in ("testdir", "testdir2", "testdir3"):
        (bundle.rootfs / d).mkdir()
    (bundle.rootfs / "testfile").write_text("Forbidden information!\n")
    bundle.config["linux"]["maskedPaths"] += ["/testdir", "/testfile"]
    return bundle


def test_masked_file_and_directory(rt, masked):
    text = out(rt, masked, "sh", "-c", "cat /testfile; ls /testdir; echo ---; rm -f /testfile 2>&1; "
                                       "touch /testdir/foo 2>&1; umount /testfile 2>&1; umount /testdir 2>&1; true")
    head, _, tail = text.partition("---\n")
    assert head == ""
    lines = tail.splitlines()
    assert "Read-only file system" in lines[0] and "Read-only file system" in lines[1]
    assert all(("Operation not permitted" in ln or "Permission denied" in ln) for ln in lines[2:4]), text


@NEWER(reason="runc 1.1.5 mounts a path listed twice twice")
def test_masked_paths_listed_twice_are_masked_once(rt, masked):
    masked.config["linux"]["maskedPaths"] += ["/testdir", "/testfile"]
    text = out(rt, masked, "cat", "/proc/self/mounts")
    assert len([ln for ln in text.splitlines() if ln.split()[1] == "/testdir"]) == 1
    assert len([ln for ln in text.splitlines() if ln.split()[1] == "/testfile"]) == 1


@NEWER(reason="runc 1.1.5 gives each masked directory its own tmpfs")
@pytest.mark.parametrize("readonly_root", [False, True])
def test_masked_directories_share_one_tmpfs(rt, masked, readonly_root):
    masked.config["linux"]["maskedPaths"] += ["/testdir2", "/testdir3"]
    masked.config["root"]["readonly"] = readonly_root
    text = out(rt, masked, "sh", "-c", "stat -c %d /testdir /testdir2 /testdir3; ls /testdir; "
                                       "touch /testdir2/foo 2>&1; true")
    lines = text.splitlines()
    assert lines[0] == lines[1] == lines[2], text
    assert "Read-only file system" in lines[3], text



# -- /dev (dev.bats) -------------------------------------------------------------------------------------
@pytest.mark.parametrize("path, minor", [("/dev/tty", 0), ("/dev/ptmx", 2)])
def test_redundant_default_device(rt, bundle, path, minor):
    bundle.config["linux"]["devices"] = [{"path": path, "type": "c", "major": 5, "minor": minor}]
    line = out(rt, bundle, "ls", "-lLn", path).splitlines()[0]
    assert re.match(rf"crw-rw-rw-\s+1\s+0\s+0\s+5,\s+{minor}\s.*{path}$", line), line


def test_mount_on_top_of_rootfs_refused(rt, bundle, leakcheck):
    bundle.config["mounts"].append({"source": "tmpfs", "destination": "/", "type": "tmpfs"})
    run(rt, bundle, "true").expect_fail(match="is on the top of rootfs", one_line=True)
    leakcheck.assert_clean()
