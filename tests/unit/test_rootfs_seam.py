"""The rootfs preparation's mount, device and pivot calls, in order and with
their arguments, through a recorder in place of the syscall seam
(pyrunc.linux.sys.sc): no kernel mount, no root, no namespaces.

The code under test resolves and creates its paths for real in a temporary
directory standing for the rootfs (openat2, mkdir, symlink); the recorder
shows every /proc/self/fd/N target as the path it names, so the expected
calls below read as runc's prepareRootfs does: `f"{R}/proc"` is the
rootfs' /proc.
"""
from __future__ import annotations

import errno
import os
import re
import stat

import pytest

from pyrunc.errors import PyruncError
from pyrunc.linux import consts as C
from pyrunc.linux import sys as L
from pyrunc.rootfs import hostns, setup
from pyrunc.rootfs import options as O
from pyrunc.rootfs.setup import Rootfs, finalize, finalize_paths
from pyrunc.spec.example import example
from syscall_recorder import RecordingSyscalls, fd_where

NOSUID, NODEV, NOEXEC, RDONLY = C.MS_NOSUID, C.MS_NODEV, C.MS_NOEXEC, C.MS_RDONLY
BIND, REC, REMOUNT = C.MS_BIND, C.MS_REC, C.MS_REMOUNT


@pytest.fixture
def root(tmp_path) -> str:
    """An empty rootfs in a bundle: <tmp>/bundle/rootfs."""
    r = tmp_path / "bundle" / "rootfs"
    for d in ("proc", "dev", "sys", "etc", "tmp"):
        (r / d).mkdir(parents=True)
    return os.path.realpath(r)


def rootfs(spec: dict, root: str, rec: RecordingSyscalls, **kw) -> Rootfs:
    """A Rootfs whose sync callbacks leave a marker in the call list."""
    args = dict(userns=False, cgroupns=True,
                join_cgroup=lambda: rec.note("join cgroup"),
                runtime_hooks=lambda: rec.note("createRuntime hooks"),
                container_hooks=lambda: rec.note("createContainer hooks"),
                cgroup_mounts=[("", "/sys/fs/cgroup", "/sys/fs/cgroup/c1")])
    args.update(kw)
    return Rootfs(spec, root, os.path.dirname(root), **args)


