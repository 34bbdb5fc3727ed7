"""Applying image layers (image-spec layer.md) to a rootfs.

Every path of a layer is resolved inside the rootfs: parents through
mkdir_all/open_in_root (openat2 RESOLVE_IN_ROOT, so `..`, absolute names and
symlinks planted by an earlier entry stay inside), and the last component is
only ever created, linked or removed relative to that parent's fd with
O_NOFOLLOW semantics. A hostile layer can therefore at worst write inside
its own rootfs.
"""
from __future__ import annotations

import errno
import os
import stat
import zlib

from ..linux import consts as C
from ..rootfs.paths import mkdir_all, open_in_root
from .layout import ImageError, Layout

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
XATTR_PAX = "SCHILY.xattr."


def clean(name: str) -> str:
    """A layer path made relative to the rootfs: `..` stops at the root
    (as filepath.Join("/", name) does); "" is the root itself."""
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out:
                out.pop()
            continue
        out.append(part)
    return "/".join(out)


class IdMap:
    """An image's owners as the host sees them: umoci's --uid-map/--gid-map
    (container:host:size ranges); no ranges is the identity."""

    def __init__(self, kind: str, ranges: list[tuple[int, int, int]] | None = None) -> None:
        self.kind = kind
        self.ranges = ranges or []

    def to_host(self, cid: int) -> int:
        if not self.ranges:
            return cid
        for c, h, n in self.ranges:
            if c <= cid < c + n:
                return h + cid - c
        raise ImageError(f"container {self.kind} {cid} cannot be mapped to a host {self.kind}")



ROOTLESS_XATTR = "user.rootlesscontainers"
_NOOP_ID = 0xFFFFFFFF
_WFLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DFLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PFLAGS = C.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_CACHE = 256  # directory fds kept open while a layer is applied


class EntryError(ImageError):
    """An entry of a layer that could not be applied (said with its path)."""


