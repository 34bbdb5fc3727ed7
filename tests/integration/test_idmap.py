"""Idmapped bind mounts (issue 11, item 16), after runc 1.5's idmap.bats: a
mount's own uidMappings/gidMappings (with or without "idmap"), the implied
mapping of the container's user namespace ("idmap"/"ridmap" alone, also when
joining one), recursive or not, several mounts with different mappings, and
the mount source fds closed afterwards. Ownership is read with `stat` from
inside the container."""
from __future__ import annotations

import os
import subprocess

import pytest

from helpers_userns import make_reachable, userns_config

pytestmark = pytest.mark.runc_ref_differs(reason="runc 1.1.5 predates idmapped mounts")

OVERFLOW = open("/proc/sys/kernel/overflowuid").read().strip(), open("/proc/sys/kernel/overflowgid").read().strip()

# owners of the files in each source, as idmap.bats sets them up
OWNERS = {
    "1": {"foo.txt": (0, 0)},
    "2": {"foo.txt": (1, 1)},
    "multi1": {"foo.txt": (100, 211), "bar.txt": (101, 222), "baz.txt": (102, 233)},
    "multi2": {"foo.txt": (200, 211), "bar.txt": (201, 222), "baz.txt": (202, 233)},
    "multi3": {"foo.txt": (5000528, 6000491), "bar.txt": (5000133, 6000337), "baz.txt": (5000999, 6000444)},
}
SUBTREE = {"foo.txt": (100, 211), "bar.txt": (200, 222), "baz.txt": (300, 233)}

# the mapping idmap.bats uses for the mount tree
TREE_UIDS = [{"containerID": 100, "hostID": 101000, "size": 3}, {"containerID": 200, "hostID": 102000, "size": 3},
             {"containerID": 300, "hostID": 103000, "size": 3}]
TREE_GIDS = [{"containerID": 210, "hostID": 101100, "size": 10}, {"containerID": 220, "hostID": 102200, "size": 10},
             {"containerID": 230, "hostID": 103300, "size": 10}]


def _idmap_supported() -> str | None:
    """None when this kernel can idmap a bind mount of a tmpfs (where the
    bundles live), else the reason. The probe idmaps a detached clone."""
    try:
        from pyrunc.linux import consts as C
        from pyrunc.linux import sys as L
        from pyrunc.rootfs.idmap import _userns_with_maps
    except ImportError:
        return "pyrunc is not importable to probe idmapped mounts"
    try:
        tree = L.open_tree(-100, "/dev/shm", C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC)
    except OSError as e:
        return f"open_tree: {e.strerror}"
    try:
        ns = _userns_with_maps([{"containerID": 0, "hostID": 1000, "size": 1}],
                               [{"containerID": 0, "hostID": 1000, "size": 1}])
        try:
            L.mount_setattr(tree, "", C.AT_EMPTY_PATH, C.MOUNT_ATTR_IDMAP, userns_fd=ns)
        finally:
            os.close(ns)
    except OSError as e:
        return f"idmapped mounts of tmpfs are not supported by this kernel ({e.strerror})"
    finally:
        os.close(tree)
    return None


_REASON = _idmap_supported()
pytestmark = [pytestmark, pytest.mark.skipif(_REASON is not None, reason=str(_REASON))]


@pytest.fixture
def idb(bundle):
    """The bundle with idmap.bats' sources beside the rootfs: source-*/ and
    mnt-subtree/ (with multi1, multi2 bind-mounted under it by tree())."""
    for name, files in OWNERS.items():
        d = bundle.path / f"source-{name}"
        d.mkdir()
        for f, (u, g) in files.items():
            (d / f).touch()
            os.chown(d / f, u, g)
    os.symlink("source-multi1", bundle.path / "source-multi1-symlink")
    sub = bundle.path / "mnt-subtree"
    for d in ("multi1", "multi2"):
        (sub / d).mkdir(parents=True)
    for f, (u, g) in SUBTREE.items():
        (sub / f).touch()
        os.chown(sub / f, u, g)
    make_reachable(bundle.path)
    bundle.host_mounts = []
    yield bundle
    for mp in reversed(bundle.host_mounts):
        subprocess.run(["umount", "-l", mp], check=False)


def tree(b) -> None:
    """mnt-subtree/multi{1,2} bind-mounted from source-multi{1,2} on the host."""
    for d in ("multi1", "multi2"):
        mp = str(b.path / "mnt-subtree" / d)
        subprocess.run(["mount", "--bind", str(b.path / f"source-{d}"), mp], check=True)
        b.host_mounts.append(mp)


