"""docker-archive:FILE[:NAME:TAG|:@INDEX], a `docker save` tar file.

As containers/image's docker/archive and docker/internal/tarfile read and
write it, so that skopeo and docker load accept what is written here and a
manifest read here is the one skopeo synthesizes, byte for byte.

Reading: `manifest.json` lists the images (Config, RepoTags, Layers, each a
path inside the tar); the archive is indexed once (member offsets, no
extraction) and members are read by offset with pread, so several layers
can stream at once. The manifest is synthesized: a Docker schema2 manifest
whose layers are named by the config's diff_ids, so a layer stored
compressed (some `docker save` versions, umoci) is served decompressed. A
compressed archive is first decompressed into an unlinked temporary file.

Writing (one image): blobs stream into a temporary file beside FILE, laid
out as containers/image's tarfile.Writer lays them out (<hex>.tar layers and
<hex>.json config at the top, the legacy per-layer directories, then
manifest.json and repositories); commit() renames it to FILE.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from typing import BinaryIO, Optional

from ...errors import PyruncError
from ..compression import HEAD, decompressing, detect
from ..digest import read_at_most
from ..gojson import compact_raw, field, raw_members
from ..reference import DockerArchiveReference, Named, go_quote, parse_normalized_named, validate_digest
from ..transport import ImageDestination, ImageSource, Options

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
# What containers/image names every layer of the manifest it synthesizes
# (the layers are in fact served uncompressed; consumers go by the diff_id).
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MAX_MANIFEST_JSON = 1 << 20    # iolimits.MaxTarFileManifestSize
MAX_CONFIG = 4 << 20           # iolimits.MaxConfigBodySize
_CHUNK = 1 << 20
USTAR_MAX_SIZE = 0o77777777777   # 11 octal digits
_LEGACY_ATTRS = ("architecture", "config", "container", "container_config",
                 "created", "docker_version", "os")

def open_source(ref: DockerArchiveReference, opts: Options) -> "ArchiveSource":
    return ArchiveSource(ref)


def open_destination(ref: DockerArchiveReference, opts: Options) -> "ArchiveDestination":
    extra = [additional_tag(t) for t in opts.additional_tags]
    return ArchiveDestination(ref, extra)


def additional_tag(text: str) -> Named:
    """A --additional-tag value: a tagged name (skopeo's checks and words)."""
    try:
        n = parse_normalized_named(text)
    except PyruncError as e:
        raise PyruncError(f"error parsing additional-tag '{text}': {e}") from None
    if n.tag is None:
        raise PyruncError(f"additional-tag '{text}' must be a tagged reference")
    return n


def _why(e: BaseException) -> str:
    """An OSError's text as Go words it (lower case)."""
    why = getattr(e, "strerror", None) or str(e) or type(e).__name__
    return why[:1].lower() + why[1:]


def big_temp_dir() -> str:
    """containers/image's directory for big temporary files (not a tmpfs /tmp)."""
    return os.environ.get("TMPDIR") or "/var/tmp"


def _clean(name: str) -> str:
    """Go's path.Clean for the relative names of tar members."""
    rooted = name.startswith("/")
    out: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    s = "/".join(out)
    return ("/" + s) if rooted else (s or ".")


class _Span:
    """A read-only stream of `size` bytes at `offset` of fd (pread: streams
    of one archive do not share a file position)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd, self._pos, self._end = fd, offset, offset + size

    def read(self, n: int = -1) -> bytes:
        left = self._end - self._pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise PyruncError("docker-archive: unexpected end of the archive file")
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        pass


class _Decompressing:
    """A layer served decompressed, closing what it reads from."""

    def __init__(self, inner, under) -> None:
        self._inner, self._under = inner, under

    def read(self, n: int = -1) -> bytes:
        try:
            return self._inner.read(n)
        except (OSError, EOFError, ValueError) as e:
            if isinstance(e, PyruncError):
                raise
            raise PyruncError(f"docker-archive: decompressing a layer: {_why(e)}") from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._under.close()


class _Archive:
    """An opened `docker save` tar: its members' offsets and manifest.json."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PyruncError(f"opening file {go_quote(path)}: {_why(e)}") from None
        try:
            kind = detect(os.pread(fd, HEAD, 0))
            if kind is not None:
                plain = self._decompress_to_temp(fd, kind)
                os.close(fd)
                fd = plain
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        try:
            self.members = self._index()
            data = self.read_member(MANIFEST_FILE, MAX_MANIFEST_JSON)
            self.items = self._parse_manifest(data)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _decompress_to_temp(fd: int, kind: str) -> int:
        """The archive decompressed into an unlinked temporary file."""
        import tempfile
        with os.fdopen(os.dup(fd), "rb") as raw:
            try:
                tmp = tempfile.TemporaryFile(dir=big_temp_dir(), prefix="container_images_docker-tar")
            except OSError as e:
                raise PyruncError(f"creating temporary file: {_why(e)}") from None
            try:
                src = decompressing(kind, raw)
                while True:
                    try:
                        chunk = src.read(_CHUNK)
                    except (OSError, EOFError, ValueError) as e:
                        raise PyruncError(f"auto-decompressing input: {_why(e)}") from None
                    if not chunk:
                        break
                    tmp.write(chunk)
                tmp.flush()
                return os.dup(tmp.fileno())
            except OSError as e:
                raise PyruncError(f"copying contents to temporary file: {_why(e)}") from None
            finally:
                tmp.close()

    def _index(self) -> dict[str, tarfile.TarInfo]:
        """Every member by its cleaned name (the first one wins, as a linear scan finds it)."""
        members: dict[str, tarfile.TarInfo] = {}
        f = os.fdopen(os.dup(self.fd), "rb")
        try:
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r:") as tar:
                for m in tar:
                    members.setdefault(_clean(m.name), m)
        except tarfile.TarError as e:
            raise PyruncError(f"{self.path}: not a valid tar archive: {e}") from None
        except OSError as e:
            raise PyruncError(f"{self.path}: {_why(e)}") from None
        finally:
            f.close()
        return members

    def member(self, name: str) -> tarfile.TarInfo:
        """The regular file member `name`, through one symlink at most."""
        path = _clean(name)
        m = self.members.get(path)
        if m is not None and m.issym():
            # Only compared to the names of the archive: nothing is extracted.
            m = self.members.get(_clean(os.path.dirname(path) + "/" + m.linkname))
        if m is None:
            raise PyruncError(f"loading tar component {go_quote(path)}: file does not exist")
        if not m.isreg():
            raise PyruncError(f"Error reading tar archive component {go_quote(m.name)}: not a regular file")
        return m

    def open_member(self, name: str) -> _Span:
        m = self.member(name)
        return _Span(self.fd, m.offset_data, m.size)

    def read_member(self, name: str, limit: int) -> bytes:
        m = self.member(name)
        if m.size > limit:
            raise PyruncError(f"loading tar component {go_quote(_clean(name))}: "
                              f"exceeded maximum allowed size of {limit} bytes")
        return _Span(self.fd, m.offset_data, m.size).read()

    def _parse_manifest(self, data: bytes) -> list[dict]:
        try:
            items = json.loads(data)
        except ValueError as e:
            raise PyruncError(f"decoding tar manifest.json: {e}") from None
        if items is None:
            items = []
        bad = PyruncError("decoding tar manifest.json: not a list of images (Config, RepoTags, Layers)")
        if not isinstance(items, list):
            raise bad
        out = []
        for it in items:
            if not isinstance(it, dict):
                raise bad
            config = field(it, "Config") or ""
            tags = field(it, "RepoTags") or []
            layers = field(it, "Layers") or []
            if not isinstance(config, str) or not isinstance(tags, list) or not isinstance(layers, list) \
                    or not all(isinstance(t, str) for t in tags + layers):
                raise bad
            out.append({"Config": config, "RepoTags": tags, "Layers": layers})
        return out

    def choose(self, ref: Optional[Named], index: int) -> dict:
        """ChooseManifestItem: by tag, by @INDEX, or the only image."""
        if ref is not None:
            want = str(ref)
            for i, item in enumerate(self.items):
                for tag in item["RepoTags"]:
                    try:
                        parsed = parse_normalized_named(tag)
                    except PyruncError as e:
                        raise PyruncError(f"Invalid tag {go_quote(tag)} in manifest.json item @{i}: {e}") from None
                    if str(parsed) == want:
                        return item
            raise PyruncError(f"Tag {go_quote(want)} not found")
        if index != -1:
            if index >= len(self.items):
                raise PyruncError(f"Invalid source index @{index}, only {len(self.items)} manifest items available")
            return self.items[index]
        if len(self.items) != 1:
            raise PyruncError(f"Unexpected tar manifest.json: expected 1 item, got {len(self.items)}")
        return self.items[0]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ArchiveSource(ImageSource):
    """One image of a `docker save` archive."""

    def __init__(self, ref: DockerArchiveReference) -> None:
        self.reference = ref
        self._archive = _Archive(ref.path)
        self._lock = threading.Lock()
        self._manifest: Optional[bytes] = None
        self._config = b""
        self._config_digest = ""
        self._layers: dict[str, tuple[str, int]] = {}   # diff_id -> (member path, uncompressed size)

    def _load(self) -> None:
        """The image's config and layer sizes, once (tarfile.Source's
        ensureCachedDataIsPresent)."""
        with self._lock:
            if self._manifest is not None:
                return
            a = self._archive
            item = a.choose(self.reference.ref, self.reference.source_index)
            config = a.read_member(item["Config"], MAX_CONFIG)
            try:
                parsed = json.loads(config)
            except ValueError as e:
                raise PyruncError(f"decoding tar config {go_quote(item['Config'])}: {e}") from None
            rootfs = field(parsed, "rootfs") if isinstance(parsed, dict) else None
            if not isinstance(rootfs, dict):
                raise PyruncError(f"Invalid image config (rootFS is not set): {go_quote(item['Config'])}")
            diff_ids = field(rootfs, "diff_ids") or []
            if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
                raise PyruncError(f"decoding tar config {go_quote(item['Config'])}: invalid rootfs.diff_ids")
            if len(item["Layers"]) != len(diff_ids):
                raise PyruncError(f"Inconsistent layer count: {len(item['Layers'])} in manifest, "
                                  f"{len(diff_ids)} in config")
            layers: dict[str, tuple[str, int]] = {}
            paths: set[str] = set()
            for diff_id, path in zip(diff_ids, item["Layers"]):
                try:
                    validate_digest(diff_id)
                except PyruncError as e:
                    raise PyruncError(f"invalid diff_id {go_quote(diff_id)} in the image config: {e}") from None
                if diff_id in layers:
                    # The same layer twice (docker save links the copies): one file serves both.
                    continue
                path = _clean(path)
                if path in paths:
                    raise PyruncError(f"Layer tarfile {go_quote(path)} used for two different DiffID values")
                paths.add(path)
                if path not in a.members:
                    raise PyruncError("Some layer tarfiles are missing in the tarball")
                layers[diff_id] = (path, self._uncompressed_size(path))
            self._config = config
            self._config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
            self._layers = layers
            descs = ",".join(_descriptor(DOCKER_LAYER, layers[d][1], d) for d in diff_ids)
            self._manifest = (
                f'{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}",'
                f'"config":{_descriptor(DOCKER_CONFIG, len(config), self._config_digest)},'
                f'"layers":[{descs}]}}').encode()

    def _uncompressed_size(self, path: str) -> int:
        """A layer's size as served (decompressed: it must be read through)."""
        m = self._archive.member(path)
        span = _Span(self._archive.fd, m.offset_data, m.size)
        kind = detect(span.read(HEAD))
        if kind is None:
            return m.size
        stream = self._open_layer(path)
        size = 0
        try:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    return size
                size += len(chunk)
        finally:
            stream.close()

    def _open_layer(self, path: str):
        m = self._archive.member(path)
        kind = detect(_Span(self._archive.fd, m.offset_data, m.size).read(HEAD))
        span = _Span(self._archive.fd, m.offset_data, m.size)
        if kind is None:
            return span
        return _Decompressing(decompressing(kind, span), span)

    def get_manifest(self, instance: Optional[str] = None) -> tuple[bytes, str]:
        if instance is not None:
            raise PyruncError('Manifest lists are not supported by "docker-archive:"')
        self._load()
        assert self._manifest is not None
        return self._manifest, DOCKER_MANIFEST

    def get_blob(self, desc: dict) -> BinaryIO:
        self._load()
        digest = desc.get("digest")
        if digest == self._config_digest:
            return io.BytesIO(self._config)
        if digest in self._layers:
            return self._open_layer(self._layers[digest][0])
        raise PyruncError(f"Unknown blob {digest}")

    def close(self) -> None:
        self._archive.close()


def _descriptor(media_type: str, size: int, digest: str) -> str:
    """A manifest.Schema2Descriptor as encoding/json writes it."""
    return f'{{"mediaType":"{media_type}","size":{size},"digest":"{digest}"}}'


# --- writing ---------------------------------------------------------------

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


class ArchiveDestination(ImageDestination):
    """A new `docker save` archive holding one image."""

    needs_uncompressed_layers = True
    supports_index = False

    def __init__(self, ref: DockerArchiveReference, additional_tags: Optional[list[Named]] = None) -> None:
        self.reference = ref
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
            raise PyruncError(f"opening file {go_quote(self.path)}: {_why(e)}") from None
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
                raise PyruncError(f"opening file {go_quote(self.path)}: {_why(e)}") from None
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
            chunk = stream.read(_CHUNK if size is None else min(_CHUNK, size - done))
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
                chunk = os.pread(fd, min(_CHUNK, start + tarfile.BLOCKSIZE + size - pos), pos)
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

    def put_blob(self, desc: dict, stream) -> None:
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
                chunk = stream.read(_CHUNK)
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
                raise PyruncError(f"writing {self.path}: {_why(e)}") from None
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
                raise PyruncError(f"writing {self.path}: {_why(e)}") from None
            self._committed = True

    def _copy_to_target(self) -> None:
        """FILE is a pipe or a device: the finished archive is copied into it."""
        with open(self._tmp, "rb") as src, open(self.path, "wb") as dst:
            while True:
                chunk = src.read(_CHUNK)
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
