"""Applying image layers (image-spec layer.md) to a rootfs.

Every path of a layer is resolved inside the rootfs: parents through
mkdir_all/open_in_root (openat2 RESOLVE_IN_ROOT, so `..`, absolute names and
symlinks planted by an earlier entry stay inside), and the last component is
only ever created, linked or removed relative to that parent's fd with
O_NOFOLLOW semantics. A hostile layer can therefore at worst write inside
its own rootfs.
"""
from __future__ import annotations

import os
import stat
import tarfile

from ..linux import consts as C
from ..rootfs.paths import mkdir_all, open_in_root
from .layout import ImageError, Layout

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
XATTR_PAX = "SCHILY.xattr."
GZIP_TYPES = ("application/vnd.oci.image.layer.v1.tar+gzip",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
              "application/vnd.docker.image.rootfs.diff.tar.gzip",
              "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
ZSTD_TYPES = ("application/vnd.oci.image.layer.v1.tar+zstd",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
TAR_TYPES = ("application/vnd.oci.image.layer.v1.tar",
             "application/vnd.oci.image.layer.nondistributable.v1.tar")


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


def decompressor(media_type: str, raw):
    """A reader of the layer's tar bytes, by the descriptor's media type."""
    if media_type in GZIP_TYPES:
        import gzip
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if media_type in ZSTD_TYPES:
        try:
            import zstandard
        except ImportError:
            raise ImageError("zstd-compressed layer: the Python module 'zstandard' is not installed") from None
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if media_type in TAR_TYPES:
        return raw
    raise ImageError(f"unsupported layer media type {media_type!r}")


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


def unpack_image(layout: Layout, manifest: dict, config: dict, rootfs: str,
                 uids: IdMap | None = None, gids: IdMap | None = None) -> None:
    """Apply the manifest's layers in order into `rootfs` (which exists)."""
    ids = (uids or IdMap("uid"), gids or IdMap("gid"))
    from .digest import VerifyingReader
    layers = manifest.get("layers")
    if not isinstance(layers, list):
        raise ImageError("manifest: no layers list")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") if isinstance(config.get("rootfs"), dict) else None
    if isinstance(diff_ids, list) and len(diff_ids) != len(layers):
        raise ImageError(f"image config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
    rootfd = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        if os.geteuid() == 0 and (ids[0].ranges or ids[1].ranges):
            os.fchown(rootfd, ids[0].to_host(0), ids[1].to_host(0))  # the rootfs is the mapped root's, as umoci's
        for i, desc in enumerate(layers):
            if not isinstance(desc, dict):
                raise ImageError(f"manifest: layer {i} is not a descriptor")
            blob = layout.open_blob(desc, "layer")
            try:
                stream = decompressor(desc.get("mediaType", ""), blob)
                tarstream = VerifyingReader(stream, diff_ids[i], None, "layer diff_id") if diff_ids else stream
                apply_layer(rootfd, tarstream, ids)
                if diff_ids:
                    tarstream.finish()
                blob.finish()
            except (EOFError, OSError, tarfile.TarError) as e:
                if isinstance(e, ImageError):
                    raise
                raise ImageError(f"layer {desc.get('digest')}: {_why(e)}") from None
            finally:
                blob.close()
    finally:
        os.close(rootfd)


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def apply_layer(rootfd: int, fileobj, ids: tuple[IdMap, IdMap] | None = None) -> None:
    """Extract one uncompressed tar stream onto the rootfs at `rootfd`."""
    ids = ids or (IdMap("uid"), IdMap("gid"))
    made: set[str] = set()       # paths this layer created (an opaque dir keeps them)
    times: list[tuple[str, tarfile.TarInfo]] = []
    kept: dict[str, tuple[int, int]] = {}  # lower directories this layer changes: their times stay
    with tarfile.open(fileobj=fileobj, mode="r|", errorlevel=2) as tar:
        for m in tar:
            path = clean(m.name)
            if not path:
                continue  # the root itself: its metadata is the bundle's
            parent, _, base = path.rpartition("/")
            if parent not in made and parent not in kept:
                _keep_times(rootfd, parent, kept)
            if base == OPAQUE:
                _opaque(rootfd, parent, made)
                continue
            if base.startswith(WHITEOUT):
                target = base[len(WHITEOUT):]
                if target in ("", ".", ".."):
                    raise ImageError(f"invalid whiteout {m.name!r}")
                _whiteout(rootfd, parent, target)
                continue
            _extract(rootfd, tar, m, parent, base, ids)
            made.add(path)
            if not m.islnk():
                times.append((path, m))
    # directories change as their children arrive: times go on last, deepest first
    for path, ns in kept.items():
        if path not in made:
            _utime(rootfd, path, ns)
    for path, m in reversed(times):
        mtime = int(m.mtime * 1_000_000_000)
        atime = m.pax_headers.get("atime")
        try:
            ans = int(float(atime) * 1_000_000_000) if atime else mtime
        except ValueError:
            ans = mtime
        _utime(rootfd, path, (ans, mtime))


def _keep_times(rootfd: int, path: str, kept: dict[str, tuple[int, int]]) -> None:
    """Remember the times of an existing directory (as umoci restores them)."""
    try:
        fd = open_in_root(rootfd, path or "/", C.O_PATH | os.O_DIRECTORY)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        kept[path] = (st.st_atime_ns, st.st_mtime_ns)
    finally:
        os.close(fd)


def _parent_fd(rootfd: int, parent: str, create: bool) -> int | None:
    try:
        if create:
            return mkdir_all(rootfd, parent or "/")
        return open_in_root(rootfd, parent or "/", C.O_PATH | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        if create:
            raise
        return None


def _remove(dirfd: int, name: str) -> None:
    """Remove `name` under dirfd, recursively, never following a symlink."""
    try:
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
        try:
            for child in os.listdir(fd):
                _remove(fd, child)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def _whiteout(rootfd: int, parent: str, name: str) -> None:
    pfd = _parent_fd(rootfd, parent, False)
    if pfd is None:
        return
    try:
        _remove(pfd, name)
    finally:
        os.close(pfd)


def _opaque(rootfd: int, parent: str, made: set[str]) -> None:
    """Empty the directory of what lower layers put there."""
    pfd = _parent_fd(rootfd, parent, False)
    if pfd is None:
        return
    try:
        dfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
        try:
            for child in os.listdir(dfd):
                if (f"{parent}/{child}" if parent else child) not in made:
                    _remove(dfd, child)
        finally:
            os.close(dfd)
    finally:
        os.close(pfd)


def _extract(rootfd: int, tar: tarfile.TarFile, m: tarfile.TarInfo, parent: str, base: str,
             ids: tuple[IdMap, IdMap]) -> None:
    pfd = _parent_fd(rootfd, parent, True)
    try:
        try:
            old = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            old = None
        if old is not None and not (m.isdir() and stat.S_ISDIR(old.st_mode)):
            _remove(pfd, base)
        mode = m.mode & 0o7777
        if m.isdir():
            if old is None or not stat.S_ISDIR(old.st_mode):
                os.mkdir(base, 0o700, dir_fd=pfd)
        elif m.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
            try:
                src = tar.extractfile(m)
                while True:
                    chunk = src.read(1 << 20)
                    if not chunk:
                        break
                    _write_all(fd, chunk)
            finally:
                os.close(fd)
        elif m.issym():
            os.symlink(m.linkname, base, dir_fd=pfd)
        elif m.islnk():
            _hardlink(rootfd, m.linkname, pfd, base)
            return  # a hard link shares the inode: its metadata is the target's
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        elif m.isfifo():
            os.mkfifo(base, 0o600, dir_fd=pfd)
        else:
            raise ImageError(f"{m.name}: unsupported tar entry type {m.type!r}")
        _set_meta(pfd, base, m, mode, ids)
    finally:
        os.close(pfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _hardlink(rootfd: int, linkname: str, pfd: int, base: str) -> None:
    src = clean(linkname)
    sparent, _, sbase = src.rpartition("/")
    spfd = _parent_fd(rootfd, sparent, False) if sbase else None
    if spfd is None:
        raise ImageError(f"hard link to {linkname!r}: no such file in the rootfs")
    try:
        os.link(sbase, base, src_dir_fd=spfd, dst_dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        raise ImageError(f"hard link to {linkname!r}: no such file in the rootfs") from None
    finally:
        os.close(spfd)


def _set_meta(pfd: int, base: str, m: tarfile.TarInfo, mode: int, ids: tuple[IdMap, IdMap]) -> None:
    """Owner, then mode (chown clears setuid/setgid), then xattrs."""
    if os.geteuid() == 0:
        os.chown(base, ids[0].to_host(m.uid), ids[1].to_host(m.gid), dir_fd=pfd, follow_symlinks=False)
    xattrs = {k[len(XATTR_PAX):]: v for k, v in m.pax_headers.items() if k.startswith(XATTR_PAX)}
    if m.issym():
        for k, v in xattrs.items():
            if not k.startswith("user."):  # user.* is not allowed on symlinks
                _lsetxattr(pfd, base, k, v)
        return
    fd = os.open(base, C.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
    try:
        proc = f"/proc/self/fd/{fd}"
        os.chmod(proc, mode)
        for k, v in xattrs.items():
            os.setxattr(proc, k, v.encode("utf-8", "surrogateescape"))
    finally:
        os.close(fd)


def _lsetxattr(pfd: int, base: str, key: str, value: str) -> None:
    fd = os.open(".", C.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=pfd)
    try:
        os.setxattr(f"/proc/self/fd/{fd}/{base}", key, value.encode("utf-8", "surrogateescape"),
                    follow_symlinks=False)
    finally:
        os.close(fd)


def _utime(rootfd: int, path: str, ns: tuple[int, int]) -> None:
    parent, _, base = path.rpartition("/")
    if not base:
        return  # the rootfs itself
    pfd = _parent_fd(rootfd, parent, False)
    if pfd is None:
        return
    try:
        os.utime(base, ns=ns, dir_fd=pfd, follow_symlinks=False)
    except FileNotFoundError:
        pass  # removed by a later entry of the same layer
    finally:
        os.close(pfd)