def userns(c: dict) -> None:
    userns_config(c)


def mount(src: str, dest: str, opts=("bind",), uids=None, gids=None) -> dict:
    m = {"source": src, "destination": dest, "options": list(opts)}
    if uids is not None:
        m["uidMappings"] = uids
    if gids is not None:
        m["gidMappings"] = gids
    return m


def one(uid: str, gid: str) -> tuple[list[dict], list[dict]]:
    """ctr:host:size strings, as idmap.bats' setup_idmap_single_mount takes them."""
    u = [dict(zip(("containerID", "hostID", "size"), map(int, uid.split(":"))))]
    g = [dict(zip(("containerID", "hostID", "size"), map(int, gid.split(":"))))]
    return u, g


BASIC = one("0:100000:65536", "0:100000:65536")


def stat_all(rt, b, paths: str) -> dict[str, str]:
    """{path: "uid=gid"} as the container sees them."""
    b.sh(f"for f in {paths}; do stat -c '%n:%u=%g' $f; done")
    res = rt.run_fg(rt.new_id(), b)
    assert res.rc == 0, str(res)
    return dict(line.rsplit(":", 1) for line in res.out_lines)


def add(b, *mounts: dict, ns: bool = False) -> None:
    def cfg(c):
        if ns:
            userns(c)
        c["mounts"].extend(mounts)
    b.update(cfg)


