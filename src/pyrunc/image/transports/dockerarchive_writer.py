"""Writing a docker-archive: one image into a new `docker save` tar, as
containers/image's docker/internal/tarfile Writer and Destination write it.

Blobs stream into a temporary file beside FILE (layers as <diff_id hex>.tar,
the config as <hex>.json, at the top), then the legacy per-layer directories
(<id>/layer.tar a symlink, VERSION, json) with ids computed as
containers/image computes them, then manifest.json and repositories; Go's
tar headers. Fed in the same order, the archive is skopeo's byte for byte.
commit() renames it to FILE; nothing is left without it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from typing import Optional

from ...errors import PyruncError
from ..digest import read_at_most
from ..gojson import compact_raw, field, raw_members
from ..reference import DockerArchiveReference, Named, go_quote, validate_digest
from ..transport import ImageDestination, VerifiedStream
from ..transport import Options
from .dockerarchive import CHUNK, DOCKER_MANIFEST, MANIFEST_FILE, MAX_CONFIG, additional_tag, big_temp_dir, why
from ..mediatypes import OCI_MANIFEST

REPOSITORIES_FILE = "repositories"
USTAR_MAX_SIZE = 0o77777777777   # 11 octal digits
_LEGACY_ATTRS = ("architecture", "config", "container", "container_config",
                 "created", "docker_version", "os")


def _header(name: str, size: int, link: str = "") -> bytes:
    """A member header as Go's archive/tar writes tar.FileInfoHeader's:
    USTAR, mode 0444 (a symlink 0), owner 0, mtime 0, every numeric field
    (device numbers too) in octal; PAX when a name or the size does not fit."""
    bname, blink = name.encode(), link.encode()
    if len(bname) > 100 or len(blink) > 100 or size > USTAR_MAX_SIZE:
        ti = tarfile.TarInfo(name)
        ti.mtime = 0
        if link:
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, link, 0
        else:
            ti.mode, ti.size = 0o444, size
        return ti.tobuf(tarfile.PAX_FORMAT)

    def octal(n: int, width: int) -> bytes:
        return b"%0*o\0" % (width - 1, n)

    mode, typ = (0, tarfile.SYMTYPE) if link else (0o444, tarfile.REGTYPE)
    hdr = (bname.ljust(100, b"\0") + octal(mode, 8) + octal(0, 8) + octal(0, 8)
           + octal(0 if link else size, 12) + octal(0, 12) + b" " * 8 + typ
           + blink.ljust(100, b"\0") + b"ustar\x0000" + b"\0" * 64
           + octal(0, 8) + octal(0, 8)).ljust(tarfile.BLOCKSIZE, b"\0")
    chksum = sum(hdr)
    return hdr[:148] + b"%06o\0 " % chksum + hdr[156:]


def _pad(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _go_map(d: dict[str, bytes]) -> bytes:
    """json.Marshal of a map[string]any whose values are already JSON."""
    return b"{" + b",".join(json.dumps(k).encode() + b":" + v for k, v in sorted(d.items())) + b"}"



def open_destination(ref: DockerArchiveReference, opts: Options) -> "ArchiveDestination":
    """docker-archive:'s destination (transports.open_destination loads this
    module only to write, so reading an archive never imports the writer)."""
    return ArchiveDestination(ref, [additional_tag(t) for t in opts.additional_tags])


class ArchiveDestination(ImageDestination):
    """A new `docker save` archive holding one image."""

    needs_uncompressed_layers = True
    supports_index = False

    def __init__(self, ref: DockerArchiveReference, additional_tags: Optional[list[Named]] = None) -> None:
        self.reference: DockerArchiveReference = ref
        if ref.source_index != -1:
            raise PyruncError(f"Destination reference must not contain a manifest index @{ref.source_index}")
        self.path = ref.path
        # RepoTags: NAME:TAG of the reference, then each --additional-tag.
        self._repo_tags: list[Named] = ([ref.ref] if ref.ref is not None else []) + list(additional_tags or ())
        self._lock = threading.Lock()
        self._blobs: dict[str, int] = {}           # digest -> size, written already
        self._config: Optional[bytes] = None
        self._config_digest = ""
        self._manifest_item: Optional[dict] = None
        self._repositories: dict[str, dict[str, str]] = {}
        self._legacy: set[str] = set()
        self._broken = False
        self._committed = False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise PyruncError(f"opening file {go_quote(self.path)}: {why(e)}") from None
        import stat as _stat
        self._regular = st is None or _stat.S_ISREG(st.st_mode)
        if st is not None and self._regular and st.st_size != 0:
            raise PyruncError("docker-archive doesn't support modifying existing images")
        # Built beside FILE (renamed at commit) or, for a FILE that is no
        # regular file (a pipe, /dev/stdout), in the temporary directory.
        tmp_dir = os.path.dirname(os.path.abspath(self.path)) if self._regular else big_temp_dir()
        base = os.path.basename(self.path) or "docker-archive"
        self._tmp = ""
        for _ in range(100):
            cand = os.path.join(tmp_dir, f".{base}.{os.urandom(6).hex()}.tmp")
            try:
                fd = os.open(cand, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                continue
            except OSError as e:
                raise PyruncError(f"opening file {go_quote(self.path)}: {why(e)}") from None
            self._tmp = cand
            break
        else:
            raise PyruncError(f"opening file {go_quote(self.path)}: no free temporary name")
        self._out = os.fdopen(fd, "wb")

    # --- the tar stream (the lock held) ---

    def _send(self, name: str, size: Optional[int], stream) -> int:
        """One regular member of exactly `size` bytes or, with size None, of
        what the stream holds: its header is written again once the size is
        known (the archive is a regular file, written by one thread at a time)."""
        start = self._out.tell()
        self._out.write(_header(name, size or 0))
        done = 0
        while size is None or done < size:
            chunk = stream.read(CHUNK if size is None else min(CHUNK, size - done))
            if not chunk:
                break
            self._out.write(chunk)
            done += len(chunk)
        if size is not None and done != size:
            raise PyruncError(f"Size mismatch when copying {name}, expected {size}, got {done}")
        if size is None:
            self._out.flush()
            if done > USTAR_MAX_SIZE:  # the header grows: write the member again after a larger one
                return self._resend(name, start, done)
            os.pwrite(self._out.fileno(), _header(name, done), start)
        self._out.write(_pad(done))
        return done

    def _resend(self, name: str, start: int, size: int) -> int:
        import tempfile
        fd = self._out.fileno()
        with tempfile.TemporaryFile(dir=big_temp_dir(), prefix="container_images_docker-tar") as spool:
            pos = start + tarfile.BLOCKSIZE
            while pos < start + tarfile.BLOCKSIZE + size:
                chunk = os.pread(fd, min(CHUNK, start + tarfile.BLOCKSIZE + size - pos), pos)
                spool.write(chunk)
                pos += len(chunk)
            spool.seek(0)
            self._out.seek(start)
            self._out.truncate()
            return self._send(name, size, spool)

    def _send_bytes(self, name: str, data: bytes) -> None:
        self._send(name, len(data), io.BytesIO(data))

    def _send_symlink(self, name: str, target: str) -> None:
        self._out.write(_header(name, 0, target))

    # --- ImageDestination ---

    def has_blob(self, desc: dict) -> bool:
        with self._lock:
            return desc.get("digest") in self._blobs

    def put_blob(self, desc: dict, stream: VerifiedStream) -> None:
        digest = desc.get("digest", "")
        validate_digest(digest)   # it names a file of the archive
        size = desc.get("size")
        is_config = str(desc.get("mediaType", "")).endswith("json")
        if is_config:
            data = read_at_most(stream, MAX_CONFIG)
            if data is None:
                raise PyruncError(f"reading Config file stream: exceeded maximum allowed size of {MAX_CONFIG} bytes")
            stream.finish()
            with self._lock:
                self._check_open()
                if digest not in self._blobs:
                    self._guarded(self._send_bytes, digest.split(":", 1)[1] + ".json", data)
                    self._blobs[digest] = len(data)
                self._config, self._config_digest = data, digest
            return
        name = digest.split(":", 1)[1] + ".tar"
        known = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
        # Straight into the archive when no other layer is being written;
        # otherwise spooled to a temporary file first and appended after.
        if self._lock.acquire(blocking=False):
            try:
                self._check_open()
                if digest in self._blobs:
                    stream.finish()
                    return
                written = self._guarded(self._send, name, known, stream)
                self._guarded(stream.finish)
                self._blobs[digest] = written
            finally:
                self._lock.release()
            return
        import tempfile
        with tempfile.TemporaryFile(dir=big_temp_dir(), prefix="container_images_docker-tar") as spool:
            n = 0
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                spool.write(chunk)
                n += len(chunk)
            if known is not None and n != known:
                raise PyruncError(f"Size mismatch when copying {name}, expected {known}, got {n}")
            stream.finish()
            spool.seek(0)
            with self._lock:
                self._check_open()
                if digest not in self._blobs:
                    self._guarded(self._send, name, n, spool)
                    self._blobs[digest] = n

    def _check_open(self) -> None:
        if self._broken or self._committed:
            raise PyruncError("docker-archive: the archive can no longer be written to")

    def _guarded(self, fn, *args):
        """A write that, failing half-way, leaves the archive unusable."""
        try:
            return fn(*args)
        except BaseException as e:
            self._broken = True
            if isinstance(e, OSError):
                raise PyruncError(f"writing {self.path}: {why(e)}") from None
            raise

    def put_manifest(self, raw: bytes, media_type: str, instance: Optional[str] = None) -> None:
        if instance is not None:
            raise PyruncError("Manifest lists are not supported for docker tar files")
        try:
            man = json.loads(raw)
        except ValueError as e:
            raise PyruncError(f"parsing manifest: {e}") from None
        if not isinstance(man, dict) or man.get("schemaVersion") != 2 \
                or man.get("mediaType", media_type) not in (DOCKER_MANIFEST, OCI_MANIFEST):
            raise PyruncError("Unsupported manifest type, need a Docker schema 2 manifest")
        config = man.get("config")
        layers = man.get("layers") or []
        if not isinstance(config, dict) or not isinstance(layers, list) \
                or not all(isinstance(l, dict) for l in layers):
            raise PyruncError("parsing manifest: invalid config or layers")
        digests = [str(l.get("digest", "")) for l in layers]
        config_digest = str(config.get("digest", ""))
        for d in digests + [config_digest]:
            validate_digest(d)
        with self._lock:
            self._check_open()
            if config_digest not in self._blobs:
                raise PyruncError(f"docker-archive: the manifest names config {config_digest}, which was not written")
            if any(d not in self._blobs for d in digests):
                # A manifest still naming the compressed blobs (an OCI one as
                # the source had it): the layers are stored as their diff_ids.
                digests = self._diff_ids(len(digests))
            missing = [d for d in digests if d not in self._blobs]
            if missing:
                raise PyruncError(f"docker-archive: the manifest names layer {missing[0]}, which was not written")
            if self._config is None or self._config_digest != config_digest:
                raise PyruncError(f"docker-archive: config {config_digest} was not written as a config")
            self._guarded(self._write_legacy, digests, self._config)
            self._manifest_item = {
                "Config": config_digest.split(":", 1)[1] + ".json",
                "RepoTags": [f"{t.name}:{t.tag}" for t in dict.fromkeys(self._repo_tags)],
                "Layers": [d.split(":", 1)[1] + ".tar" for d in digests],
            }

    def _diff_ids(self, count: int) -> list[str]:
        """The config's rootfs.diff_ids (there must be `count`)."""
        try:
            diff_ids = field(field(json.loads(self._config or b"null"), "rootfs"), "diff_ids")
        except ValueError:
            diff_ids = None
        if not isinstance(diff_ids, list) or len(diff_ids) != count \
                or not all(isinstance(d, str) for d in diff_ids):
            raise PyruncError(f"docker-archive: the config does not list {count} diff_ids for the manifest's layers")
        return diff_ids

    def _write_legacy(self, digests: list[str], config: bytes) -> None:
        """Per-layer directories (<id>/layer.tar, VERSION, json) and the
        repositories' tags, as writeLegacyMetadataLocked makes them."""
        chain = ""
        last = ""
        try:
            top = raw_members(config) if digests else {}
        except ValueError as e:
            raise PyruncError(f"unmarshaling config: {e}") from None
        for i, d in enumerate(digests):
            layer: dict[str, bytes] = {}
            if last:
                layer["parent"] = json.dumps(last).encode()
            if i == len(digests) - 1:
                for attr in _LEGACY_ATTRS:
                    layer[attr] = compact_raw(top[attr]) if attr in top else b"null"
            chain = d if not chain else "sha256:" + hashlib.sha256(f"{chain} {d}".encode()).hexdigest()
            layer["layer_id"] = json.dumps(chain).encode()
            layer_id = hashlib.sha256(_go_map(layer)).hexdigest()
            del layer["layer_id"]
            layer["id"] = json.dumps(layer_id).encode()
            if layer_id not in self._legacy:
                self._send_symlink(f"{layer_id}/layer.tar", f"../{d.split(':', 1)[1]}.tar")
                self._send_bytes(f"{layer_id}/VERSION", b"1.0")
                self._send_bytes(f"{layer_id}/json", _go_map(layer))
                self._legacy.add(layer_id)
            last = layer_id
        if last:
            for t in self._repo_tags:
                self._repositories.setdefault(t.name, {})[str(t.tag)] = last

    def commit(self) -> None:
        with self._lock:
            self._check_open()
            if self._manifest_item is None:
                raise PyruncError("docker-archive: commit without a manifest")
            manifest = json.dumps([self._manifest_item], separators=(",", ":")).encode()
            repos = json.dumps(self._repositories, separators=(",", ":"), sort_keys=True).encode()
            try:
                self._guarded(self._send_bytes, MANIFEST_FILE, manifest)
                self._guarded(self._send_bytes, REPOSITORIES_FILE, repos)
                self._out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
                self._out.flush()
                os.fsync(self._out.fileno())
                self._out.close()
                if self._regular:
                    os.rename(self._tmp, self.path)
                else:
                    self._copy_to_target()
                    os.unlink(self._tmp)
            except OSError as e:
                self._broken = True
                raise PyruncError(f"writing {self.path}: {why(e)}") from None
            self._committed = True

    def _copy_to_target(self) -> None:
        """FILE is a pipe or a device: the finished archive is copied into it."""
        with open(self._tmp, "rb") as src, open(self.path, "wb") as dst:
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    return
                dst.write(chunk)

    def close(self) -> None:
        with self._lock:
            if not self._out.closed:
                try:
                    self._out.close()
                except OSError:
                    pass
            if not self._committed and self._tmp:
                try:
                    os.unlink(self._tmp)
                except FileNotFoundError:
                    pass
            self._tmp = ""