def opened(rf: Rootfs) -> Rootfs:
    """rf with its rootfs fd open, as prepare() has it when it mounts."""
    rf.rootfd = os.open(rf.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return rf


def open_fds() -> set[int]:
    """This process's open fds (not the one the listing itself used)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue
        fds.add(int(name))
    return fds


def keep(path: str) -> int:
    """The nosuid/nodev/noexec flags a read-only remount keeps (statvfs)."""
    return os.statvfs(path).f_flag & (NOSUID | NODEV | NOEXEC)


def devices(R: str, specs=setup.DEFAULT_DEVICES) -> list[tuple]:
    calls = []
    for path, typ, major, minor, mode in specs:
        calls.append(("mknod", R + path, stat.S_IFCHR | mode, os.makedev(major, minor)))
        calls.append(("chown", R + path, 0, 0))
    return calls


def pivot(R: str) -> list[tuple]:
    """runc's pivotRoot: pivot_root(".", ".") from inside the new root, then
    the old root (stacked on top) made rslave and detached from there."""
    return [("fchdir", R), ("pivot_root", ".", "."), ("fchdir", "/"),
            ("mount", None, ".", None, C.MS_SLAVE | REC, None),
            ("umount2", ".", C.MNT_DETACH), ("chdir", "/")]


def test_the_recorder_covers_the_whole_seam():
    seam = {n for n in vars(L.Syscalls) if not n.startswith("_")}
    assert seam <= set(dir(RecordingSyscalls)), seam - set(dir(RecordingSyscalls))
    assert isinstance(L.sc, L.Syscalls)


# -- the whole sequence ------------------------------------------------------------

def test_default_config(syscalls, root):
    """runc spec's config: propagation, the rootfs bind, its seven mounts in
    order, the cgroup join and namespace before the cgroup mount, devices,
    the hook points, then pivot_root."""
    R = root
    spec = example(cgroupns=True)
    rootfs(spec, R, syscalls).prepare()
    mountflags = NOSUID | NOEXEC | NODEV
    assert syscalls.calls == [
        ("mount", None, "/", None, C.MS_SLAVE | REC, None),
        ("mount", None, os.path.dirname(R), None, C.MS_PRIVATE, None),
        ("mount", R, R, "bind", BIND | REC, None),
        ("mount", "proc", f"{R}/proc", "proc", 0, None),
        # a tmpfs takes the mode of the directory it covers, its own mode= wins
        ("mount", "tmpfs", f"{R}/dev", "tmpfs", NOSUID | C.MS_STRICTATIME, "mode=0755,mode=755,size=65536k"),
        ("mount", "devpts", f"{R}/dev/pts", "devpts", NOSUID | NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ("mount", "shm", f"{R}/dev/shm", "tmpfs", mountflags, "mode=1777,size=65536k"),
        ("mount", "mqueue", f"{R}/dev/mqueue", "mqueue", mountflags, None),
        ("mount", "sysfs", f"{R}/sys", "sysfs", mountflags | RDONLY, None),
        ("join cgroup",),
        ("unshare", C.CLONE_NEWCGROUP),
        ("mount", "cgroup2", f"{R}/sys/fs/cgroup", "cgroup2", mountflags | C.MS_RELATIME | RDONLY, None),
        *devices(R),
        ("createRuntime hooks",),
        ("fchdir", R),  # the createContainer hooks run from the rootfs
        ("createContainer hooks",),
        *pivot(R),
    ]
    assert os.readlink(f"{R}/dev/ptmx") == "pts/ptmx"
    assert os.readlink(f"{R}/dev/fd") == "/proc/self/fd"


def test_default_config_finalize(syscalls, root):
    """After the pivot: readonlyPaths bound onto themselves and remounted
    read-only, then maskedPaths: a file gets /dev/null, the first directory a
    read-only tmpfs, the next directories that same tmpfs; missing paths are
    skipped."""
    R = root
    for d in ("proc/sys", "proc/acpi", "proc/scsi", "sys/firmware"):
        os.makedirs(f"{R}/{d}")
    for f in ("proc/sysrq-trigger", "proc/kcore"):
        open(f"{R}/{f}", "w").close()
    spec = example(cgroupns=True)
    rootfd = os.open(R, os.O_PATH | os.O_DIRECTORY)
    before = open_fds()
    try:
        finalize_paths(rootfd, spec, R)
    finally:
        os.close(rootfd)
    ro = BIND | REMOUNT | RDONLY
    tiny = "nr_blocks=1,nr_inodes=1"
    assert syscalls.calls == [
        ("mount", f"{R}/proc/sys", f"{R}/proc/sys", None, BIND | REC, None),
        ("mount", None, f"{R}/proc/sys", None, ro | keep(f"{R}/proc/sys"), None),
        ("mount", f"{R}/proc/sysrq-trigger", f"{R}/proc/sysrq-trigger", None, BIND | REC, None),
        ("mount", None, f"{R}/proc/sysrq-trigger", None, ro | keep(f"{R}/proc/sysrq-trigger"), None),
        ("mount", "tmpfs", f"{R}/proc/acpi", "tmpfs", RDONLY, tiny),
        ("mount", "/dev/null", f"{R}/proc/kcore", None, BIND, None),
        ("mount", f"{R}/proc/acpi", f"{R}/sys/firmware", None, BIND, None),
        ("mount", f"{R}/proc/acpi", f"{R}/proc/scsi", None, BIND, None),
    ]
    assert open_fds() <= before


def test_late_readonly_tmpfs_and_readonly_root(syscalls, root):
    """A read-only tmpfs is mounted read-write (what lies below it is made
    first) and remounted read-only in finalize; root.readonly is the last
    remount, of / itself."""
    R = root
    os.mkdir(f"{R}/scratch")
    m = {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nosuid"]}
    rf = opened(rootfs({"mounts": [m]}, R, syscalls))
    rf.mount(m)
    assert syscalls.calls == [("mount", "tmpfs", f"{R}/scratch", "tmpfs", NOSUID, "mode=0755")]
    syscalls.calls.clear()
    rootfd = os.open(R, os.O_PATH | os.O_DIRECTORY)
    try:
        finalize_paths(rootfd, {"mounts": [m]}, R)
    finally:
        os.close(rootfd)
    assert syscalls.calls == [("mount", None, f"{R}/scratch", None, NOSUID | REMOUNT | BIND | RDONLY, None)]
    syscalls.calls.clear()
    finalize({"root": {"readonly": True}})  # the real / here: recorded, not remounted
    assert syscalls.calls == [("mount", None, "/", None, BIND | REMOUNT | RDONLY | keep("/"), None)]


# -- bind mounts ---------------------------------------------------------------------

def test_bind_mount_flags_take_a_remount(syscalls, root, tmp_path):
    """A bind takes its flags only on remount (ro, nosuid...), with MS_REC kept
    for rbind; propagation comes after as its own call; a plain bind has no
    remount; a file source gets a file target."""
    R = root
    (tmp_path / "data").mkdir()
    (tmp_path / "file.txt").write_text("x")
    src, srcfile = str(tmp_path / "data"), str(tmp_path / "file.txt")
    m1 = {"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro", "nosuid", "rprivate"]}
    m2 = {"destination": "/etc/file", "source": srcfile, "options": ["bind"]}
    rf = opened(rootfs({"mounts": [m1, m2]}, R, syscalls))
    before = open_fds()
    rf.mount(m1)
    rf.mount(m2)
    assert syscalls.calls == [
        ("mount", src, f"{R}/data", "bind", BIND | REC, None),
        ("mount", None, f"{R}/data", None, BIND | REC | RDONLY | NOSUID | REMOUNT, None),
        ("mount", None, f"{R}/data", None, C.MS_PRIVATE | REC, None),
        ("mount", srcfile, f"{R}/etc/file", "bind", BIND, None),
    ]
    assert os.path.isfile(f"{R}/etc/file") and os.path.isdir(f"{R}/data")
    assert open_fds() == before


def test_bind_relative_source_and_recursive_attributes(syscalls, root):
    """A relative source is the bundle's; rro & co go to mount_setattr
    (AT_RECURSIVE), after the remount of the plain flags."""
    R = root
    bundle = os.path.dirname(R)
    os.mkdir(f"{bundle}/relsrc")
    m = {"destination": "/rel", "type": "bind", "source": "relsrc", "options": ["bind", "rro", "nodev"]}
    opened(rootfs({"mounts": [m]}, R, syscalls)).mount(m)
    assert syscalls.calls == [
        ("mount", f"{bundle}/relsrc", f"{R}/rel", "bind", BIND, None),
        ("mount", None, f"{R}/rel", None, BIND | NODEV | REMOUNT, None),
        ("mount_setattr", f"{R}/rel", C.AT_EMPTY_PATH | C.AT_RECURSIVE, C.MOUNT_ATTR_RDONLY, 0, 0, 0),
    ]


def test_bind_remount_refused_retries_with_the_locked_flags(syscalls, root, tmp_path):
    """runc 1.5: when the kernel refuses the remount (flags locked by another
    user namespace), once more with the source's lockable flags kept."""
    R = root
    (tmp_path / "data").mkdir()
    src = str(tmp_path / "data")
    m = {"destination": "/data", "type": "bind", "source": src, "options": ["bind", "ro"]}
    syscalls.fail("mount", errno.EPERM, when=lambda c: c[4] & REMOUNT)
    opened(rootfs({"mounts": [m]}, R, syscalls)).mount(m)
    src_flags = O.statfs_to_mount_flags(os.statvfs(src).f_flag)
    assert syscalls.of("mount") == [
        (src, f"{R}/data", "bind", BIND, None),
        (None, f"{R}/data", None, BIND | RDONLY | REMOUNT, None),
        (None, f"{R}/data", None, BIND | RDONLY | REMOUNT | (src_flags & O.LOCKABLE), None),
    ]
    assert syscalls.failed == [("mount", None, f"{R}/data", None, BIND | RDONLY | REMOUNT, None)]


def test_idmapped_bind_is_moved_from_the_parents_tree(syscalls, root, tmp_path):
    """An idmapped mount's source is a tree the parent made (mount_source);
    the init move_mount()s it onto the target, both by fd."""
    R = root
    (tmp_path / "data").mkdir()
    src = str(tmp_path / "data")
    m = {"destination": "/data", "type": "bind", "source": src, "options": ["rbind", "idmap"]}

    def mount_source(index: int, kind: str) -> int:
        syscalls.note("mount source", index, kind)
        return os.open(src, os.O_PATH | os.O_CLOEXEC)
    rf = opened(rootfs({"mounts": [m]}, R, syscalls, mount_source=mount_source))
    before = open_fds()
    rf.mount(m)
    assert syscalls.calls == [
        ("mount source", 0, "idmap"),
        ("move_mount", src, f"{R}/data", C.MOVE_MOUNT_F_EMPTY_PATH | C.MOVE_MOUNT_T_EMPTY_PATH),
    ]
    assert open_fds() == before  # the tree's fd is closed


# -- propagation, pivot, chroot --------------------------------------------------------

@pytest.mark.parametrize("prop, first, last", [
    (None, C.MS_SLAVE | REC, None),  # the default: rslave, nothing after the pivot
    ("shared", C.MS_SHARED, C.MS_SHARED),
    ("rshared", C.MS_SHARED | REC, C.MS_SHARED | REC),
    ("rslave", C.MS_SLAVE | REC, C.MS_SLAVE | REC),
    ("private", C.MS_PRIVATE, None),  # private it already is (its parent was made private)
])
def test_rootfs_propagation(syscalls, root, prop, first, last):
    spec = {"linux": {"rootfsPropagation": prop} if prop else {}}
    rootfs(spec, root, syscalls).prepare()
    assert syscalls.calls[0] == ("mount", None, "/", None, first, None)
    after = [] if last is None else [("mount", None, "/", None, last, None)]  # the new / too
    assert syscalls.calls[-6 - len(after):] == pivot(root) + after


def test_parent_mount_made_private_walking_up(syscalls, root):
    """pivot_root needs the rootfs' parent mount private: EINVAL (not a
    mount point) moves one directory up."""
    bundle = os.path.dirname(root)
    syscalls.fail("mount", errno.EINVAL, when=lambda c: c[2] == bundle)
    rootfs({}, root, syscalls).prepare()
    assert syscalls.of("mount")[1:4] == [
        (None, bundle, None, C.MS_PRIVATE, None),
        (None, os.path.dirname(bundle), None, C.MS_PRIVATE, None),
        (root, root, "bind", BIND | REC, None),
    ]


def test_pivot_root_failure_is_one_line_and_stops(syscalls, root):
    syscalls.fail("pivot_root", errno.EINVAL)
    rf = rootfs({}, root, syscalls)
    with pytest.raises(PyruncError) as e:
        rf._pivot_root()
    assert str(e.value) == f"pivot_root {root}: pivot_root: {os.strerror(errno.EINVAL)}"
    assert syscalls.calls == [("fchdir", root), ("pivot_root", ".", ".")]  # no umount of the old root


def test_no_pivot_moves_the_rootfs_and_chroots(syscalls, root, monkeypatch):
    """--no-pivot: the host's procfs and sysfs are detached first (covered
    with a tmpfs where they cannot be), then MS_MOVE onto / and chroot."""
    monkeypatch.setattr(setup, "_full_proc_sys_mounts", lambda rootfs: ["/proc", "/sys"])
    syscalls.fail("umount2", errno.EINVAL, when=lambda c: c[1] == "/sys")
    rf = rootfs({}, root, syscalls, no_pivot=True)
    rf.prepare()
    i = syscalls.calls.index(("createContainer hooks",))
    assert syscalls.calls[i + 1:] == [
        ("mount", None, "/proc", None, C.MS_SLAVE | REC, None),
        ("umount2", "/proc", C.MNT_DETACH),
        ("mount", None, "/sys", None, C.MS_SLAVE | REC, None),
        ("umount2", "/sys", C.MNT_DETACH),
        ("mount", "tmpfs", "/sys", "tmpfs", 0, None),
        ("chdir", root),
        ("mount", root, "/", None, C.MS_MOVE, None),
        ("chroot", "."),
        ("chdir", "/"),
    ]


def test_no_mount_namespace_chroots(syscalls, root):
    """hostns: no propagation change and no rootfs bind here (the runtime
    made it), and chroot instead of pivot_root."""
    rootfs({}, root, syscalls, hostns=True).prepare()
    assert not any(c[0] == "mount" and c[2] in ("/", root) for c in syscalls.calls)
    assert syscalls.calls[-5:] == [
        ("fchdir", root), ("createContainer hooks",), ("fchdir", root), ("chroot", "."), ("chdir", "/")]


# -- devices ---------------------------------------------------------------------------

def test_devices_made_with_mknod(syscalls, root):
    """The defaults, a config entry replacing one in place, and one more."""
    R = root
    spec = {"linux": {"devices": [
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 1, "gid": 2},
        {"path": "/dev/loop9", "type": "b", "major": 7, "minor": 9},
    ]}}
    opened(rootfs(spec, R, syscalls)).create_devices()
    null = [("mknod", f"{R}/dev/null", stat.S_IFCHR | 0o600, os.makedev(1, 3)), ("chown", f"{R}/dev/null", 0, 0)]
    assert syscalls.calls == null + devices(R, setup.DEFAULT_DEVICES[1:]) + [
        ("mknod", f"{R}/dev/fuse", stat.S_IFCHR | 0o640, os.makedev(10, 229)),
        ("chown", f"{R}/dev/fuse", 1, 2),
        ("mknod", f"{R}/dev/loop9", stat.S_IFBLK | 0o666, os.makedev(7, 9)),
        ("chown", f"{R}/dev/loop9", 0, 0),
    ]


