"""Preparing the container's root file system, in the container init, inside
its new mount namespace: mounts in config order, /dev, then pivot_root.

The order follows runc's prepareRootfs: propagation of /, the rootfs bound
onto itself, the config's mounts, devices and /dev symlinks, the
createRuntime/createContainer hook points, then pivot_root (or move+chroot).
Masked and read-only paths are applied after the pivot (see finalize()).
Without a mount namespace the runtime has bound the rootfs onto itself in
the host's (hostns.py) and the init chroots instead of pivoting.

Every mount, pivot, chroot and mknod goes through `L.sc`, the syscall seam
(linux/sys.py's Syscalls), which the unit tests replace with a recorder
(tests/unit/test_rootfs_seam.py).
"""
from __future__ import annotations

import errno
import os
import stat

from ..errors import PyruncError
from ..linux import consts as C
from ..linux import sys as L
from ..security.lsm import format_mount_label
from . import options as O
from .options import is_idmapped
from .paths import create_file, fd_path, mkdir_all, open_in_root, strip_root

TYPE_CHECKING = False  # typing is not imported on the start-up path
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_DEVICES = [  # path, type, major, minor, mode
    ("/dev/null", "c", 1, 3, 0o666), ("/dev/zero", "c", 1, 5, 0o666),
    ("/dev/full", "c", 1, 7, 0o666), ("/dev/random", "c", 1, 8, 0o666),
    ("/dev/urandom", "c", 1, 9, 0o666), ("/dev/tty", "c", 5, 0, 0o666),
]


