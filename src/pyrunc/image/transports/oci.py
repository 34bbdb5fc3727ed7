"""oci:DIR[:REF|:@INDEX], an OCI image layout directory (image-spec
image-layout.md), as containers/image's oci/layout transport reads and
writes it.

Reading: REF names the index.json descriptor whose ref.name annotation is
REF; without REF the layout must hold exactly one descriptor; `@INDEX` is
the INDEX-th descriptor of index.json.

Writing: the layout is created if missing. Each blob goes to a temporary
file inside the layout and is renamed to blobs/ALG/HEX only after its
stream was verified (and fsynced), so no blob path ever holds unverified
bytes; index.json is written at commit only (temporary file + rename), with
the new descriptor named REF: an older descriptor of that name loses the
name as containers/image's addManifest does. Until commit nothing names the
new blobs; close() without commit removes them, and the layout itself if
this destination created it.
"""
from __future__ import annotations

import hashlib
import os
import threading
from typing import Optional

from ..digest import VerifyingReader
from ..digest import parse as parse_digest
from ..layout import INDEX_TYPES, MANIFEST_TYPES, REF_NAME, ImageError, Layout, _loads
from .. import gojson
from ..mediatypes import guess_media_type
from ..reference import OCIReference, go_quote
from ..transport import BlobStream, ImageDestination, ImageSource, Options, VerifiedStream

LAYOUT_MARKER = b'{"imageLayoutVersion":"1.0.0"}'
CHUNK = 1 << 20


def _dir(ref) -> str:
    if not ref.dir:  # skopeo: "mkdir : no such file or directory"
        raise ImageError("the layout directory name is empty")
    return ref.dir


# ---------------------------------------------------------------- reading

class OCISource(ImageSource):
    """An image of an OCI layout; `layout_dir` may differ from ref.dir
    (oci-archive reads the layout it extracted)."""

    def __init__(self, ref, layout_dir: Optional[str] = None) -> None:
        self.reference = ref
        self.layout = Layout(layout_dir or _dir(ref))
        self.descriptor = self._descriptor(ref)

    def _descriptor(self, ref) -> dict:
        manifests = self.layout.index.get("manifests")
        if not isinstance(manifests, list):
            raise ImageError("index.json: no manifests list")
        manifests = [d for d in manifests if isinstance(d, dict)]
        index = getattr(ref, "source_index", -1)
        if index != -1:
            if index >= len(manifests):
                raise ImageError(f"index {index} is too large, only {len(manifests)} entries available")
            return manifests[index]
        if ref.image:
            unsupported = []
            for d in manifests:
                if (d.get("annotations") or {}).get(REF_NAME) == ref.image:
                    if d.get("mediaType") in INDEX_TYPES + MANIFEST_TYPES:
                        return d
                    unsupported.append(str(d.get("mediaType")))
            if unsupported:
                raise ImageError(f"reference {go_quote(ref.image)} matches unsupported manifest MIME types "
                                 f"[{' '.join(go_quote(m) for m in unsupported)}]")
            raise ImageError(f"no descriptor found for reference {go_quote(ref.image)}")
        if len(manifests) != 1:
            raise ImageError("more than one image in oci, choose an image")
        return manifests[0]

    def get_manifest(self, instance: Optional[str] = None) -> tuple[bytes, str]:
        """The top-level manifest is checked against index.json's descriptor
        here; an instance is checked by the copy engine against its digest."""
        import io
        from ..layout import MAX_JSON
        desc = self.descriptor if instance is None else {"digest": instance}
        digest = desc.get("digest")
        try:
            with open(self.layout.blob_path(digest), "rb") as f:
                raw = f.read(MAX_JSON + 1)
        except OSError as e:
            raise ImageError(f"manifest {digest}: {e.strerror}") from None
        if len(raw) > MAX_JSON:
            raise ImageError(f"manifest {digest}: too large")
        if instance is not None:
            return raw, guess_media_type(raw)
        size = desc.get("size")
        VerifyingReader(io.BytesIO(raw), digest, size if isinstance(size, int) else None, "manifest").finish()
        return raw, desc.get("mediaType") or guess_media_type(raw)

    def get_blob(self, desc: dict) -> BlobStream:
        digest = desc.get("digest")
        try:
            return open(self.layout.blob_path(digest), "rb")
        except OSError as e:
            raise ImageError(f"open {e.filename}: {e.strerror}") from None


def open_source(ref: OCIReference, opts: Options) -> OCISource:
    return OCISource(ref)


# ---------------------------------------------------------------- writing

