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

Writing: dockerarchive_writer.py.
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
from ..compression import HEAD, decompressing, detect
from ..gojson import field
from ..reference import DockerArchiveReference, Named, go_quote, parse_normalized_named, validate_digest
from ..transport import BlobStream, ImageSource, Options
from ..mediatypes import DOCKER_CONFIG, DOCKER_MANIFEST

MANIFEST_FILE = "manifest.json"
# What containers/image names every layer of the manifest it synthesizes
# (the layers are in fact served uncompressed; consumers go by the diff_id).
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MAX_MANIFEST_JSON = 1 << 20    # iolimits.MaxTarFileManifestSize
MAX_CONFIG = 4 << 20           # iolimits.MaxConfigBodySize
CHUNK = 1 << 20
def open_source(ref: DockerArchiveReference, opts: Options) -> "ArchiveSource":
    return ArchiveSource(ref)


def additional_tag(text: str) -> Named:
    """A --additional-tag value: a tagged name (skopeo's checks and words)."""
    try:
        n = parse_normalized_named(text)
    except PyruncError as e:
        raise PyruncError(f"error parsing additional-tag '{text}': {e}") from None
    if n.tag is None:
        raise PyruncError(f"additional-tag '{text}' must be a tagged reference")
    return n


def why(e: BaseException) -> str:
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
            raise PyruncError(f"docker-archive: decompressing a layer: {why(e)}") from None

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
            raise PyruncError(f"opening file {go_quote(path)}: {why(e)}") from None
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
                raise PyruncError(f"creating temporary file: {why(e)}") from None
            try:
                src = decompressing(kind, raw)
                while True:
                    try:
                        chunk = src.read(CHUNK)
                    except (OSError, EOFError, ValueError) as e:
                        raise PyruncError(f"auto-decompressing input: {why(e)}") from None
                    if not chunk:
                        break
                    tmp.write(chunk)
                tmp.flush()
                return os.dup(tmp.fileno())
            except OSError as e:
                raise PyruncError(f"copying contents to temporary file: {why(e)}") from None
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
            raise PyruncError(f"{self.path}: {why(e)}") from None
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
        self.reference: DockerArchiveReference = ref
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
                chunk = stream.read(CHUNK)
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

    def get_blob(self, desc: dict) -> BlobStream:
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