class Rootfs:
    """One container's rootfs preparation; `hooks` and `join_cgroup` are the
    sync points with the runtime parent."""

    def __init__(self, spec: dict, rootfs: str, bundle: str, *, userns: bool, cgroupns: bool,
                 join_cgroup: Callable[[], None], runtime_hooks: Callable[[], None],
                 container_hooks: Callable[[], None], no_pivot: bool = False,
                 mount_source: Callable[[int, str], int] | None = None,
                 cgroup_mounts: list[tuple[str, str, str]] | None = None, hostns: bool = False) -> None:
        self.spec = spec
        self.linux = spec.get("linux") or {}
        self.rootfs = rootfs
        self.bundle = bundle
        self.userns = userns
        self.cgroupns = cgroupns
        self.join_cgroup = join_cgroup
        self.runtime_hooks = runtime_hooks
        self.container_hooks = container_hooks
        self.no_pivot = no_pivot
        self.mount_source = mount_source
        # (hierarchy key, host mount point, the container's cgroup dir there)
        self.cgroup_mounts = cgroup_mounts or []
        # no mount namespace: the runtime bound the rootfs onto itself in the
        # host's (rootfs/hostns.py); we mount under it and chroot
        self.hostns = hostns
        self.rootfd = -1
        self.joined = False

    # -- the whole sequence -----------------------------------------------------
    def prepare(self) -> None:
        prop = O.PROPAGATION.get(self.linux.get("rootfsPropagation", ""), C.MS_SLAVE | C.MS_REC)
        if not self.hostns:
            L.sc.mount(None, "/", None, prop | C.MS_REC if prop & C.MS_REC else prop)
            self._make_parent_private()
            L.sc.mount(self.rootfs, self.rootfs, "bind", C.MS_BIND | C.MS_REC)
        self.rootfd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        mounts = self.spec.get("mounts") or []
        for m in mounts:
            self.mount(m)
        if not self.joined:
            self._join()
        if not any(_bind(m) and os.path.normpath(m["destination"]) == "/dev" for m in mounts):
            self.create_devices()
            self.dev_symlinks()
        else:
            self.create_devices(defaults=False)
        self._mkdir_cwd()
        self.runtime_hooks()
        L.sc.fchdir(self.rootfd)  # runc: the createContainer hooks run from the rootfs
        self.container_hooks()
        if self.hostns:  # runc: chroot, pivot_root needs a mount namespace of ours
            L.sc.fchdir(self.rootfd)
            os.close(self.rootfd)
            L.sc.chroot(".")
            L.sc.chdir("/")
            return
        os.close(self.rootfd)
        if self.no_pivot:
            self._move_root()
        else:
            self._pivot_root()
        # runc: rootfsPropagation applies to the new / as well (private it
        # already is: its parent was made private)
        if self.linux.get("rootfsPropagation") and not prop & C.MS_PRIVATE:
            L.sc.mount(None, "/", None, prop)

    def _join(self) -> None:
        self.join_cgroup()
        if self.cgroupns:
            L.sc.unshare(C.CLONE_NEWCGROUP)
        self.joined = True

    def _make_parent_private(self) -> None:
        """pivot_root fails if the rootfs' parent mount is shared; runc makes it
        private (it is ours: we are in a new mount namespace)."""
        path = os.path.dirname(self.rootfs)
        while True:
            try:
                L.sc.mount(None, path, None, C.MS_PRIVATE)
                return
            except OSError as e:
                if e.errno != errno.EINVAL or path == "/":
                    return
                path = os.path.dirname(path)

    # -- mounts -------------------------------------------------------------------
    def mount(self, m: dict) -> None:
        dest = strip_root(self.rootfs, m["destination"])
        mtype = m.get("type") or ""
        opts = O.parse(m.get("options"))
        if dest == "/":  # runc: "mountpoint ... is on the top of rootfs ..."
            raise PyruncError(f"error mounting {m.get('source', '')!r} to rootfs at {m['destination']!r}: "
                              f"mountpoint {self.rootfs!r} is on the top of rootfs {self.rootfs!r}")
        try:
            if mtype in ("cgroup", "cgroup2"):
                self._mount_cgroup(m, dest, opts)
            elif opts.flags & C.MS_BIND or mtype == "bind":
                self._mount_bind(m, dest, opts)
            else:
                self._mount_fs(m, dest, mtype, opts)
        except PyruncError:
            raise
        except OSError as e:
            raise PyruncError(f"error mounting {m.get('source', '')!r} to rootfs at {m['destination']!r}: "
                              f"{e.strerror}") from None

    def _target_dir(self, dest: str, mtype: str, source: str) -> tuple[int, bool]:
        """(O_PATH fd of the mount's directory, whether it existed before)."""
        if mtype in ("proc", "sysfs"):
            # mounting procfs/sysfs through a symlink is how CVE-2019-19921 escapes
            from .paths import is_symlink_in_root
            why = f"error mounting {source!r} to rootfs at {dest!r}: filesystem {mtype!r} must be mounted on ordinary directory"
            if is_symlink_in_root(self.rootfd, dest):
                raise PyruncError(why)
            fd = mkdir_all(self.rootfd, dest)
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                os.close(fd)
                raise PyruncError(why)
            return fd, True
        try:
            return open_in_root(self.rootfd, dest, C.O_PATH | os.O_DIRECTORY), True
        except FileNotFoundError:
            return mkdir_all(self.rootfd, dest), False

    def _mount_fs(self, m: dict, dest: str, mtype: str, opts: O.MountOptions) -> None:
        fd, existed = self._target_dir(dest, mtype, m.get("source") or "")
        try:
            flags = opts.flags & ~C.MS_REMOUNT
            if _late_ro(m, dest):
                flags &= ~C.MS_RDONLY  # until finalize()
            data = opts.data_str or None
            if mtype == "tmpfs" and existed:
                # runc: a tmpfs takes the mode of the directory it covers (an
                # explicit mode= comes later in the data, and wins)
                mode = f"mode={stat.S_IMODE(os.fstat(fd).st_mode):04o}"
                data = f"{mode},{data}" if data else mode
            if mtype not in ("proc", "sysfs", "mqueue"):  # the ones runc labels
                data = format_mount_label(data, self.linux.get("mountLabel"))
            if mtype == "tmpfs" and "tmpcopyup" in opts.extensions:
                self._tmpcopyup(m, fd, flags, data)
            else:
                try:
                    L.sc.mount(m.get("source") or mtype, fd_path(fd), mtype, flags, data)
                except PermissionError:
                    if mtype != "sysfs" or not self.userns:
                        raise
                    # a user namespace without its own network namespace may
                    # not mount sysfs: bind the host's, as runc does
                    os.close(fd)
                    fd = -1
                    self._mount_bind({**m, "source": "/sys", "type": "bind"}, dest,
                                     O.parse(["rbind"] + list(m.get("options") or [])))
                    return
        finally:
            if fd >= 0:
                os.close(fd)
        self._after_mount(dest, opts)

    def _tmpcopyup(self, m: dict, fd: int, flags: int, data: str | None) -> None:
        import shutil
        tmp = f"/tmp/.pyrunc-copyup-{os.getpid()}"
        os.mkdir(tmp, 0o700)
        try:
            L.sc.mount("tmpfs", tmp, "tmpfs", flags, data)
            src = fd_path(fd)
            for name in os.listdir(src):
                s = os.path.join(src, name)
                d = os.path.join(tmp, name)
                if os.path.isdir(s) and not os.path.islink(s):
                    shutil.copytree(s, d, symlinks=True)
                else:
                    shutil.copy2(s, d, follow_symlinks=False)
            L.sc.mount(tmp, src, None, C.MS_MOVE)
        finally:
            os.rmdir(tmp)

    def _mount_bind(self, m: dict, dest: str, opts: O.MountOptions) -> None:
        src = m.get("source") or ""
        if not src.startswith("/"):
            src = os.path.join(self.bundle, src)
        srcfd = self._source_fd(m, src)
        try:
            try:
                is_dir = stat.S_ISDIR((os.fstat(srcfd) if srcfd >= 0 else os.stat(src)).st_mode)
            except OSError as e:
                raise PyruncError(f"error mounting {src!r} to rootfs at {m['destination']!r}: "
                                  f"stat {src}: {e.strerror}") from None
            fd = mkdir_all(self.rootfd, dest) if is_dir else create_file(self.rootfd, dest)
            try:
                if srcfd >= 0 and is_idmapped(m):  # MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
                    L.sc.move_mount(srcfd, "", fd, "", C.MOVE_MOUNT_F_EMPTY_PATH | 0x40)
                else:
                    L.sc.mount(fd_path(srcfd) if srcfd >= 0 else src, fd_path(fd), "bind",
                            C.MS_BIND | (opts.flags & C.MS_REC))
            finally:
                os.close(fd)
            try:
                self._after_mount(dest, opts, bind_source=srcfd if srcfd >= 0 else src)
            except PyruncError as e:
                raise PyruncError(f"error mounting {src!r} to rootfs at {m['destination']!r}: {e}") from None
        finally:
            if srcfd >= 0:
                os.close(srcfd)

    def _source_fd(self, m: dict, src: str) -> int:
        """As runc: the source of an idmapped mount always comes from the
        parent; a plain bind's only when this process cannot stat it (a user
        namespace without search permission on its parents). -1: use `src`."""
        if self.mount_source is None:
            return -1
        index = next((i for i, x in enumerate(self.spec.get("mounts") or []) if x is m), None)
        if index is None:  # a mount of our own making (cgroup, sysfs fallback)
            return -1
        if is_idmapped(m):
            fd = self.mount_source(index, "idmap")
            if fd < 0:
                raise PyruncError(f"error mounting {src!r} to rootfs at {m['destination']!r}: "
                                  "id-mapped mounts are not supported for rootless containers")
            return fd
        try:
            os.stat(src)
            return -1
        except OSError:
            return self.mount_source(index, "open")

    def _after_mount(self, dest: str, opts: O.MountOptions, bind_source: int | str | None = None) -> None:
        """What a mount takes after it is made, applied to the mount just
        made (re-resolved in root): a bind's flags (a remount), recursive
        attributes, propagation."""
        remount = bind_source is not None and bool(
            opts.flags & ~(C.MS_BIND | C.MS_REC | C.MS_REMOUNT) or opts.cleared)
        if not (remount or opts.propagation or opts.attr_set or opts.attr_clr):
            return
        fd = open_in_root(self.rootfd, dest)
        try:
            target = fd_path(fd)
            if remount and bind_source is not None:  # remount implies a source
                _remount_bind(target, opts, bind_source)
            if opts.attr_set or opts.attr_clr:
                L.sc.mount_setattr(fd, "", C.AT_EMPTY_PATH | C.AT_RECURSIVE, opts.attr_set, opts.attr_clr)
            for p in opts.propagation:
                L.sc.mount(None, target, None, p)
        finally:
            os.close(fd)

    def _mount_cgroup(self, m: dict, dest: str, opts: O.MountOptions) -> None:
        """cgroup2 (or a bind of the container's cgroup) on a unified host; on
        v1 a tmpfs with one mount per hierarchy, as runc lays it out. The
        layout comes from the parent: no /proc reads here."""
        if not self.joined:
            self._join()
        unified = next((mp for key, mp, _ in self.cgroup_mounts if key == ""), None)
        if unified == "/sys/fs/cgroup":
            fd = mkdir_all(self.rootfd, dest)
            try:
                try:
                    L.sc.mount("cgroup2", fd_path(fd), "cgroup2", opts.flags & ~C.MS_REMOUNT, opts.data_str or None)
                    return
                except OSError as e:
                    if e.errno not in (errno.EPERM, errno.EBUSY):
                        raise
            finally:
                os.close(fd)
            # a user namespace without its own cgroup namespace: bind instead
            src = next(path for key, _, path in self.cgroup_mounts if key == "") if self.cgroupns else unified
            self._mount_bind({"source": src, "destination": dest}, dest,
                             O.parse(["rbind"] + list(m.get("options") or [])))
            return
        tmpfs = O.parse(["nosuid", "nodev", "noexec", "mode=755"])
        tfd = mkdir_all(self.rootfd, dest)
        try:
            L.sc.mount("tmpfs", fd_path(tfd), "tmpfs", tmpfs.flags, tmpfs.data_str)
        finally:
            os.close(tfd)
        flags = opts.flags & ~C.MS_REMOUNT
        for key, mp, path in self.cgroup_mounts:
            if not key:
                continue  # runc mounts no unified hierarchy on a hybrid host
            sub = os.path.join(dest, os.path.basename(mp))
            fd = mkdir_all(self.rootfd, sub)
            try:
                if self.cgroupns:
                    data = key if not key.startswith("name=") else f"none,{key}"
                    L.sc.mount("cgroup", fd_path(fd), "cgroup", flags, data)
                else:
                    L.sc.mount(path, fd_path(fd), "bind", C.MS_BIND | C.MS_REC)
            finally:
                os.close(fd)
            if not self.cgroupns and flags & ~C.MS_BIND:
                bind = O.MountOptions()
                bind.flags = flags | C.MS_BIND
                self._after_mount(sub, bind, bind_source=path)
            name = os.path.basename(mp)
            if "," in name:  # cpu,cpuacct mounted together: link each name to it
                dfd = open_in_root(self.rootfd, dest)
                try:
                    for ctrl in name.split(","):
                        try:
                            os.symlink(name, ctrl, dir_fd=dfd)
                        except FileExistsError:
                            pass
                finally:
                    os.close(dfd)

    # -- /dev -------------------------------------------------------------------
    def create_devices(self, defaults: bool = True) -> None:
        devs = {p: (p, t, ma, mi, mode, 0, 0) for p, t, ma, mi, mode in DEFAULT_DEVICES} if defaults else {}
        for d in self.linux.get("devices") or []:  # the config's entry wins over a default
            p = os.path.normpath("/" + d["path"].lstrip("/"))  # not "//dev/x": the default it replaces
            devs[p] = (p, d.get("type", "c"), d.get("major", 0), d.get("minor", 0),
                       d.get("fileMode", 0o666), d.get("uid", 0), d.get("gid", 0))
        old = os.umask(0)
        try:
            for path, typ, major, minor, mode, uid, gid in devs.values():
                self._device(path, typ, major, minor, mode, uid, gid)
        finally:
            os.umask(old)

    def _device(self, path: str, typ: str, major: int, minor: int, mode: int, uid: int, gid: int) -> None:
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(typ)
        if kind is None:
            raise PyruncError(f"{typ!r} is not a valid device type for device {path}")
        parent, name = os.path.split(path)
        pfd = mkdir_all(self.rootfd, parent)
        try:
            if self.userns:
                # mknod is not allowed in a user namespace: bind the host's node
                fd = create_file(self.rootfd, path)
                try:
                    L.sc.mount(path, fd_path(fd), "bind", C.MS_BIND)
                finally:
                    os.close(fd)
                return
            try:
                os.unlink(name, dir_fd=pfd)
            except FileNotFoundError:
                pass
            L.sc.mknod(name, kind | (mode & 0o7777), os.makedev(major, minor), dir_fd=pfd)
            L.sc.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        except OSError as e:
            raise PyruncError(f"create device {path}: {e.strerror}") from None
        finally:
            os.close(pfd)

    def dev_symlinks(self) -> None:
        links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"),
                 ("/proc/self/fd/1", "stdout"), ("/proc/self/fd/2", "stderr")]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        dfd = mkdir_all(self.rootfd, "/dev")
        try:
            for target, name in links:
                try:
                    os.symlink(target, name, dir_fd=dfd)
                except FileExistsError:
                    pass
            if any(os.path.normpath(m["destination"]) == "/dev/pts" for m in self.spec.get("mounts") or []):
                try:
                    os.unlink("ptmx", dir_fd=dfd)
                except FileNotFoundError:
                    pass
                os.symlink("pts/ptmx", "ptmx", dir_fd=dfd)
        finally:
            os.close(dfd)

    def _mkdir_cwd(self) -> None:
        cwd = (self.spec.get("process") or {}).get("cwd") or "/"
        try:
            os.close(mkdir_all(self.rootfd, cwd))
        except OSError:
            pass  # reported with the container's view at chdir time

    # -- the switch ---------------------------------------------------------------
    def _pivot_root(self) -> None:
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            L.sc.fchdir(new)
            L.sc.pivot_root(".", ".")
            L.sc.fchdir(old)
            L.sc.mount(None, ".", None, C.MS_SLAVE | C.MS_REC)
            L.sc.umount2(".", C.MNT_DETACH)
            L.sc.chdir("/")
        except OSError as e:
            raise PyruncError(f"pivot_root {self.rootfs}: {e.strerror}") from None
        finally:
            os.close(old)
            os.close(new)

    def _move_root(self) -> None:
        """--no-pivot: move the rootfs onto / and chroot. The host's procfs
        and sysfs would stay reachable in this mount namespace, and their
        full mounts let the container mount a fresh, unmasked procfs: as
        runc, unmount them first (or cover them with a tmpfs)."""
        for mp in _full_proc_sys_mounts(self.rootfs):
            try:
                L.sc.mount(None, mp, None, C.MS_SLAVE | C.MS_REC)
            except FileNotFoundError:
                continue  # under one already gone
            try:
                L.sc.umount2(mp, C.MNT_DETACH)
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.EPERM):
                    raise
                L.sc.mount("tmpfs", mp, "tmpfs", 0, None)
        L.sc.chdir(self.rootfs)
        L.sc.mount(self.rootfs, "/", None, C.MS_MOVE)
        L.sc.chroot(".")
        L.sc.chdir("/")