def rootless_payload(uid: int, gid: int) -> bytes | None:
    """The user.rootlesscontainers value (rootless-containers/proto's
    Resource{uint32 uid = 1; uint32 gid = 2}) umoci records for an owner
    it could not apply: 0 is written as the "no-op" id 2^32-1, and an owner
    of (0, 0) gets no xattr at all."""
    if uid == 0 and gid == 0:
        return None
    return b"\x08" + _varint(uid or _NOOP_ID) + b"\x10" + _varint(gid or _NOOP_ID)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def unpack_image(layout: Layout, manifest: dict, config: dict, rootfs: str,
                 uids: IdMap | None = None, gids: IdMap | None = None, rootless: bool = False) -> None:
    """Apply the manifest's layers in order into `rootfs` (which exists).
    rootless: umoci's --rootless (no owners applied, they are recorded in
    the user.rootlesscontainers xattr; device nodes become empty files)."""
    ids = (uids or IdMap("uid"), gids or IdMap("gid"))
    from .layerstream import LayerStream
    from .tarreader import TarError
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ImageError("manifest: no layers list")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config.get("rootfs"), dict) else None
    if isinstance(diff_ids, list) and len(diff_ids) != len(layers):
        raise ImageError(f"image config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
    rootfd = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.geteuid() == 0 and not rootless and (ids[0].ranges or ids[1].ranges):
            os.fchown(rootfd, ids[0].to_host(0), ids[1].to_host(0))  # the rootfs is the mapped root's, as umoci's
        for i, desc in enumerate(layers):
            if not isinstance(desc, dict):
                raise ImageError(f"manifest: layer {i} is not a descriptor")
            blob = layout.open_blob(desc, "layer")
            stream = None
            try:
                stream = LayerStream(blob, desc.get("mediaType", ""), diff_ids[i] if diff_ids else None)
                Applier(rootfd, ids, rootless).apply(stream.next_chunk)
                stream.finish()
                stream = None
            except EntryError as e:
                raise ImageError(f"layer {desc.get('digest')}: {e}") from None
            except (EOFError, OSError, TarError, zlib.error) as e:
                if isinstance(e, ImageError):
                    raise
                raise ImageError(f"layer {desc.get('digest')}: {_why(e)}") from None
            except Exception as e:
                if type(e).__module__.startswith("zstd"):
                    raise ImageError(f"layer {desc.get('digest')}: {_why(e)}") from None
                raise
            finally:
                if stream is not None:
                    stream.close()
                blob.close()
    finally:
        os.close(rootfd)


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def apply_layer(rootfd: int, fileobj, ids: tuple[IdMap, IdMap] | None = None, rootless: bool = False) -> None:
    """Extract one uncompressed tar stream (a file object) onto the rootfs at `rootfd`."""
    Applier(rootfd, ids or (IdMap("uid"), IdMap("gid")), rootless).apply(lambda: fileobj.read(1 << 20))


class Applier:
    """One layer applied onto the rootfs at `rootfd`.

    Directory fds are cached by their (clean) path for the entries that
    follow: a miss opens the last component under the cached grandparent
    with O_NOFOLLOW, or resolves the whole path inside the root
    (mkdir_all/open_in_root); removing a directory or a symlink drops the
    cache, since a cached path may have been resolved through it.
    """

    def __init__(self, rootfd: int, ids: tuple[IdMap, IdMap], rootless: bool = False) -> None:
        self.rootfd = rootfd
        self.ids = ids
        self.rootless = rootless
        self.chown = os.geteuid() == 0 and not rootless
        self.dirs: dict[str, int] = {}
        self.made: set[str] = set()      # paths this layer created (an opaque dir keeps them)
        self.kept: dict[str, tuple[int, int]] = {}  # lower directories this layer changes: their times stay
        self.dirmeta: dict[str, tuple[int, int, int]] = {}  # dir -> (mode, atime, mtime), applied last
        self.unlocked: dict[str, int] = {}  # rootless: lower dirs made u+rwx for the layer -> their mode

    # --- the directory fd cache --------------------------------------------

    def _dir(self, parent: str, create: bool = True) -> int | None:
        fd = self.dirs.pop(parent, None)
        if fd is not None:
            self.dirs[parent] = fd  # most recently used last
            return fd
        if parent:
            gp, _, base = parent.rpartition("/")
            gfd = self.dirs.get(gp)
            if gfd is not None:
                try:
                    fd = os.open(base, _PFLAGS, dir_fd=gfd)
                except OSError:
                    fd = None  # missing, a symlink, not a directory: resolve it in the root
        if fd is None:
            try:
                if create:
                    fd = mkdir_all(self.rootfd, parent or "/")
                else:
                    fd = open_in_root(self.rootfd, parent or "/", C.O_PATH | os.O_DIRECTORY)
            except (FileNotFoundError, NotADirectoryError):
                if create:
                    raise
                return None
        self._cache(parent, fd)
        return fd

    def _cache(self, path: str, fd: int) -> None:
        old = self.dirs.pop(path, None)
        if old is not None and old != fd:
            os.close(old)
        if len(self.dirs) >= _DIR_CACHE:
            oldest = next(iter(self.dirs))
            os.close(self.dirs.pop(oldest))
        self.dirs[path] = fd

    def _drop_cache(self, keep: int) -> None:
        for path, fd in list(self.dirs.items()):
            if fd != keep:
                os.close(fd)
                del self.dirs[path]

    def close(self) -> None:
        self._drop_cache(-1)

    # --- the layer -----------------------------------------------------------

    def apply(self, next_chunk) -> None:
        from .tarreader import TarReader
        reader = TarReader(next_chunk)
        try:
            for e in reader:
                path = clean(e.name)
                if not path:
                    if e.size:
                        reader.skip_data(e.size)
                    continue  # the root itself: its metadata is the bundle's
                try:
                    self._entry(reader, e, path)
                except ImageError as err:
                    raise EntryError(str(err)) from None
                except OSError as err:
                    hint = ""
                    if isinstance(err, PermissionError) and os.geteuid() != 0 and not self.rootless:
                        hint = " (as an unprivileged user, unpack with --rootless)"
                    raise EntryError(f"{path}: {err.strerror or err}{hint}") from None
            self._finish_dirs()
        finally:
            self.close()

    def _entry(self, reader, e, path: str) -> None:
        from . import tarreader as T
        parent, _, base = path.rpartition("/")
        if parent not in self.made and parent not in self.kept:
            self._keep_times(parent)
        if base.startswith(WHITEOUT):
            if e.size:
                reader.skip_data(e.size)
            if base == OPAQUE:
                self._opaque(parent)
                return
            target = base[len(WHITEOUT):]
            if target in ("", ".", ".."):
                raise ImageError(f"invalid whiteout {e.name!r}")
            self._whiteout(parent, target)
            return
        pfd = self._dir(parent)
        assert pfd is not None  # create=True: found, made, or raised
        t = e.type
        mode = e.mode & 0o7777
        mtime = e.mtime_ns
        times = (e.atime_ns if e.atime_ns is not None else mtime, mtime)
        uid, gid, xattrs = self._owner(e)
        if t == T.DIR:
            self._mkdir(pfd, base, path, mode, uid, gid, xattrs, times)
        elif t == T.REG or t == T.AREG or t == T.CONT or (self.rootless and (t == T.CHR or t == T.BLK)):
            fd = self._create(pfd, base)
            try:
                size = e.size
                for mv in reader.data(size):
                    while mv:
                        mv = mv[os.write(fd, mv):]
                if self.chown:
                    os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
                if xattrs:
                    for k, v in xattrs.items():
                        self._setxattr(fd, k, v)
                os.utime(fd, ns=times)
            finally:
                os.close(fd)
        elif t == T.SYM:
            self._replace(pfd, base, lambda: os.symlink(e.linkname, base, dir_fd=pfd))
            if self.chown:
                os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
            for k, v in (xattrs or {}).items():
                if not k.startswith("user."):  # user.* is not allowed on symlinks
                    self._lsetxattr(pfd, base, k, v)
            os.utime(base, ns=times, dir_fd=pfd, follow_symlinks=False)
        elif t == T.LNK:
            self._hardlink(e.linkname, pfd, base)
            # a hard link shares the inode: its metadata is the target's
        elif t in (T.CHR, T.BLK, T.FIFO):
            if t == T.FIFO:
                self._replace(pfd, base, lambda: os.mkfifo(base, 0o600, dir_fd=pfd))
            else:
                kind = stat.S_IFCHR if t == T.CHR else stat.S_IFBLK
                self._replace(pfd, base, lambda: os.mknod(base, kind | 0o600, os.makedev(e.devmajor, e.devminor),
                                                          dir_fd=pfd))
            self._node_meta(pfd, base, mode, uid, gid, xattrs, times)
        else:  # the reader yields no other type
            raise ImageError(f"{e.name}: unsupported tar entry type {t!r}")
        if t != T.DIR:
            self.dirmeta.pop(path, None)
        self.made.add(path)

    def _owner(self, e) -> tuple[int, int, dict | None]:
        """Host owner and xattrs of an entry; rootless, the owner goes into
        user.rootlesscontainers (one found in the layer is dropped, as umoci does)."""
        xattrs = e.xattrs
        if not self.rootless:
            if not self.chown:
                return 0, 0, xattrs
            return self.ids[0].to_host(e.uid), self.ids[1].to_host(e.gid), xattrs
        if xattrs and ROOTLESS_XATTR in xattrs:
            xattrs = {k: v for k, v in xattrs.items() if k != ROOTLESS_XATTR}
        payload = rootless_payload(e.uid, e.gid)
        if payload is not None:
            xattrs = {**(xattrs or {}), ROOTLESS_XATTR: payload}
        return 0, 0, xattrs

    # --- creating ------------------------------------------------------------

    def _create(self, pfd: int, base: str) -> int:
        try:
            return os.open(base, _WFLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            return os.open(base, _WFLAGS, 0o600, dir_fd=pfd)
        except PermissionError:
            if not self.rootless or not self._unlock(pfd):
                raise
            return self._create(pfd, base)

    def _replace(self, pfd: int, base: str, make) -> None:
        """make() a new name; what is there already is removed first."""
        try:
            make()
        except FileExistsError:
            self._remove(pfd, base)
            make()
        except PermissionError:
            if not self.rootless or not self._unlock(pfd):
                raise
            self._replace(pfd, base, make)

    def _mkdir(self, pfd: int, base: str, path: str, mode: int, uid: int, gid: int,
               xattrs: dict | None, times: tuple[int, int]) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                self._remove(pfd, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
        except PermissionError:
            if not self.rootless or not self._unlock(pfd):
                raise
            return self._mkdir(pfd, base, path, mode, uid, gid, xattrs, times)
        try:
            fd = os.open(base, _DFLAGS, dir_fd=pfd)
        except PermissionError:  # rootless, a lower layer's directory we may not read
            if not self.rootless:
                raise
            fd = os.open(base, _PFLAGS, dir_fd=pfd)
            os.chmod(f"/proc/self/fd/{fd}", 0o700)
            os.close(fd)
            fd = os.open(base, _DFLAGS, dir_fd=pfd)
        try:
            if self.chown:
                os.fchown(fd, uid, gid)
            if not self.rootless:
                os.fchmod(fd, mode)  # root writes into it whatever its mode
            elif stat.S_IMODE(os.fstat(fd).st_mode) != 0o700:
                os.fchmod(fd, 0o700)  # rootless: writable until the layer is done
            for k, v in (xattrs or {}).items():
                self._setxattr(fd, k, v)
        except BaseException:
            os.close(fd)
            raise
        self.unlocked.pop(path, None)
        self.dirmeta[path] = (mode, *times)
        self._cache(path, fd)

    def _hardlink(self, linkname: str, pfd: int, base: str) -> None:
        src = clean(linkname)
        sparent, _, sbase = src.rpartition("/")
        spfd = self._dir(sparent, False) if sbase else None
        if spfd is None:
            raise ImageError(f"hard link to {linkname!r}: no such file in the rootfs")
        try:
            self._replace(pfd, base, lambda: os.link(sbase, base, src_dir_fd=spfd, dst_dir_fd=pfd,
                                                     follow_symlinks=False))
        except FileNotFoundError:
            raise ImageError(f"hard link to {linkname!r}: no such file in the rootfs") from None

    def _node_meta(self, pfd: int, base: str, mode: int, uid: int, gid: int, xattrs: dict | None,
                   times: tuple[int, int]) -> None:
        """Owner, then mode (chown clears setuid/setgid), xattrs, times of a
        device node or fifo (not opened: opening a fifo would block)."""
        if self.chown:
            os.chown(base, uid, gid, dir_fd=pfd, follow_symlinks=False)
        fd = os.open(base, C.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            proc = f"/proc/self/fd/{fd}"
            os.chmod(proc, mode)
            for k, v in (xattrs or {}).items():
                self._setxattr(proc, k, v)
        finally:
            os.close(fd)
        os.utime(base, ns=times, dir_fd=pfd, follow_symlinks=False)

    def _setxattr(self, target, key: str, value: bytes, follow: bool = True) -> None:
        """As umoci: an xattr the file system does not support is skipped;
        rootless, one we may not set (security.*, trusted.*) too."""
        try:
            os.setxattr(target, key, value, follow_symlinks=follow)
        except PermissionError:
            if not self.rootless:
                raise
        except OSError as e:
            if e.errno != errno.EOPNOTSUPP:
                raise

    def _lsetxattr(self, pfd: int, base: str, key: str, value: bytes) -> None:
        fd = os.open(".", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            self._setxattr(f"/proc/self/fd/{fd}/{base}", key, value, follow=False)
        finally:
            os.close(fd)

    # --- removing ------------------------------------------------------------

    def _remove(self, dirfd: int, name: str) -> None:
        """Remove `name` under dirfd, recursively, never following a symlink."""
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(st.st_mode):
            self._drop_cache(dirfd)  # a cached path may lead through it
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(name, _DFLAGS, dir_fd=dirfd)
            except PermissionError:
                if not self.rootless:
                    raise
                pfd = os.open(name, _PFLAGS, dir_fd=dirfd)
                try:
                    os.chmod(f"/proc/self/fd/{pfd}", 0o700)  # ours: we may empty it
                finally:
                    os.close(pfd)
                fd = os.open(name, _DFLAGS, dir_fd=dirfd)
            try:
                if self.rootless and stat.S_IMODE(st.st_mode) & 0o700 != 0o700:
                    os.fchmod(fd, 0o700)
                for child in os.listdir(fd):
                    self._remove(fd, child)
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=dirfd)
        else:
            os.unlink(name, dir_fd=dirfd)

    def _whiteout(self, parent: str, name: str) -> None:
        pfd = self._dir(parent, False)
        if pfd is None:
            return
        self._remove(pfd, name)
        self.dirmeta.pop(f"{parent}/{name}" if parent else name, None)

    def _opaque(self, parent: str) -> None:
        """Empty the directory of what lower layers put there."""
        pfd = self._dir(parent, False)
        if pfd is None:
            return
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            for child in os.listdir(dfd):
                if (f"{parent}/{child}" if parent else child) not in self.made:
                    self._remove(dfd, child)
        finally:
            os.close(dfd)
        self._drop_cache(-1)

    # --- directories' metadata ------------------------------------------------

    def _keep_times(self, path: str) -> None:
        """Remember the times of an existing directory (as umoci restores them)."""
        fd = self._dir(path, False)
        if fd is None:
            return
        st = os.fstat(fd)
        self.kept[path] = (st.st_atime_ns, st.st_mtime_ns)

    def _unlock(self, pfd: int) -> bool:
        """Rootless: a lower layer's directory without u+rwx for us; made
        writable for this layer, its mode restored at the end (umoci's unpriv)."""
        st = os.fstat(pfd)
        if stat.S_IMODE(st.st_mode) & 0o700 == 0o700 or st.st_uid != os.geteuid():
            return False
        path = next((p for p, fd in self.dirs.items() if fd == pfd), None)
        if path is None:
            return False
        os.chmod(f"/proc/self/fd/{pfd}", stat.S_IMODE(st.st_mode) | 0o700)
        self.unlocked.setdefault(path, stat.S_IMODE(st.st_mode))
        return True

    def _finish_dirs(self) -> None:
        """Directories change as their children arrive: modes (rootless) and
        times go on last, deepest first."""
        for path, (mode, atime, mtime) in reversed(list(self.dirmeta.items())):
            self._dir_meta(path, mode if self.rootless else None, (atime, mtime))
        for path, ns in self.kept.items():
            if path not in self.made and path:
                self._dir_meta(path, None, ns)
        for path, mode in reversed(list(self.unlocked.items())):  # last: they may lock us out
            if path not in self.dirmeta:
                self._dir_meta(path, mode, None)

    def _dir_meta(self, path: str, mode: int | None, ns: tuple[int, int] | None) -> None:
        parent, _, base = path.rpartition("/")
        pfd = self._dir(parent, False)
        if pfd is None:
            return
        try:
            if ns is not None:
                os.utime(base, ns=ns, dir_fd=pfd, follow_symlinks=False)
            if mode is not None:
                fd = os.open(base, _PFLAGS, dir_fd=pfd)
                try:
                    os.chmod(f"/proc/self/fd/{fd}", mode)
                finally:
                    os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            pass  # removed or replaced by a later entry of the same layer
