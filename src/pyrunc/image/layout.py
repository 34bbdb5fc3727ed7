"""Reading an OCI image layout (image-spec image-layout.md) on disk.

`oci-layout`, `index.json`, and `blobs/<alg>/<hex>`; a reference names a
descriptor of index.json by its `org.opencontainers.image.ref.name`
annotation, and an index (or a Docker manifest list) on the way is resolved
to the host's platform as skopeo resolves it (platform.py). Every blob is verified against its digest.
"""
from __future__ import annotations

import json
import os

from ..errors import PyruncError
from .digest import DigestError, VerifyingReader, parse

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json")
MAX_JSON = 16 << 20  # a manifest, index or config larger than this is no image

class ImageError(PyruncError):
    """A layout, manifest or config that cannot be used."""


class Layout:
    """An image layout directory."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(os.path.join(path, "oci-layout"), "rb") as f:
                marker = json.loads(f.read(4096))
        except FileNotFoundError:
            raise ImageError(f"{path}: not an OCI image layout (no oci-layout file)") from None
        except (OSError, ValueError) as e:
            raise ImageError(f"{path}/oci-layout: {getattr(e, 'strerror', None) or 'invalid JSON'}") from None
        version = marker.get("imageLayoutVersion") if isinstance(marker, dict) else None
        if not isinstance(version, str) or not version.startswith("1."):
            raise ImageError(f"{path}/oci-layout: unsupported imageLayoutVersion {version!r}")
        self.index = self._json_file(os.path.join(path, "index.json"), "index.json")

    def _json_file(self, p: str, what: str) -> dict:
        try:
            with open(p, "rb") as f:
                data = f.read(MAX_JSON + 1)
        except OSError as e:
            raise ImageError(f"{p}: {e.strerror}") from None
        return _loads(data, what)

    def blob_path(self, digest: object) -> str:
        alg, hexpart = parse(digest)  # checked: no '/' or '..' can reach the path
        return os.path.join(self.path, "blobs", alg, hexpart)

    def open_blob(self, desc: dict, what: str = "blob") -> VerifyingReader:
        """A stream of the blob `desc` names, verified as it is read."""
        digest, size = _digest_size(desc, what)
        try:
            raw = open(self.blob_path(digest), "rb")
        except OSError as e:
            raise ImageError(f"{what} {digest}: {e.strerror}") from None
        return VerifyingReader(raw, digest, size, what)

    def read_json(self, desc: dict, what: str) -> dict:
        """A JSON blob (manifest, index, config), verified before it is parsed."""
        r = self.open_blob(desc, what)
        try:
            _, size = _digest_size(desc, what)
            if size > MAX_JSON:
                raise ImageError(f"{what} {desc['digest']}: too large ({size} bytes)")
            data = r.read(size + 1)
            r.finish()
        finally:
            r.close()
        return _loads(data, f"{what} {desc['digest']}")

    def find_ref(self, ref: str) -> dict:
        """The descriptor of index.json whose ref.name annotation is `ref`."""
        found = [d for d in _manifests(self.index, "index.json")
                 if isinstance(d, dict) and (d.get("annotations") or {}).get(REF_NAME) == ref]
        if not found:
            raise ImageError(f"image reference not found in {self.path}: {ref}")
        if len(found) > 1:
            raise ImageError(f"image reference {ref} is ambiguous in {self.path}: {len(found)} descriptors")
        return found[0]

    def resolve(self, desc: dict, depth: int = 0, walk: list | None = None) -> tuple[dict, dict]:
        """(manifest descriptor, manifest) for `desc`, through indexes, each
        resolved to the host's platform as skopeo chooses (image/platform.py);
        `walk` (if given) gets every descriptor on the way."""
        if walk is not None:
            walk.append(desc)
        if depth > 8:
            raise ImageError("image index nested too deeply")
        mt = desc.get("mediaType")
        if mt in MANIFEST_TYPES:
            return desc, self.read_json(desc, "manifest")
        if mt not in INDEX_TYPES:
            raise ImageError(f"unsupported media type {json.dumps(mt)} for {json.dumps(desc.get('digest'))}")
        from .platform import DOCKER_LIST, OCI_INDEX, choose
        index = self.read_json(desc, "index")
        manifests = [d for d in _manifests(index, f"index {desc.get('digest')}") if isinstance(d, dict)]
        chosen = choose(manifests, kind=DOCKER_LIST if mt == INDEX_TYPES[1] else OCI_INDEX)
        return self.resolve(chosen, depth + 1, walk)


def _manifests(index: dict, what: str) -> list:
    m = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(m, list):
        raise ImageError(f"{what}: no manifests list")
    return m


def _digest_size(desc: dict, what: str = "blob") -> tuple[str, int]:
    """A descriptor's digest and size, checked; errors name the blob."""
    if not isinstance(desc, dict):
        raise ImageError(f"{what}: descriptor is not a JSON object")
    digest, size = desc.get("digest"), desc.get("size")
    try:
        parse(digest)
    except DigestError as e:
        raise ImageError(f"{what} descriptor: {e}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{what} {digest}: invalid size {json.dumps(size)}")
    return str(digest), size  # parse() passed: a str


def _loads(data: bytes, what: str) -> dict:
    if len(data) > MAX_JSON:
        raise ImageError(f"{what}: too large")
    try:
        obj = json.loads(data)
    except ValueError:
        raise ImageError(f"{what}: invalid JSON") from None
    if not isinstance(obj, dict):
        raise ImageError(f"{what}: not a JSON object")
    return obj