# -- one mount ------------------------------------------------------------------------------------
@pytest.mark.parametrize("ns, expect", [(True, "0=0"), (False, "100000=100000")])
def test_simple_idmap_mount(rt, idb, ns, expect):
    add(idb, mount("source-1/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]), ns=ns)
    assert stat_all(rt, idb, "/tmp/mount-1/foo.txt") == {"/tmp/mount-1/foo.txt": expect}


def test_write_to_idmap_mount_userns(rt, idb):
    add(idb, mount("source-1/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]), ns=True)
    assert stat_all(rt, idb, "$(touch /tmp/mount-1/bar && echo /tmp/mount-1/bar)") == {"/tmp/mount-1/bar": "0=0"}
    st = os.stat(idb.path / "source-1" / "bar")
    assert (st.st_uid, st.st_gid) == (0, 0)  # written through the mapping: on disk as 0


def test_write_to_idmap_mount_without_userns_fails(rt, idb):
    """Root of the host (uid 0) has no mapping in the mount: EOVERFLOW."""
    add(idb, mount("source-1/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]))
    idb.sh("touch /tmp/mount-1/bar")
    res = rt.run_fg(rt.new_id(), idb)
    assert res.rc != 0
    assert "Value too large for defined data type" in res.stdout + res.stderr


def test_idmap_mount_with_propagation(rt, idb):
    add(idb, mount("source-1/", "/tmp/mount-1", opts=("bind", "shared"), uids=BASIC[0], gids=BASIC[1]), ns=True)
    idb.sh("grep ' /tmp/mount-1 ' /proc/self/mountinfo")
    res = rt.run_fg(rt.new_id(), idb)
    assert res.rc == 0 and " shared:" in res.stdout, str(res)


def test_idmap_mount_with_relative_destination(rt, idb):
    add(idb, mount("source-1/", "tmp/mount-1", uids=BASIC[0], gids=BASIC[1]), ns=True)
    assert stat_all(rt, idb, "/tmp/mount-1/foo.txt") == {"/tmp/mount-1/foo.txt": "0=0"}


@pytest.mark.parametrize("ns, idmapped, plain", [(True, "0=0", "%s=%s" % OVERFLOW), (False, "100000=100000", "0=0")])
def test_idmap_mount_beside_plain_bind(rt, idb, ns, idmapped, plain):
    add(idb, mount("source-1/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]),
        mount("source-1/", "/tmp/bind-mount-1"), ns=ns)
    assert stat_all(rt, idb, "/tmp/mount-1/foo.txt /tmp/bind-mount-1/foo.txt") == {
        "/tmp/mount-1/foo.txt": idmapped, "/tmp/bind-mount-1/foo.txt": plain}


def test_two_idmap_mounts_with_two_binds(rt, idb):
    add(idb, mount("source-1/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]),
        mount("source-1/", "/tmp/bind-mount-1"), mount("source-2/", "/tmp/bind-mount-2"),
        mount("source-2/", "/tmp/mount-2", uids=BASIC[0], gids=BASIC[1]), ns=True)
    assert stat_all(rt, idb, "/tmp/mount-1/foo.txt /tmp/mount-2/foo.txt") == {
        "/tmp/mount-1/foo.txt": "0=0", "/tmp/mount-2/foo.txt": "1=1"}


# -- several mounts, different mappings -----------------------------------------------------------
@pytest.mark.parametrize("ns", [True, False])
def test_same_source_different_mappings(rt, idb, ns):
    add(idb, mount("source-multi1/", "/tmp/mount-multi1", uids=one("100:100000:100", "200:100000:100")[0],
                   gids=one("100:100000:100", "200:100000:100")[1]),
        mount("source-multi1/", "/tmp/mount-multi1-alt", uids=one("100:101000:100", "200:102000:100")[0],
              gids=one("100:101000:100", "200:102000:100")[1]),
        mount("source-multi1-symlink/", "/tmp/mount-multi1-alt-sym", uids=one("100:102000:100", "200:103000:100")[0],
              gids=one("100:102000:100", "200:103000:100")[1]), ns=ns)
    got = stat_all(rt, idb, "/tmp/mount-multi1*/*.txt")
    base = 0 if ns else 100000
    want = {}
    for dest, (u0, g0) in (("mount-multi1", (0, 11)), ("mount-multi1-alt", (1000, 2011)),
                           ("mount-multi1-alt-sym", (2000, 3011))):
        for i, f in enumerate(("foo", "bar", "baz")):
            want[f"/tmp/{dest}/{f}.txt"] = f"{base + u0 + i}={base + g0 + 11 * i}"
    assert got == want


@pytest.mark.parametrize("ns", [True, False])
def test_multiple_mounts_different_mappings(rt, idb, ns):
    off = 100000 if ns else 0  # the host ids the container's user namespace maps to 0...
    maps = [("multi1", f"100:{off + 1100}:3", f"200:{off + 1900}:50"),
            ("multi2", f"200:{off + 2200}:3", f"200:{off + 2900}:100"),
            ("multi3", f"5000000:{off + 3000}:1000", f"6000000:{off + 3000}:500")]
    add(idb, *[mount(f"source-{n}/", f"/tmp/mount-{n}", uids=one(u, g)[0], gids=one(u, g)[1]) for n, u, g in maps],
        ns=ns)
    got = stat_all(rt, idb, "/tmp/mount-multi[123]/*.txt")
    assert got == {
        "/tmp/mount-multi1/foo.txt": "1100=1911", "/tmp/mount-multi1/bar.txt": "1101=1922",
        "/tmp/mount-multi1/baz.txt": "1102=1933", "/tmp/mount-multi2/foo.txt": "2200=2911",
        "/tmp/mount-multi2/bar.txt": "2201=2922", "/tmp/mount-multi2/baz.txt": "2202=2933",
        "/tmp/mount-multi3/foo.txt": "3528=3491", "/tmp/mount-multi3/bar.txt": "3133=3337",
        "/tmp/mount-multi3/baz.txt": "3999=3444"}


@pytest.mark.parametrize("ns", [True, False])
def test_complicated_mapping(rt, idb, ns):
    off = 100000 if ns else 0
    uids = [{"containerID": 100 + i, "hostID": off + 1000 * (i + 1), "size": 1} for i in range(3)]
    gids = [{"containerID": 210 + 10 * i, "hostID": off + 1100 * (i + 1), "size": 10} for i in range(3)]
    add(idb, mount("source-multi1/", "/tmp/mount-multi1", uids=uids, gids=gids), ns=ns)
    assert stat_all(rt, idb, "/tmp/mount-multi1/*.txt") == {
        "/tmp/mount-multi1/foo.txt": "1000=1101", "/tmp/mount-multi1/bar.txt": "2000=2202",
        "/tmp/mount-multi1/baz.txt": "3000=3303"}


def test_source_fds_closed(rt, idb):
    """Twenty idmapped mounts and RLIMIT_NOFILE 20: every tree fd the parent
    sent is closed in the init (looked at while it waits for `start`)."""
    mounts = []
    for i in range(1, 11):
        mounts += [mount("source-1/", f"/tmp/mount-1{i}", uids=BASIC[0], gids=BASIC[1]),
                   mount("source-2/", f"/tmp/mount-2{i}", uids=BASIC[0], gids=BASIC[1])]
    add(idb, *mounts, ns=True)
    idb.config["mounts"].append({"destination": "/host", "type": "bind", "source": str(idb.hostdir),
                                 "options": ["rbind"]})
    idb.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 20, "hard": 20}]
    idb.save()
    idb.sh("stat -c %u=%g /tmp/mount-11/foo.txt > /host/out")
    cid = rt.new_id()
    rt.create(cid, idb).expect_ok()
    pid = rt.state(cid)["pid"]
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    # a detached tree reads as "/": count them (the init holds a handful of its own)
    assert len(held) < 10, held
    rt.start(cid).expect_ok()
    assert idb.wait_host_file("out", contains="=").strip() == "0=0"


# -- mount trees: idmap, ridmap, implied mappings --------------------------------------------------
def _tree_want(top: str, sub: str, ns: bool) -> dict[str, str]:
    """What stat shows for mnt-subtree and its two child mounts: each level
    "mapped" (TREE_UIDS/TREE_GIDS), "implied" (the container's own mapping:
    on-disk ids shown as they are) or "plain" (not idmapped)."""
    shift = 0 if ns else 100000  # TREE_* map to 101000...: 1000... in the user namespace
    uid = {100: 1000, 101: 1001, 102: 1002, 200: 2000, 201: 2001, 202: 2002, 300: 3000}
    gid = {211: 1101, 222: 2202, 233: 3303}

    def show(level: str, u: int, g: int) -> str:
        if level == "mapped":
            return f"{uid[u] + shift}={gid[g] + shift}"
        if level == "implied" or not ns:
            return f"{u}={g}"
        return "%s=%s" % OVERFLOW  # on-disk ids outside the container's mapping

    want = {f"/tmp/mount-tree/{f}": show(top, u, g) for f, (u, g) in SUBTREE.items()}
    for d in ("multi1", "multi2"):
        want.update({f"/tmp/mount-tree/{d}/{f}": show(sub, u, g) for f, (u, g) in OWNERS[d].items()})
    return want


@pytest.mark.parametrize("ns", [True, False], ids=["userns", "no-userns"])
@pytest.mark.parametrize("opts, recursive", [(("rbind",), False), (("rbind", "idmap"), False),
                                             (("rbind", "ridmap"), True)], ids=["rbind", "idmap", "ridmap"])
def test_mount_tree_own_mapping(rt, idb, ns, opts, recursive):
    tree(idb)
    add(idb, mount("mnt-subtree/", "/tmp/mount-tree", opts=opts, uids=TREE_UIDS, gids=TREE_GIDS), ns=ns)
    want = _tree_want("mapped", "mapped" if recursive else "plain", ns)
    assert stat_all(rt, idb, "/tmp/mount-tree/*.txt /tmp/mount-tree/multi[12]/*.txt") == want


@pytest.mark.parametrize("opt, recursive", [("idmap", False), ("ridmap", True)])
def test_mount_tree_implied_mapping(rt, idb, opt, recursive):
    tree(idb)
    add(idb, mount("mnt-subtree/", "/tmp/mount-tree", opts=("rbind", opt)), ns=True)
    want = _tree_want("implied", "implied" if recursive else "plain", ns=True)
    assert stat_all(rt, idb, "/tmp/mount-tree/*.txt /tmp/mount-tree/multi[12]/*.txt") == want


def test_mount_tree_implied_mapping_joined_userns(rt, idb, make_bundle):
    """"idmap" without mappings in a container that joins another's user
    namespace: the joined namespace's mapping."""
    target = make_bundle(name="target")
    target.update(userns)
    make_reachable(target.path)
    tid = rt.new_id("target")
    rt.run_d(tid, target).expect_ok()
    try:
        pid = rt.state(tid)["pid"]
        tree(idb)

        def cfg(c):
            userns(c)
            del c["linux"]["uidMappings"], c["linux"]["gidMappings"]
            for n in c["linux"]["namespaces"]:
                if n["type"] == "user":
                    n["path"] = f"/proc/{pid}/ns/user"
            c["mounts"].append(mount("mnt-subtree/", "/tmp/mount-tree", opts=("rbind", "idmap")))
        idb.update(cfg)
        want = _tree_want("implied", "plain", ns=True)
        assert stat_all(rt, idb, "/tmp/mount-tree/*.txt /tmp/mount-tree/multi[12]/*.txt") == want
    finally:
        rt.delete(tid, force=True)


def test_missing_source_is_one_clean_error(rt, idb, leakcheck):
    add(idb, mount("no-such-source/", "/tmp/mount-1", uids=BASIC[0], gids=BASIC[1]), ns=True)
    idb.set_args("true")
    rt.fail("run", "--bundle", idb.path, rt.new_id(), match=r"error mounting .*no-such-source.*No such file",
            one_line=True)
    leakcheck.assert_clean()