def test_devices_bound_in_a_user_namespace(syscalls, root):
    """No mknod in a user namespace: the host's node is bound onto a file."""
    R = root
    opened(rootfs({}, R, syscalls, userns=True)).create_devices()
    assert syscalls.calls == [("mount", path, f"{R}{path}", "bind", BIND, None)
                              for path, *_ in setup.DEFAULT_DEVICES]
    assert all(os.path.isfile(f"{R}{path}") for path, *_ in setup.DEFAULT_DEVICES)


def test_dev_bound_from_the_host_gets_only_the_configs_devices(syscalls, root, tmp_path):
    R = root
    (tmp_path / "hostdev").mkdir()
    spec = {"mounts": [{"destination": "/dev", "type": "bind", "source": str(tmp_path / "hostdev"),
                        "options": ["rbind"]}],
            "linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}}
    rootfs(spec, R, syscalls).prepare()
    assert syscalls.of("mknod") == [(f"{R}/dev/fuse", stat.S_IFCHR | 0o666, os.makedev(10, 229))]
    assert not os.path.lexists(f"{R}/dev/ptmx")  # no /dev symlinks either


def test_bad_device_type(syscalls, root):
    rf = opened(rootfs({"linux": {"devices": [{"path": "/dev/x", "type": "x"}]}}, root, syscalls))
    with pytest.raises(PyruncError, match=r"^'x' is not a valid device type for device /dev/x$"):
        rf.create_devices(defaults=False)
    assert syscalls.calls == []


def test_mknod_failure_is_one_line(syscalls, root):
    syscalls.fail("mknod", errno.EPERM)
    rf = opened(rootfs({}, root, syscalls))
    before = open_fds()
    with pytest.raises(PyruncError) as e:
        rf.create_devices()
    assert str(e.value) == f"create device /dev/null: {os.strerror(errno.EPERM)}"
    assert syscalls.names() == ["mknod"]
    assert open_fds() == before


# -- cgroup ------------------------------------------------------------------------

V1 = [("", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/c1"),
      ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/c1"),
      ("name=systemd", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/systemd/c1")]
CGROUP = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


@pytest.mark.parametrize("cgroupns", [True, False])
def test_cgroup_v1_layout(syscalls, root, cgroupns):
    """A hybrid host: a tmpfs with one mount per v1 hierarchy (cgroup with a
    namespace of its own, else a bind of the container's dir, remounted with
    the flags), no unified one, and a link for each co-mounted controller."""
    R = root
    rf = opened(rootfs({"mounts": [CGROUP]}, R, syscalls, cgroupns=cgroupns, cgroup_mounts=V1))
    rf.mount(CGROUP)
    flags = NOSUID | NOEXEC | NODEV | C.MS_RELATIME | RDONLY
    cg = f"{R}/sys/fs/cgroup"
    head = [("join cgroup",)] + ([("unshare", C.CLONE_NEWCGROUP)] if cgroupns else []) + [
        ("mount", "tmpfs", cg, "tmpfs", NOSUID | NODEV | NOEXEC, "mode=755")]
    if cgroupns:
        body = [("mount", "cgroup", f"{cg}/cpu,cpuacct", "cgroup", flags, "cpu,cpuacct"),
                ("mount", "cgroup", f"{cg}/systemd", "cgroup", flags, "none,name=systemd")]
    else:
        body = []
        for _, mp, path in V1[1:]:
            sub = f"{cg}/{os.path.basename(mp)}"
            body += [("mount", path, sub, "bind", BIND | REC, None),
                     ("mount", None, sub, None, flags | BIND | REMOUNT, None)]
    assert syscalls.calls == head + body
    assert os.readlink(f"{cg}/cpu") == "cpu,cpuacct" and os.readlink(f"{cg}/cpuacct") == "cpu,cpuacct"


def test_cgroup2_refused_is_bound_instead(syscalls, root, tmp_path):
    """A user namespace may not mount cgroup2 (EPERM): the container's own
    cgroup dir is bound (rbind) and remounted with the mount's flags."""
    R = root
    mine = tmp_path / "cgroup" / "c1"
    mine.mkdir(parents=True)
    syscalls.fail("mount", errno.EPERM, when=lambda c: c[3] == "cgroup2")
    rf = opened(rootfs({"mounts": [CGROUP]}, R, syscalls, cgroup_mounts=[("", "/sys/fs/cgroup", str(mine))]))
    rf.mount(CGROUP)
    flags = NOSUID | NOEXEC | NODEV | C.MS_RELATIME | RDONLY
    assert syscalls.of("mount") == [
        ("cgroup2", f"{R}/sys/fs/cgroup", "cgroup2", flags, None),
        (str(mine), f"{R}/sys/fs/cgroup", "bind", BIND | REC, None),
        (None, f"{R}/sys/fs/cgroup", None, flags | BIND | REC | REMOUNT, None),
    ]


# -- failures ----------------------------------------------------------------------------

SYSFS = {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}


def test_mount_refused_is_one_line_and_stops(syscalls, root):
    """EPERM on sysfs outside a user namespace: runc's one-line error naming
    the mount, nothing made after it, every fd of the step closed."""
    spec = example(cgroupns=True)
    syscalls.fail("mount", errno.EPERM, when=lambda c: c[3] == "sysfs")
    rf = rootfs(spec, root, syscalls)
    before = open_fds()
    with pytest.raises(PyruncError) as e:
        rf.prepare()
    assert re.fullmatch(r"error mounting 'sysfs' to rootfs at '/sys': mount sysfs:/proc/self/fd/\d+ "
                        r"\(type sysfs, flags 0xf\): operation not permitted", str(e.value)), str(e.value)
    assert syscalls.calls[-1] == ("mount", "sysfs", f"{root}/sys", "sysfs", NOSUID | NOEXEC | NODEV | RDONLY, None)
    assert syscalls.failed == [syscalls.calls[-1]]
    assert open_fds() - before == {rf.rootfd}  # only the rootfs' own, which dies with the init
    os.close(rf.rootfd)


def test_sysfs_refused_in_a_user_namespace_binds_the_hosts(syscalls, root):
    R = root
    syscalls.fail("mount", errno.EPERM, when=lambda c: c[3] == "sysfs")
    rf = opened(rootfs({"mounts": [SYSFS]}, R, syscalls, userns=True))
    before = open_fds()
    rf.mount(SYSFS)
    flags = NOSUID | NOEXEC | NODEV | RDONLY
    assert syscalls.of("mount") == [
        ("sysfs", f"{R}/sys", "sysfs", flags, None),
        ("/sys", f"{R}/sys", "bind", BIND | REC, None),
        (None, f"{R}/sys", None, flags | BIND | REC | REMOUNT, None),
    ]
    assert open_fds() == before


def test_masked_directory_tmpfs_fallbacks(syscalls, root):
    """Some kernels want 2 inodes for the mask tmpfs; a directory that cannot
    share the first tmpfs (bind refused) gets its own."""
    R = root
    for d in ("a", "b"):
        os.mkdir(f"{R}/{d}")
    syscalls.fail("mount", errno.EINVAL, when=lambda c: c[5] == "nr_blocks=1,nr_inodes=1")
    syscalls.fail("mount", errno.EPERM, when=lambda c: c[4] == BIND)
    rootfd = os.open(R, os.O_PATH | os.O_DIRECTORY)
    try:
        finalize_paths(rootfd, {"linux": {"maskedPaths": ["/a", "/b", "/a"]}}, R)
    finally:
        os.close(rootfd)
    assert syscalls.of("mount") == [
        ("tmpfs", f"{R}/a", "tmpfs", RDONLY, "nr_blocks=1,nr_inodes=1"),
        ("tmpfs", f"{R}/a", "tmpfs", RDONLY, "nr_blocks=1,nr_inodes=2"),
        (f"{R}/a", f"{R}/b", None, BIND, None),
        ("tmpfs", f"{R}/b", "tmpfs", RDONLY, "nr_blocks=1,nr_inodes=1"),  # "/a" again: masked once
    ]


def test_host_bind_refused_propagation_detaches_it(syscalls, root):
    """Without a mount namespace the runtime binds the rootfs onto itself
    (open_tree + move_mount); if its propagation cannot be set, the bind is
    detached again and the error is one line."""
    recorded = []
    syscalls.fail("mount", errno.EPERM)
    before = open_fds()
    with pytest.raises(PyruncError) as e:
        hostns.bind_rootfs(root, None, recorded.append)
    assert str(e.value) == f"error preparing rootfs: {root}: operation not permitted"
    assert syscalls.calls == [
        ("open_tree", root, C.OPEN_TREE_CLONE | C.AT_RECURSIVE | C.OPEN_TREE_CLOEXEC),
        ("move_mount", root, root, C.MOVE_MOUNT_F_EMPTY_PATH),
        ("mount", None, root, None, C.MS_SLAVE | REC, None),
        ("umount2", root, C.MNT_DETACH),
    ]
    assert len(recorded) == 1 and recorded[0] > 0  # the clone's mount id, before it was attached
    assert open_fds() == before


def test_host_bind_without_the_new_mount_api(syscalls, root):
    syscalls.fail("open_tree", errno.ENOSYS)
    assert hostns.bind_rootfs(root, "rprivate") > 0
    assert syscalls.calls[1:] == [
        ("mount", root, root, "bind", BIND | REC, None),
        ("mount", None, root, None, C.MS_PRIVATE | REC, None),
    ]


def test_tmpcopyup_mounts_aside_then_moves(syscalls, root):
    """tmpcopyup: a tmpfs mounted aside, the directory's files copied in
    (none here: the recorder mounts nothing), then moved onto it."""
    R = root
    os.mkdir(f"{R}/cache")
    m = {"destination": "/cache", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "nodev"]}
    opened(rootfs({"mounts": [m]}, R, syscalls)).mount(m)
    aside = f"/tmp/.pyrunc-copyup-{os.getpid()}"
    assert syscalls.calls == [("mount", "tmpfs", aside, "tmpfs", NODEV, "mode=0755"),
                              ("mount", aside, f"{R}/cache", None, C.MS_MOVE, None)]
    assert not os.path.exists(aside)


# -- idmapped trees (the runtime parent's side) -------------------------------------------

@pytest.mark.parametrize("options, tree_flags, attr_flags", [
    (["bind", "idmap"], 0, C.AT_EMPTY_PATH),
    (["rbind", "idmap"], C.AT_RECURSIVE, C.AT_EMPTY_PATH),
    (["rbind", "ridmap"], C.AT_RECURSIVE, C.AT_EMPTY_PATH | C.AT_RECURSIVE),
])
def test_idmapped_tree(syscalls, tmp_path, options, tree_flags, attr_flags):
    """A detached clone of the source (recursive for rbind), idmapped with the
    user namespace fd (recursively for ridmap)."""
    from pyrunc.rootfs.idmap import _idmapped_tree
    src = str(tmp_path)
    userns = os.open("/proc/self/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.close(_idmapped_tree({"source": src, "options": options}, src, userns))
    finally:
        os.close(userns)
    assert syscalls.calls == [
        ("open_tree", src, C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC | tree_flags),
        ("mount_setattr", src, attr_flags, C.MOUNT_ATTR_IDMAP, 0, 0, userns),
    ]


def test_idmapped_tree_refused(syscalls, tmp_path):
    from pyrunc.rootfs.idmap import _idmapped_tree
    src = str(tmp_path)
    syscalls.fail("mount_setattr", errno.EINVAL)
    before = open_fds()
    with pytest.raises(PyruncError) as e:
        _idmapped_tree({"source": src, "options": ["bind", "idmap"]}, src, 0)
    assert str(e.value) == (f"failed to set MOUNT_ATTR_IDMAP on {src}: {os.strerror(errno.EINVAL)} "
                            "(maybe the filesystem used doesn't support idmap mounts on this kernel?)")
    assert open_fds() == before  # the clone is closed


# -- init/child.py ----------------------------------------------------------------------

@pytest.mark.skipif(not os.path.exists("/dev/console"), reason="the test's / needs a /dev/console to resolve")
def test_console_is_bound_onto_dev_console(syscalls, monkeypatch):
    """The init's console: the pty slave bound onto /dev/console (resolved in
    the new root, here this process's /), the master sent to the parent."""
    from pyrunc import log, terminal
    from pyrunc.init import child
    sent = []

    class Channel:
        def send(self, tag, payload="", fds=()):
            sent.append((tag, [fd_where(fd) for fd in fds]))
    monkeypatch.setattr(log, "keep_stderr", lambda: None)
    monkeypatch.setattr(terminal, "open_pty", lambda: (*os.openpty(), ""))  # /dev/pts/ptmx may be 000
    monkeypatch.setattr(terminal, "setup_slave_as_stdio", lambda fd: syscalls.note("stdio", fd_where(fd)))
    before = open_fds()
    child._setup_console(Channel(), {})
    assert len(syscalls.calls) == 2 and syscalls.calls[0][2:] == ("/dev/console", None, BIND, None)
    slave = syscalls.calls[0][1]
    assert re.fullmatch(r"/dev/pts/\d+", slave)
    assert syscalls.calls[1][0] == "stdio" and syscalls.calls[1][1].startswith(slave)  # "(deleted)": master closed
    assert len(sent) == 1 and sent[0][0] == "T" and sent[0][1][0] in ("/dev/ptmx", "/dev/pts/ptmx")
    assert open_fds() == before