def _full_proc_sys_mounts(rootfs: str) -> list[str]:
    """Mount points of whole procfs/sysfs file systems outside the rootfs,
    from /proc/self/mountinfo (octal escapes decoded)."""
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            sep = fields.index(b"-")
            fstype, root = fields[sep + 1], fields[3]
            mp = _mountinfo_unescape(fields[4].decode(errors="surrogateescape"))
            if root == b"/" and fstype in (b"proc", b"sysfs") and not mp.startswith(rootfs):
                found.append(mp)
    return found


def _mountinfo_unescape(s: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def finalize(spec: dict, rootfs: str = "/") -> None:
    """After the pivot: read-only tmpfs mounts and /dev (mounted read-write
    until now, so that what lies below them could be made), masked and
    read-only paths, then a read-only root."""
    rootfd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        finalize_paths(rootfd, spec, rootfs)
        if (spec.get("root") or {}).get("readonly"):
            st = os.statvfs("/")
            keep = st.f_flag & (C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC)
            L.sc.mount(None, "/", None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | keep)
    finally:
        os.close(rootfd)


def finalize_paths(rootfd: int, spec: dict, rootfs: str) -> None:
    """finalize()'s work below the root at `rootfd` (the new / in the
    init; a directory in the unit tests): late read-only remounts, then
    readonlyPaths, then maskedPaths."""
    linux = spec.get("linux") or {}
    for m in spec.get("mounts") or []:
        dest = strip_root(rootfs, m["destination"])  # the rootfs' host path, if named, is / now
        if "ro" in (m.get("options") or []) and _late_ro(m, dest):
            _remount_ro(rootfd, m, dest)
    for p in linux.get("readonlyPaths") or []:
        _readonly_path(rootfd, p)
    masked = linux.get("maskedPaths") or []
    if masked:
        _mask_paths(rootfd, masked, linux.get("mountLabel"))


def _remount_bind(target: str, opts: O.MountOptions, source: int | str) -> None:
    """A bind mount takes its flags only on remount. As runc 1.5: first
    exactly the flags asked for (the others cleared, atime kept unless
    asked); if the kernel refuses (flags locked on a mount from another
    user namespace: MNT_LOCK_*), again with the source's lockable flags
    kept — unless the config asks to clear one, or for another atime."""
    flags = opts.flags | C.MS_BIND | C.MS_REMOUNT
    try:
        L.sc.mount(None, target, None, flags)
        return
    except OSError as e:
        err = e
    st = os.fstatvfs(source) if isinstance(source, int) else os.statvfs(source)
    src_flags = O.statfs_to_mount_flags(st.f_flag)
    why = "failed to set user-requested vfs flags on bind-mount"
    locked = src_flags & opts.cleared & O.LOCKABLE
    if locked:
        raise PyruncError(f"{why}: cannot clear locked flags {O.flag_names(locked)}: {err.strerror}")
    if flags & O.ATIME_ALL and flags & O.ATIME_ALL != src_flags & O.ATIME_ALL:
        raise PyruncError(f"{why}: cannot change locked atime flags {O.flag_names(src_flags & O.ATIME_ALL)}: "
                          f"{err.strerror}")
    try:
        L.sc.mount(None, target, None, flags | (src_flags & O.LOCKABLE))
    except OSError as e:
        raise PyruncError(f"{why}: remount with locked flags {O.flag_names(src_flags & O.LOCKABLE)} re-applied: "
                          f"{e.strerror}") from None


def _late_ro(m: dict, dest: str) -> bool:
    """runc mounts a tmpfs, and /dev, read-write first: devpts, devices and
    copied-up files go below them; "ro" comes in finalize()."""
    return (m.get("type") == "tmpfs" and not _bind(m)) or dest == "/dev"


def _remount_ro(rootfd: int, m: dict, dest: str) -> None:
    opts = O.parse(m.get("options"))
    if not opts.flags & C.MS_RDONLY:
        return
    fd = open_in_root(rootfd, dest)
    try:
        L.sc.mount(None, fd_path(fd), None, (opts.flags & ~C.MS_BIND) | C.MS_REMOUNT | C.MS_BIND | C.MS_RDONLY)
    finally:
        os.close(fd)


def _readonly_path(rootfd: int, path: str) -> None:
    try:
        fd = open_in_root(rootfd, path)
    except FileNotFoundError:
        return
    try:
        L.sc.mount(fd_path(fd), fd_path(fd), None, C.MS_BIND | C.MS_REC)
    finally:
        os.close(fd)
    fd = open_in_root(rootfd, path)
    try:
        keep = os.statvfs(fd_path(fd)).f_flag & (C.MS_NOSUID | C.MS_NODEV | C.MS_NOEXEC)
        L.sc.mount(None, fd_path(fd), None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY | keep)
    finally:
        os.close(fd)


def _mask_paths(rootfd: int, paths: list[str], mount_label: str | None = None) -> None:
    """Files get the container's /dev/null — checked to be the real null
    device first (CVE-2025-31133) — directories an empty read-only tmpfs,
    one for all of them (the first is bound over the others), as runc 1.5.
    A path listed twice is masked once."""
    null = os.open("/dev/null", C.O_PATH | os.O_CLOEXEC)
    shared = -1  # the first masked directory's tmpfs
    done: set[str] = set()
    try:
        st = os.fstat(null)
        if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != 1 or os.minor(st.st_rdev) != 3:
            raise PyruncError("can't mask paths: /dev/null is not the null device")
        for p in paths:
            try:
                fd = open_in_root(rootfd, p)
            except (FileNotFoundError, NotADirectoryError):
                continue
            try:
                clean = os.path.normpath("/" + p.lstrip("/"))
                if clean in done:
                    continue
                done.add(clean)
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    L.sc.mount(fd_path(null), fd_path(fd), None, C.MS_BIND)
                    continue
                if shared >= 0:
                    try:
                        L.sc.mount(fd_path(shared), fd_path(fd), None, C.MS_BIND)
                        continue
                    except OSError:
                        os.close(shared)  # each directory gets its own, as runc falls back
                        shared = -2
                _mask_dir(fd_path(fd), mount_label)
                if shared == -1:
                    shared = open_in_root(rootfd, p)  # the tmpfs now on top
            finally:
                os.close(fd)
    finally:
        os.close(null)
        if shared >= 0:
            os.close(shared)


def _mask_dir(target: str, mount_label: str | None) -> None:
    """A read-only tmpfs as small as it gets (some kernels want 2 inodes)."""
    try:
        L.sc.mount("tmpfs", target, "tmpfs", C.MS_RDONLY, format_mount_label("nr_blocks=1,nr_inodes=1", mount_label))
    except OSError:
        L.sc.mount("tmpfs", target, "tmpfs", C.MS_RDONLY, format_mount_label("nr_blocks=1,nr_inodes=2", mount_label))


def _bind(m: dict) -> bool:
    return m.get("type") == "bind" or bool(set(m.get("options") or []) & {"bind", "rbind"})