class OCIDestination(ImageDestination):
    """Writes one image (or index with its instances) into a layout."""

    def __init__(self, ref, layout_dir: Optional[str] = None, image: Optional[str] = None) -> None:
        self.reference = ref
        self.path = layout_dir or _dir(ref)
        self.image = ref.image if image is None else image
        self._lock = threading.Lock()
        self._written: list[str] = []     # blob files this destination created
        self._made_dirs: list[str] = []   # directories it created, innermost last
        self._top_made: Optional[str] = None
        self._committed = False
        self._closed = False
        self.index = self._read_index()
        self._mkdirs()

    def _read_index(self) -> dict:
        p = os.path.join(self.path, "index.json")
        try:
            with open(p, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {"schemaVersion": 2, "manifests": []}
        except OSError as e:
            raise ImageError(f"{p}: {e.strerror}") from None
        index = _loads(data, p)
        if not isinstance(index.get("manifests", []), list):
            raise ImageError(f"{p}: manifests is not a list")
        index.setdefault("manifests", [])
        return index

    def _mkdirs(self) -> None:
        # Remember the outermost directory made so close() can remove it all.
        missing = []
        p = os.path.abspath(self.path)
        while not os.path.lexists(p):
            missing.append(p)
            parent = os.path.dirname(p)
            if parent == p:
                break
            p = parent
        try:
            os.makedirs(self.path, 0o755, exist_ok=True)
            if missing:
                self._top_made = missing[-1]
            for sub in ("blobs", os.path.join("blobs", "sha256")):
                d = os.path.join(self.path, sub)
                try:
                    os.mkdir(d, 0o755)
                    self._made_dirs.append(d)
                except FileExistsError:
                    if not os.path.isdir(d):
                        raise ImageError(f"{d}: not a directory") from None
        except OSError as e:
            self._cleanup()
            raise ImageError(f"{e.filename or self.path}: {e.strerror}") from None

    def has_blob(self, desc: dict) -> bool:
        try:
            path = self._blob_path(desc["digest"])
            st = os.stat(path)
        except (OSError, KeyError):
            return False
        size = desc.get("size")
        if isinstance(size, int) and size >= 0 and st.st_size != size:
            raise ImageError(f"blob {desc['digest']} is already present, but with size {st.st_size} instead of {size}")
        return True

    def _blob_path(self, digest: str) -> str:
        alg, hexpart = parse_digest(digest)
        return os.path.join(self.path, "blobs", alg, hexpart)

    def _store(self, digest: str, write) -> None:
        """Write a blob through `write(fileobj)` into a temporary file of the
        layout, fsync it and rename it into place."""
        final = self._blob_path(digest)
        d = os.path.dirname(final)
        if not os.path.isdir(d):  # another algorithm than sha256
            try:
                os.mkdir(d, 0o755)
                with self._lock:
                    self._made_dirs.append(d)
            except FileExistsError:
                pass
            except OSError as e:
                raise ImageError(f"{d}: {e.strerror}") from None
        existed = os.path.lexists(final)
        try:
            write_file(final, write, self.path, "oci-put-blob")
        except OSError as e:
            raise ImageError(f"storing blob to file {go_quote(final)}: {e.strerror}") from None
        if not existed:
            with self._lock:
                self._written.append(final)

    def put_blob(self, desc: dict, stream: VerifiedStream) -> None:
        def write(f) -> None:
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
            stream.finish()
        self._store(desc["digest"], write)

    def put_manifest(self, raw: bytes, media_type: str, instance: Optional[str] = None) -> None:
        if instance is not None:
            alg, hexpart = parse_digest(instance)
            if hashlib.new(alg, raw).hexdigest() != hexpart:
                raise ImageError(f"manifest does not match its digest {instance}")
            digest = instance
        else:
            digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self._store(digest, lambda f: f.write(raw))
        if instance is not None:
            return
        desc: dict = {"mediaType": media_type or guess_media_type(raw), "digest": digest, "size": len(raw)}
        if self.image:
            desc["annotations"] = {REF_NAME: self.image}
        self._add(desc)

    def _add(self, desc: dict) -> None:
        """containers/image's addManifest: the name moves to the new entry;
        an unnamed entry of the same digest is replaced."""
        manifests = self.index["manifests"]
        name = (desc.get("annotations") or {}).get(REF_NAME)
        if name:
            for m in manifests:
                ann = m.get("annotations") if isinstance(m, dict) else None
                if isinstance(ann, dict) and ann.get(REF_NAME) == name:
                    del ann[REF_NAME]
                    if not ann:
                        del m["annotations"]
                    break
        for i, m in enumerate(manifests):
            if isinstance(m, dict) and m.get("digest") == desc["digest"] \
                    and not (m.get("annotations") or {}).get(REF_NAME):
                manifests[i] = desc
                return
        manifests.append(desc)

    def commit(self) -> None:
        marker = os.path.join(self.path, "oci-layout")
        try:
            if not os.path.exists(marker):
                _atomic_write(marker, LAYOUT_MARKER)
                with self._lock:
                    self._written.append(marker)
            _atomic_write(os.path.join(self.path, "index.json"), gojson.marshal(self.index).encode())
        except OSError as e:
            raise ImageError(f"writing {e.filename or 'index.json'}: {e.strerror}") from None
        self._committed = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._committed:
            self._cleanup()

    def _cleanup(self) -> None:
        import shutil
        if self._top_made:
            shutil.rmtree(self._top_made, ignore_errors=True)
            return
        for p in self._written:
            _unlink(p)
        for d in reversed(self._made_dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def write_file(final: str, write, tmp_dir: str, prefix: str) -> None:
    """Create `final` through `write(fileobj)` so that readers see the old
    file or the whole new one, never a part: a temporary file of `tmp_dir`
    (same filesystem), fsynced, mode 0644, renamed into place; removed on
    any failure."""
    import tempfile
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o644)
        os.rename(tmp, final)
    except BaseException:
        _unlink(tmp)
        raise


def _atomic_write(path: str, data: bytes) -> None:
    """write_file for a small file, with its directory synced after."""
    d = os.path.dirname(path) or "."
    write_file(path, lambda f: f.write(data), d, ".oci-tmp-")
    try:
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def open_destination(ref: OCIReference, opts: Options) -> OCIDestination:
    if ref.source_index != -1:
        raise ImageError(f"Destination reference must not contain a manifest index @{ref.source_index}")
    return OCIDestination(ref)
